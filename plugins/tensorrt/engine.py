"""TensorRT engines from ONNX files, for TensorRT 10 and 11, with their precision proven.

TensorRT 10 and 11 take precision differently (docs/runtimes.md, with the sources):

- **10** builds a weakly typed network from the FP32 file and picks each layer's precision
  within what the builder flags allow (``BuilderFlag.FP16``, ``BF16``; ``INT8`` and ``FP8``
  for a file with Q/DQ nodes: explicit quantisation, no calibrator).
- **11** removed those flags (``BuilderFlag.FP16`` raises AttributeError) and every network is
  strongly typed: precision comes from the file itself, an FP16-converted model or Q/DQ
  nodes. Both keep ``BuilderFlag.TF32`` on by default; it is cleared unless TF32 is asked.

Asking for FP16 the old way on 11 can yield an FP32 engine with a warning only (rf-detr
#1453), and a flag on 10 only *allows* a precision. So no engine is trusted on its request:
:func:`layer_precisions` reads what the built engine runs from the engine inspector, and
:func:`prove_precision` refuses a measurement of an engine that does not run the precision.

Engines are cached (:func:`autotune.cache.cached_file`) under a key naming the GPU and its
compute capability, the TensorRT version, the precision, the shapes and the ONNX file's
sha256; the timing cache is kept per GPU and TensorRT version. Only the runner imports this
module, and it hands in the ``tensorrt`` module, so tests can hand in a stand-in.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import weakref
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from autotune.sdk import UserError, one_line
from autotune.sdk.files import cache_root, cached_file, key_digest
from autotune.sdk.running import BackendUnavailable, PrecisionEvidence, UnsupportedConfig

if TYPE_CHECKING:  # the stub in typings/: TensorRT is imported at run time, and handed in
    import tensorrt  # pyright: ignore[reportMissingModuleSource] - installed only where NVIDIA's index is

#: Bumped when what goes into an engine changes, so old cached engines are not reused.
FORMAT = 1
ENGINE_CACHE_KIND = "tensorrt-engines"
TIMING_CACHE_KIND = "tensorrt-timing"
REASON_MAX_CHARS = 200
#: The builder flags TensorRT 10 sets for each precision; INT8 and FP8 apply to the Q/DQ
#: nodes of an explicitly quantised file. FP32 and TF32 set none (TF32 is its own flag).
FLAGS_10 = {"fp32": (), "tf32": (), "fp16": ("FP16",), "bf16": ("BF16",), "int8": ("INT8",), "fp8": ("FP8",)}
#: The engine inspector's words for a tensor's type, lower case, in the order they are tried
#: ("Thirty-two wide channel vectorized row major Int8 format", "Row major linear FP16
#: format", "Half", "Float"): the first that occurs in the text names the precision.
DATATYPE_WORDS = (("int8", "int8"), ("fp8", "fp8"), ("float8", "fp8"), ("bf16", "bf16"), ("bfloat16", "bf16"),
                  ("fp16", "fp16"), ("float16", "fp16"), ("half", "fp16"),
                  ("fp32", "fp32"), ("float", "fp32"), ("int32", "int32"), ("int64", "int64"),
                  ("bool", "bool"), ("uint8", "uint8"))
#: Where a layer tensor's type is in the inspector's JSON. TensorRT 10 writes one key, the
#: layout and the type in one phrase ("Format/Datatype": "Row major linear FP16 format");
#: TensorRT 11 splits it in two (NVIDIA's 10.x to 11.x IEngineInspector migration page),
#: "Format" for the layout and "Datatype" for the type, as NVIDIA's own 11.1 tooling reads
#: them (docs/runtimes.md). The type's key is matched without case: the same page spells
#: the I/O tensors' key "DataType".
COMBINED_KEY = "Format/Datatype"
SPLIT_TYPE_KEY = "datatype"
SPLIT_FORMAT_KEY = "Format"
#: Layers that move or reformat data rather than compute: they run in whatever type their
#: neighbours need, and prove nothing about the engine's precision.
DATA_MOVEMENT_LAYERS = frozenset({"Reformat", "NoOp", "Shuffle", "Constant", "Identity", "Slice",
                                  "Concatenation"})
#: Layers TensorRT fused into one Myelin-compiled kernel graph: a transformer block becomes
#: one layer whose visible inputs and outputs are the block's (FP32 where the model's are),
#: whatever it computes in (NVIDIA/TensorRT #3889). Known by their type, "Myelin" or "kgen"
#: (trt-engine-explorer's layer colours, 10.9), or by the "{ForeignNode[...]}" name TensorRT
#: gives a layer it hands to another compiler (docs/runtimes.md).
FUSED_LAYER_TYPES = frozenset({"myelin", "kgen"})
FUSED_LAYER_NAME = "ForeignNode"
#: The least speed-up over the FP32 engine that shows a fused engine runs a lower precision
#: where its layers cannot: timings vary by a few percent, an FP32 engine mislabelled runs at
#: 1.0x, and half-precision tensor cores are well above this (first GPU to confirm).
MIN_FUSED_SPEEDUP = 1.2


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


class CapturingLogger(Protocol):
    """What :func:`process_logger` gives: a ``trt.ILogger`` that keeps what it was told.

    It serves a whole process, so a caller takes a :meth:`mark` before its own call and
    reads what came ``since`` it."""

    def mark(self) -> int: ...

    def errors(self, since: int = 0) -> list[str]: ...

    def warnings(self, since: int = 0) -> list[str]: ...


#: How many of the latest messages the process's logger keeps: a build's VERBOSE log runs to
#: thousands of lines, and a long process builds many engines.
LOG_KEPT = 50_000
_PROCESS_LOGGERS: weakref.WeakKeyDictionary[ModuleType, CapturingLogger] = weakref.WeakKeyDictionary()


def process_logger(trt: ModuleType) -> CapturingLogger:
    """The one ``trt.ILogger`` autotune hands every Builder, OnnxParser and Runtime of this
    ``tensorrt`` module (so of this process): it keeps every message, VERBOSE included,
    rather than print it on a terminal the user is not watching.

    One, because TensorRT's logger is the process's: NVIDIA's 7.x and 8.0 API references
    say it "is internally considered a singleton, and thus multiple instances of IRuntime
    and/or IBuilder must all use the same logger", where a runtime's logger made before a
    builder's gets the build's errors; 8.2 and later say each object's own logger is used
    (docs/runtimes.md). With one logger, a build's or a step's reason is found either way.
    """
    logger = _PROCESS_LOGGERS.get(trt)
    if logger is None:
        logger = _capturing_logger(trt)
        _PROCESS_LOGGERS[trt] = logger
    return logger


def _capturing_logger(trt: ModuleType) -> CapturingLogger:
    class ProcessLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[tuple[Any, str]] = []
            #: How many messages were dropped from the front (marks count from the first one).
            self.dropped = 0
            # TensorRT may log from its own threads: appends and trims are serialised.
            self.lock = threading.Lock()

        def log(self, severity, msg) -> None:
            with self.lock:
                self.messages.append((severity, msg))
                if len(self.messages) > LOG_KEPT:
                    surplus = len(self.messages) - LOG_KEPT
                    del self.messages[:surplus]
                    self.dropped += surplus

        def mark(self) -> int:
            return self.dropped + len(self.messages)

        def _since(self, since: int, wanted: tuple[Any, ...]) -> list[str]:
            start = max(0, since - self.dropped)
            return [text for severity, text in self.messages[start:] if severity in wanted]

        def errors(self, since: int = 0) -> list[str]:
            # pybind11 enums compare by identity, not order: name the severities.
            return self._since(since, (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR))

        def warnings(self, since: int = 0) -> list[str]:
            return self._since(since, (trt.ILogger.Severity.WARNING,))

    return ProcessLogger()


def is_out_of_memory(said: str) -> bool:
    """Whether TensorRT's words say it ran out of memory: it says so in words only ("Error
    Code 2: OutOfMemory (Requested size was ...)", "Cuda Runtime (out of memory)")."""
    return "outofmemory" in said.lower().replace(" ", "")


