"""Building a TensorRT engine from an ONNX file, for TensorRT 10 and 11: the request that
names everything the engine depends on, the parser's verdict on the file, the builder's
flags and profile, and the builder's timing cache.

TensorRT 10 and 11 take precision differently (docs/runtimes.md, with the sources):

- **10** builds a weakly typed network from the FP32 file and picks each layer's precision
  within what the builder flags allow (``BuilderFlag.FP16``, ``BF16``; ``INT8`` and ``FP8``
  for a file with Q/DQ nodes: explicit quantisation, no calibrator).
- **11** removed those flags (``BuilderFlag.FP16`` raises AttributeError) and every network is
  strongly typed: precision comes from the file itself, an FP16-converted model or Q/DQ
  nodes. Both keep ``BuilderFlag.TF32`` on by default; it is cleared unless TF32 is asked
  (:func:`fp32_math` says so in each FP32 row).

A flag only *allows* a precision, so the engine built here is proven afterwards
(``precision_proof``). The timing cache is kept per GPU and TensorRT version, so a second
build skips the kernel timings the first made; the engines themselves are cached by
``engine_cache``. The runner's modules hand in the ``tensorrt`` module, so tests can hand in
a stand-in.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from autotune_plugins.tensorrt.messages import (
    REASON_MAX_CHARS,
    is_out_of_memory,
    parser_errors,
    process_logger,
)

from autotune.sdk import UserError, one_line
from autotune.sdk.files import cache_root, key_digest
from autotune.sdk.running import IEEE_MATH, TF32_MATH, BackendUnavailable, UnsupportedConfig

if TYPE_CHECKING:  # the stub in typings/: TensorRT is imported at run time, and handed in
    import tensorrt  # pyright: ignore[reportMissingModuleSource] - installed only where NVIDIA's index is

#: Bumped when what goes into an engine changes, so old cached engines are not reused.
FORMAT = 1
TIMING_CACHE_KIND = "tensorrt-timing"
#: The builder flags TensorRT 10 sets for each precision; INT8 and FP8 apply to the Q/DQ
#: nodes of an explicitly quantised file. FP32 and TF32 set none (TF32 is its own flag).
FLAGS_10 = {"fp32": (), "tf32": (), "fp16": ("FP16",), "bf16": ("BF16",), "int8": ("INT8",), "fp8": ("FP8",)}

#: One input's (min, opt, max) shapes in an optimisation profile, batch first.
ProfileShapes = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def major_version(trt: ModuleType) -> int:
    return int(str(trt.__version__).split(".")[0])


class BuildFailed(Exception):
    """TensorRT did not build an engine; the message is what it logged."""

    def __init__(self, reason: str, out_of_memory: bool = False):
        super().__init__(reason)
        #: What TensorRT logged says it ran out of memory (a smaller batch may build).
        self.out_of_memory = out_of_memory


@dataclass(frozen=True)
class EngineRequest:
    """Everything an engine depends on, and so its cache key."""

    onnx_path: Path
    onnx_sha256: str
    #: What the request asks the engine to run: fp32, tf32, fp16, bf16, int8 or fp8.
    precision: str
    #: Input name -> (min, opt, max) shapes, batch first: the one optimisation profile.
    input_shapes: Mapping[str, ProfileShapes]
    workspace_bytes: int
    optimization_level: int
    #: TF32 for FP32 layers: the tf32 decision (TensorRT's own default is on).
    tf32: bool
    gpu_name: str
    compute_capability: str
    #: Whether ``onnx_path`` is the user's own file (a parser error is then bad input), or a
    #: variant autotune made (then this precision is not supported for the model).
    users_file: bool = True

    def cache_key(self, trt_version: str) -> dict[str, Any]:
        return {"engine": FORMAT, "tensorrt": trt_version, "gpu": self.gpu_name,
                "compute_capability": self.compute_capability, "precision": self.precision,
                "onnx": self.onnx_sha256, "shapes": {name: [list(s) for s in shapes]
                                                     for name, shapes in sorted(self.input_shapes.items())},
                "workspace_bytes": self.workspace_bytes, "optimization_level": self.optimization_level,
                "tf32": self.tf32}


def fp32_math(request: EngineRequest) -> str:
    """What the FP32 layers of an engine built from ``request`` compute their matmuls and
    convolutions in (a session's ``math``), for fp32 and tf32 requests; "" for the others.

    Based on the builder flag :func:`build_engine` sets, nothing measured: ``BuilderFlag.TF32``
    is set where ``request.tf32`` (the tf32 decision, or the tf32 precision) and cleared
    otherwise, in 10 and 11 alike, so an fp32 row is IEEE FP32 although TensorRT's own
    default is TF32 ("Enabled by default" in its API reference; NVIDIA/TensorRT #4492). Set,
    the flag allows TF32 kernels without forcing them, which is what TF32_MATH says. Only
    ``NVIDIA_TF32_OVERRIDE=0`` in the environment would turn TF32 off where it is set:
    NVIDIA's debugging switch, which autotune neither sets nor reads.
    """
    if request.precision not in ("fp32", "tf32"):
        return ""
    return TF32_MATH if request.tf32 else IEEE_MATH


def parse_problems(trt: ModuleType, onnx_path: Path) -> list[str]:
    """What TensorRT's ONNX parser finds wrong with the file (nothing: an empty list); a
    parse is cheap beside a build, so a file no precision can build is caught first."""
    logger = process_logger(trt)
    mark = logger.mark()
    network: tensorrt.INetworkDefinition = trt.Builder(logger).create_network(0)
    parser: tensorrt.OnnxParser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(onnx_path)):
        return []
    return parser_errors(parser) or logger.errors(mark) or ["no reason given"]


def rejection(onnx_path: Path, problems: list[str], users_file: bool) -> Exception:
    """The error for a file the parser rejects: the user's own file is bad input (exit 2);
    a PyTorch model's export can run on no precision here."""
    shown = one_line("; ".join(problems), REASON_MAX_CHARS)
    if users_file:
        return UserError(f"TensorRT's ONNX parser rejects {onnx_path.name}: {shown}; export it with "
                         "operators TensorRT supports, or measure it with --backend onnxruntime")
    return BackendUnavailable(f"TensorRT's ONNX parser rejects the model's ONNX export: {shown}")


def build_engine(trt: ModuleType, request: EngineRequest) -> bytes:
    """The serialized engine for ``request``, built now (``engine_cache.cached_engine`` keeps
    it); what TensorRT says meanwhile goes to the process's logger (``messages``).

    :raises UserError: the parser rejects the user's own ONNX file, or the file's inputs are
        not those the input description names.
    :raises UnsupportedConfig: the parser rejects a variant autotune made.
    :raises BuildFailed: the builder failed (its logged errors as the message).
    """
    logger = process_logger(trt)
    mark = logger.mark()
    builder: tensorrt.Builder = trt.Builder(logger)
    # 10: explicit batch is the default (its flag is deprecated) and a weakly typed network
    # takes precision from the builder flags; 11: always strongly typed, no flag needed.
    network = builder.create_network(0)
    parser: tensorrt.OnnxParser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(request.onnx_path)):
        problems = parser_errors(parser) or logger.errors(mark) or ["no reason given"]
        if request.users_file:
            raise rejection(request.onnx_path, problems, users_file=True)
        # The FP32 file parsed (the runner checks it first): this precision's file did not.
        shown = one_line("; ".join(problems), REASON_MAX_CHARS)
        raise UnsupportedConfig(f"{request.precision}: TensorRT's ONNX parser rejects the "
                                f"{request.precision} model autotune made: {shown}")
    _check_inputs(network, request)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, request.workspace_bytes)
    # DETAILED: the engine inspector then reports each layer's types, which prove the precision.
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    config.builder_optimization_level = request.optimization_level
    if major_version(trt) < 11:
        for flag in FLAGS_10[request.precision]:
            config.set_flag(getattr(trt.BuilderFlag, flag))
    # TF32 is on by default in both versions: cleared unless asked, so FP32 means FP32.
    if request.tf32:
        config.set_flag(trt.BuilderFlag.TF32)
    else:
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for name, (low, optimum, high) in request.input_shapes.items():
        profile.set_shape(name, low, optimum, high)
    config.add_optimization_profile(profile)
    with _timing_cache(trt, config, request) as timing:
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            reason = one_line("; ".join(logger.errors(mark)) or "no reason logged", REASON_MAX_CHARS)
            raise BuildFailed(reason, out_of_memory=is_out_of_memory(reason))
        timing.keep()
    return memoryview(plan).tobytes()