def parser_errors(parser: tensorrt.OnnxParser) -> list[str]:
    """The ONNX parser's errors, each naming the node it failed on (index, name, operator)."""
    described = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        where = ""
        if error.node() >= 0:
            where = f"node {error.node()}"
            if error.node_name():
                where += f" ({error.node_name()}"
                where += f", {error.node_operator()})" if error.node_operator() else ")"
            elif error.node_operator():
                where += f" ({error.node_operator()})"
            where += ": "
        described.append(where + one_line(error.desc()))
    return described


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
    """The serialized engine for ``request``, built now (see :func:`cached_engine`); what
    TensorRT says meanwhile goes to the :func:`process_logger`.

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


@dataclass(frozen=True)
class CachedEngine:
    path: Path
    #: Why the engine was rebuilt rather than read from the cache, or "" (built anew or read).
    rebuilt_because: str = ""


def cached_engine(trt: ModuleType, request: EngineRequest, loads) -> tuple[CachedEngine, Any]:
    """The engine for ``request`` from the cache, or built and cached; ``loads(plan_bytes)``
    deserializes one (None, or an exception, when it cannot). A cached engine that does not
    load (corrupt, cut short, from another TensorRT build or GPU whose key collided) is
    removed and rebuilt, and :attr:`CachedEngine.rebuilt_because` says why.

    Returns (where it is, the deserialized engine).
    """
    key = request.cache_key(str(trt.__version__))
    note = f"{request.precision} engine of {request.onnx_path.name} for {request.gpu_name}"

    def build(target: Path) -> None:
        target.write_bytes(build_engine(trt, request))

    path = cached_file(ENGINE_CACHE_KIND, key, ".engine", build, note=note)
    engine, why = _load(path, loads)
    if engine is not None:
        return CachedEngine(path), engine
    # Removed first, so that cached_file builds it again; the sidecar goes with it.
    path.unlink(missing_ok=True)
    path.with_suffix(".json").unlink(missing_ok=True)
    path = cached_file(ENGINE_CACHE_KIND, key, ".engine", build, note=note)
    engine, why_again = _load(path, loads)
    if engine is None:
        raise BuildFailed(f"TensorRT cannot load the engine it just built ({why_again})")
    return CachedEngine(path, rebuilt_because=f"the cached engine could not be loaded ({why})"), engine


def _load(path: Path, loads) -> tuple[Any, str]:
    try:
        engine = loads(path.read_bytes())
    except Exception as error:  # noqa: BLE001 - the runtime's failure, whatever its type
        return None, one_line(str(error), REASON_MAX_CHARS) or type(error).__name__
    return engine, "" if engine is not None else "TensorRT returned no engine"


# --- what the built engine runs -------------------------------------------------------------

@dataclass(frozen=True)
class LayerPrecisions:
    """How many compute layers of an engine run in each precision, as its inspector says."""

    counts: Mapping[str, int]
    #: The inspector gave no types (an engine built without detailed profiling, or dynamic
    #: shapes with no execution context): nothing is proven either way.
    unknown: bool = False
    #: Fused layers (see FUSED_LAYER_TYPES): counted apart, their visible types prove nothing.
    fused: int = 0

    def describe(self) -> str:
        """``TensorRT engine: 48 layers fp16, 3 fp32`` (``, 1 fused`` where there are)."""
        if self.unknown:
            return "TensorRT engine: layer precisions unknown"
        parts = [f"{count} {precision}" for precision, count in
                 sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))]
        if self.fused:
            parts.append(f"{self.fused} fused")
        total = sum(self.counts.values()) + self.fused
        if not parts:
            return "TensorRT engine: no compute layers"
        return f"TensorRT engine: {total} layers " + ", ".join(parts)


def _datatype(text: str) -> str | None:
    lowered = text.lower()
    for word, precision in DATATYPE_WORDS:
        if word in lowered:
            return precision
    return None


def tensor_type_text(tensor: Mapping[str, Any]) -> str:
    """What one layer tensor's record says of its type, in either version's layout: 11's
    own type key where there is one, else 10's combined phrase, else 11's layout phrase
    (which names the type too, "Row major linear FP16 format"); "" when it says nothing."""
    split = next((str(value) for key, value in tensor.items() if key.lower() == SPLIT_TYPE_KEY), "")
    if split and not split.startswith("N/A"):
        return split
    return str(tensor.get(COMBINED_KEY) or tensor.get(SPLIT_FORMAT_KEY) or split)


def layer_precisions(engine_information: str) -> LayerPrecisions:
    """Read the inspector's JSON (``get_engine_information(LayerInformationFormat.JSON)``),
    TensorRT 10's layout or 11's (see :func:`tensor_type_text`).

    Each compute layer counts once, in the type its first output runs in (inputs can be a
    reformat's FP32 on the way in); data-movement layers are left out.
    """
    layers = json.loads(engine_information).get("Layers", [])
    counts: Counter[str] = Counter()
    fused = 0
    for layer in layers:
        if not isinstance(layer, dict):
            return LayerPrecisions({}, unknown=True)  # LAYER_NAMES_ONLY: names, no types
        if layer.get("LayerType") in DATA_MOVEMENT_LAYERS:
            continue
        if (str(layer.get("LayerType", "")).lower() in FUSED_LAYER_TYPES
                or FUSED_LAYER_NAME in str(layer.get("Name", ""))):
            fused += 1
            continue
        tensors = [*layer.get("Outputs", ()), *layer.get("Inputs", ())]
        formats = [tensor_type_text(tensor) for tensor in tensors if isinstance(tensor, dict)]
        if any(text.startswith("N/A") for text in formats):
            return LayerPrecisions({}, unknown=True)
        precision = next((p for p in map(_datatype, formats) if p is not None), None)
        if precision is not None:
            counts[precision] += 1
    return LayerPrecisions(dict(counts), fused=fused)


#: The layer types that show an engine runs a precision: a float precision in its layers'
#: own types; TF32 and FP32 engines both show FP32 layers (TF32 is a math mode of FP32).
SHOWN_AS = {"fp32": "fp32", "tf32": "fp32", "fp16": "fp16", "bf16": "bf16", "int8": "int8", "fp8": "fp8"}


def prove_precision(asked: str, layers: LayerPrecisions, warnings: Sequence[str] = ()) -> PrecisionEvidence:
    """Refuse an engine that does not run ``asked``: an FP16 or INT8 figure is reported only
    for an engine with FP16 or INT8 layers, or with fused layers that hide their precision
    (then FUSED: :func:`prove_speedup` must hold too, and the accuracy check runs as ever).

    :raises UnsupportedConfig: the engine has no layer in the precision asked and none
        fused (TensorRT's warnings, if any, say why), or its inspector told nothing.
    """
    if layers.unknown:
        raise UnsupportedConfig(f"{asked}: TensorRT's engine inspector gave no layer types, so the "
                                "engine's precision cannot be proven; not reported")
    wanted = SHOWN_AS[asked]
    if layers.counts.get(wanted, 0) > 0:
        return PrecisionEvidence.LAYERS
    if layers.fused:
        return PrecisionEvidence.FUSED
    said = f" (TensorRT: {one_line(warnings[-1], 120)})" if warnings else ""
    built = ", ".join(sorted(layers.counts)) or "no compute layers"
    raise UnsupportedConfig(f"{asked}: TensorRT built an engine with {built} layers and none in {wanted}"
                            f"{said}; not reported as {asked}")


def needs_speedup(asked: str, evidence: PrecisionEvidence) -> bool:
    """Whether ``asked`` on an engine proven by ``evidence`` must be shown faster than FP32:
    a fused engine's lower precision shows only in its speed (FP32 and TF32 are the baseline)."""
    return evidence is PrecisionEvidence.FUSED and SHOWN_AS[asked] != "fp32"


def prove_speedup(asked: str, speedup_over_fp32: float) -> None:
    """Refuse a fused engine no faster than the FP32 one: nothing then shows it runs ``asked``.

    :raises UnsupportedConfig: the speed-up is under MIN_FUSED_SPEEDUP.
    """
    if speedup_over_fp32 < MIN_FUSED_SPEEDUP:
        raise UnsupportedConfig(f"{asked}: TensorRT fused the engine's layers, so their precision is not "
                                f"visible, and it ran at {speedup_over_fp32:.2f}x the FP32 engine's speed "
                                f"(under {MIN_FUSED_SPEEDUP:.1f}x); not reported as {asked}")