def _check_inputs(network: tensorrt.INetworkDefinition, request: EngineRequest) -> None:
    names = [network.get_input(index).name for index in range(network.num_inputs)]
    missing = [name for name in names if name not in request.input_shapes]
    if missing:
        raise UserError(f"the ONNX model takes inputs {', '.join(missing)} that the input description "
                        "lacks; pass --input-spec naming every input")
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        declared = tuple(tensor.shape)
        low = request.input_shapes[tensor.name][0]
        fits = len(declared) == len(low) and all(
            d in (-1, s) for d, s in zip(declared[1:], low[1:], strict=True))
        if not fits:
            raise UserError(f"input {tensor.name} is {_dims(declared)} in the ONNX model, but the input "
                            f"description gives {_dims(low)}; pass --input-spec with the model's own shape")


def _dims(shape) -> str:
    return "x".join("?" if d == -1 else str(d) for d in shape)


class _TimingCache:
    """The builder's timing cache for one GPU and TensorRT version, kept on disk so a second
    build (another precision or batch range of the same model) skips the kernel timings it
    already made. A file from elsewhere that TensorRT refuses is replaced, not trusted."""

    def __init__(self, trt: ModuleType, config: tensorrt.IBuilderConfig, request: EngineRequest):
        key = {"timing": FORMAT, "tensorrt": str(trt.__version__), "gpu": request.gpu_name,
               "compute_capability": request.compute_capability}
        self.path = cache_root() / TIMING_CACHE_KIND / f"{key_digest(key)}.cache"
        self.config = config
        previous = b""
        with contextlib.suppress(OSError):
            previous = self.path.read_bytes()
        cache = config.create_timing_cache(previous)
        # A file TensorRT cannot read gives no cache; one from another build is refused.
        if cache is None or not config.set_timing_cache(cache, False):
            fresh = config.create_timing_cache(b"")  # None only where TensorRT could not make one
            if fresh is not None:
                config.set_timing_cache(fresh, False)
        self._kept = False

    def keep(self) -> None:
        self._kept = True

    def write(self) -> None:
        cache = self.config.get_timing_cache()
        if not self._kept or cache is None:  # None: the build ran without a timing cache
            return
        data = memoryview(cache.serialize()).tobytes()
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(data)
            os.replace(temporary, self.path)  # whole or absent; the last writer's wins
        except OSError:
            pass  # a timing cache only saves time: the engine itself is cached elsewhere
        finally:
            temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def _timing_cache(trt: ModuleType, config: tensorrt.IBuilderConfig,
                  request: EngineRequest) -> Iterator[_TimingCache]:
    timing = _TimingCache(trt, config, request)
    yield timing
    timing.write()
