"""The TensorRT backend's runner: an engine built from the ONNX file in the asked precision,
run with ``execute_async_v3`` on device buffers from PyTorch.

Imported only when something is measured. The model is the user's ``.onnx`` file as given,
or a PyTorch model exported through the conversion hook (as for ONNX Runtime); the file the
engine is built from depends on the TensorRT version (see ``trt_engine``): TensorRT 10 takes
the FP32 file and builder flags, 11 an FP16-converted file; INT8 is a symmetric Q/DQ file in
both (``onnx_variants``' ``qdq_s8``). The engine is built when the first batch opens, with
that batch as the profile's optimum and the memory budget's half as its workspace, proven to
run the precision asked, cached on disk, and opened at each batch through ``set_input_shape``.

Memory: each session loads its own engine, from that cached plan, and drops it with its
execution context when it closes, so no configuration's engine is alive in the next one's
figure. That figure is NVML's increment for this process over a baseline read just before
the session loads its engine (``nvml_peak``: the engine's weights and context count, the
CUDA context made in ``prepare`` does not); where NVML cannot name the process (a
container's PIDs, MIG without privileges) it is TensorRT's own figure for the engine, its
``device_memory_size_v2``: what an execution context takes (activations and scratch for the
profile's largest shapes, which a context allocates up front), not the weights.

Buffers, the stream and the CUDA-event clock come from PyTorch, so no extra CUDA binding is
needed; :class:`CudaDevice` is the one place that touches them (tests put a host-memory
device in its place to run the same code against a TensorRT stand-in).

The engine runs on a CUDA stream of its own, never on the default (legacy) stream that is
torch's current one: there ``enqueueV3`` warns "Using default stream in enqueueV3()" and
adds synchronisations of its own, which the latency would include. The buffers are filled,
the clock's events recorded and the results waited for on that same stream.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from autotune_plugins.common import nvml_peak, onnx_files
from autotune_plugins.tensorrt import engine as trt_engine

from autotune.sdk import UserError, one_line
from autotune.sdk.files import file_sha256
from autotune.sdk.models import ConversionRequest, batch_chunks, convert_model, synthetic_batch
from autotune.sdk.running import (
    BackendUnavailable,
    MemoryFigure,
    ModelFile,
    OutOfMemory,
    PrecisionEvidence,
    Preparation,
    RunConfig,
    UnsupportedConfig,
)

if TYPE_CHECKING:  # the stub in typings/; the module itself is imported when first needed
    import tensorrt as trt_types  # pyright: ignore[reportMissingModuleSource] - installed only where NVIDIA's index is

GIB = 2**30
#: The TensorRT precisions each API generation builds here. TensorRT 11 takes BF16 from a
#: BF16 ONNX file, which only NVIDIA ModelOpt makes: not supported yet (and FP8, which needs
#: FP8 Q/DQ files, is left out on both).
PRECISIONS = {10: ("fp32", "tf32", "fp16", "bf16", "int8"), 11: ("fp32", "tf32", "fp16", "int8")}
#: The workspace TensorRT may use for its tactics: this share of the memory budget (or of the
#: GPU's memory without one), in whole GiB so the engine's cache key stays put.
WORKSPACE_SHARE = 0.5
#: Steps each engine runs untimed, then timed, where a fused engine's speed-up over the FP32
#: one is what shows its precision (trt_engine.MIN_FUSED_SPEEDUP).
SPEEDUP_WARMUP_STEPS = 3
SPEEDUP_TIMED_STEPS = 7
#: TensorRT's DataType names and the torch dtypes their buffers take.
TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
                "INT64": "int64", "BOOL": "bool", "UINT8": "uint8", "FP8": "float8_e4m3fn"}


def tensorrt() -> ModuleType:
    """The ``tensorrt`` module, imported when first needed (ImportError without it)."""
    return importlib.import_module("tensorrt")


class CudaDevice:
    """Device memory, the engine's own stream and the clock on it, through PyTorch."""

    #: Where the buffers live: the GPU (a test that fakes ``torch.cuda`` keeps them on the host).
    memory = "cuda"

    def __init__(self) -> None:
        try:
            import torch  # noqa: PLC0415 - the buffers' one dependency, needed only to measure
        except ImportError:
            raise BackendUnavailable("the TensorRT backend keeps its buffers on the GPU through PyTorch, "
                                     "which is not installed: pip install torch") from None
        if not torch.cuda.is_available():
            from autotune.sdk.cuda import cuda_unavailable_reason  # noqa: PLC0415

            # Say why (a driver too old for torch's CUDA, a CPU-only torch, no GPU) so the fix is
            # in the message, as the torch backend does (issue 24, item 10).
            raise BackendUnavailable("TensorRT needs a CUDA GPU, and PyTorch sees none here: "
                                     f"{cuda_unavailable_reason()}")
        from autotune_plugins.common.cuda_clock import CudaClock  # noqa: PLC0415 - imports torch

        self.torch, self._clock = torch, CudaClock
        # A new stream is never the default one (handle 0), which torch's current stream is.
        self.stream = torch.cuda.Stream()

    def name(self) -> str:
        return self.torch.cuda.get_device_name()

    def compute_capability(self) -> str:
        major, minor = self.torch.cuda.get_device_capability()
        return f"{major}.{minor}"

    def total_memory_bytes(self) -> int:
        return self.torch.cuda.get_device_properties(0).total_memory

    def tensor(self, array: np.ndarray, dtype: str):
        """A device copy of ``array`` in the torch dtype named ``dtype``, made on the
        engine's stream so that the engine reads it only once it is there."""
        with self.torch.cuda.stream(self.stream):
            host = self.torch.from_numpy(np.ascontiguousarray(array))
            return host.to(self.memory).to(getattr(self.torch, dtype))

    def empty(self, shape: tuple[int, ...], dtype: str):
        with self.torch.cuda.stream(self.stream):
            return self.torch.empty(shape, dtype=getattr(self.torch, dtype), device=self.memory)

    def stream_handle(self) -> int:
        """The engine's stream, as ``execute_async_v3`` takes it (a ``cudaStream_t``)."""
        return self.stream.cuda_stream

    def synchronize(self) -> None:
        """Wait for what was queued on the engine's stream (its results are then readable)."""
        self.stream.synchronize()

    def clock(self):
        return self._clock(self.stream)

    def release(self) -> None:
        self.torch.cuda.synchronize()
        self.torch.cuda.empty_cache()

    def is_out_of_memory(self, error: BaseException) -> bool:
        return isinstance(error, self.torch.cuda.OutOfMemoryError)


#: What :class:`TrtRunner` makes its device from (see :class:`CudaDevice`).
DEVICE = CudaDevice


@dataclass(frozen=True)
class IoTensor:
    name: str
    is_input: bool
    dtype: str  # a torch dtype name


def context_memory_bytes(engine: trt_types.ICudaEngine | None) -> int | None:
    """TensorRT's own figure for the device memory an execution context of ``engine`` takes,
    or None: no engine, or a TensorRT without ``device_memory_size_v2`` (an older 10.x; 11
    has only this name, the one without ``_v2`` is gone)."""
    size = getattr(engine, "device_memory_size_v2", None) if engine is not None else None
    return int(size) if size is not None else None


class TrtPrepared:
    """The ONNX file for one preparation. Its engine is built (or read from the cache) and
    proven when the first batch opens; each session loads the same plan from the engine
    cache and holds that engine only while it is open."""

    def __init__(self, trt: ModuleType, device, onnx_path: Path, fp32_path: Path, preparation: Preparation,
                 max_batch_size: int, compared_output: str | None, users_file: bool):
        self.trt, self.device = trt, device
        self.onnx_path, self.fp32_path, self.preparation = onnx_path, fp32_path, preparation
        self.max_batch_size, self.compared_output = max_batch_size, compared_output
        self.users_file = users_file
        self.log: trt_engine.CapturingLogger | None = None
        self.model_file: ModelFile | None = None
        self.io: tuple[IoTensor, ...] = ()
        #: The request of the engine proven last, and where its plan is cached: later
        #: sessions load that plan again (the first batch stays the profile's optimum).
        self._proven: tuple[trt_engine.EngineRequest, Path] | None = None
        # One for every engine of this preparation, and kept as long as this object (see close).
        self._runtime: trt_types.Runtime | None = None

    def engine_for(self, batch_size: int, memory_budget_bytes: float | None) -> trt_types.ICudaEngine:
        """An engine for one session, which holds it and drops it when it closes (the
        preparation keeps none). The plan proven for this workspace is loaded again from the
        engine cache, without a rebuild or a second proof; otherwise (the first batch, a new
        workspace, a plan gone from the cache or unloadable) it is built or read, and proven."""
        workspace = self.workspace_bytes(memory_budget_bytes)
        proven = self._proven if self._proven and self._proven[0].workspace_bytes == workspace else None
        request = proven[0] if proven else self._request(batch_size, workspace)
        reloading = proven is not None and proven[1].is_file()  # deleted: built again, so proven again
        #: What TensorRT logs, this engine's contexts included: a failed step says it there.
        self.log = log = trt_engine.process_logger(self.trt)
        mark = log.mark()
        runtime: trt_types.Runtime = self._runtime or self.trt.Runtime(log)
        self._runtime = runtime

        def loads(plan: bytes) -> trt_types.ICudaEngine:
            loading = log.mark()
            engine = runtime.deserialize_cuda_engine(plan)
            if engine is None:
                raise RuntimeError("; ".join(log.errors(loading)) or "TensorRT returned no engine")
            return engine

        try:
            cached, engine = trt_engine.cached_engine(self.trt, request, loads)
        except trt_engine.BuildFailed as error:
            if error.out_of_memory:
                raise OutOfMemory(f"TensorRT ran out of memory building the engine ({error})") from None
            raise UnsupportedConfig(f"{self.preparation.precision}: TensorRT could not build the engine "
                                    f"({error})") from None
        if reloading and not cached.rebuilt_because:
            return engine
        self.io = _io_tensors(self.trt, engine)
        # What TensorRT warned since the build began (none when the engine came from the cache).
        layers, evidence = self._proven_layers(engine, batch_size, log.warnings(mark))
        speedup = None
        if trt_engine.needs_speedup(self.preparation.precision, evidence):
            speedup = self._speedup_over_fp32(engine, request, loads, batch_size)
            trt_engine.prove_speedup(self.preparation.precision, speedup)
        detail = layers.describe()
        if cached.rebuilt_because:
            detail += f"; rebuilt: {cached.rebuilt_because}"
        self.model_file = ModelFile(cached.path.stat().st_size, self.fp32_path.stat().st_size, detail,
                                    precision_evidence=evidence, speedup_over_fp32=speedup)
        self._proven = (request, cached.path)
        return engine

    def _request(self, batch_size: int, workspace: int) -> trt_engine.EngineRequest:
        return trt_engine.EngineRequest(
            onnx_path=self.onnx_path, onnx_sha256=file_sha256(self.onnx_path),
            precision=self.preparation.precision, input_shapes=self.profile_shapes(batch_size),
            workspace_bytes=workspace,
            optimization_level=int(self.preparation.option("optimization_level", 3)),
            tf32=bool(self.preparation.option("tf32", False)) or self.preparation.precision == "tf32",
            gpu_name=self.device.name(), compute_capability=self.device.compute_capability(),
            users_file=self.users_file)

    def _speedup_over_fp32(self, engine: trt_types.ICudaEngine, request: trt_engine.EngineRequest, loads,
                           batch_size: int) -> float:
        """How many times faster ``engine`` runs a batch than the FP32 engine of the same
        model and profile (built, or read from the cache, for this), each timed on the
        device's clock after a warm-up: what shows a fused engine's lower precision."""
        fp32_request = replace(request, onnx_path=self.fp32_path, onnx_sha256=file_sha256(self.fp32_path),
                               precision="fp32", tf32=False, users_file=self.users_file)
        try:
            _, fp32_engine = trt_engine.cached_engine(self.trt, fp32_request, loads)
        except trt_engine.BuildFailed as error:
            raise UnsupportedConfig(f"{self.preparation.precision}: TensorRT fused the engine's layers, "
                                    "and the FP32 engine to compare its speed with did not build "
                                    f"({error})") from None
        arrays = synthetic_batch(self.preparation.inputs, self.preparation.inputs.fixed_batch or batch_size,
                                 seed=1)
        fp32_ms = self._step_ms(fp32_engine, arrays)
        return fp32_ms / max(self._step_ms(engine, arrays), 1e-9)

    def _step_ms(self, engine: trt_types.ICudaEngine, arrays: dict[str, np.ndarray]) -> float:
        """Milliseconds ``engine`` takes for one step on ``arrays``, the median of a few."""
        context = engine.create_execution_context()
        if context is None:
            raise OutOfMemory("TensorRT could not make an execution context (its device memory)")
        buffers = []
        io = _io_tensors(self.trt, engine)
        for tensor in io:
            if tensor.is_input:
                context.set_input_shape(tensor.name, tuple(arrays[tensor.name].shape))
                buffers.append((tensor.name, self.device.tensor(arrays[tensor.name], tensor.dtype)))
        for tensor in io:
            if not tensor.is_input:
                buffers.append((tensor.name, self.device.empty(tuple(context.get_tensor_shape(tensor.name)),
                                                               tensor.dtype)))
        for name, buffer in buffers:
            context.set_tensor_address(name, buffer.data_ptr())
        stream = self.device.stream_handle()
        times = []
        for step in range(SPEEDUP_WARMUP_STEPS + SPEEDUP_TIMED_STEPS):
            clock = self.device.clock()
            clock.start()
            if not context.execute_async_v3(stream):
                raise UnsupportedConfig(f"{self.preparation.precision}: an engine could not run to compare "
                                        "its speed with FP32's")
            elapsed_ms = clock.stop()
            if step >= SPEEDUP_WARMUP_STEPS:
                times.append(elapsed_ms)
        return float(np.median(times))

    def _proven_layers(self, engine: trt_types.ICudaEngine, batch_size: int, warnings: list[str],
                       ) -> tuple[trt_engine.LayerPrecisions, PrecisionEvidence]:
        """The engine's layer precisions, read with a context at ``batch_size`` (a dynamic
        engine's inspector gives no types without one), proven to include the one asked,
        and what proves it."""
        context = engine.create_execution_context()
        if context is None:
            raise OutOfMemory("TensorRT could not make an execution context (its device memory)")
        for tensor in self.io:
            if tensor.is_input:
                context.set_input_shape(tensor.name, self.shape_of(tensor.name, batch_size))
        inspector = engine.create_engine_inspector()
        inspector.execution_context = context
        layers = trt_engine.layer_precisions(
            inspector.get_engine_information(self.trt.LayerInformationFormat.JSON))
        return layers, trt_engine.prove_precision(self.preparation.precision, layers, warnings)

    def workspace_bytes(self, memory_budget_bytes: float | None) -> int:
        available = memory_budget_bytes or self.device.total_memory_bytes()
        return max(1, int(available * WORKSPACE_SHARE) // GIB) * GIB

    def shape_of(self, name: str, batch_size: int) -> tuple[int, ...]:
        spec = next(spec for spec in self.preparation.inputs.inputs if spec.name == name)
        return (self.preparation.inputs.fixed_batch or batch_size, *spec.shape)

    def profile_shapes(self, batch_size: int) -> dict[str, trt_engine.ProfileShapes]:
        """One optimisation profile: batch 1 to the largest the memory model allows, tuned
        for ``batch_size``; a graph fixed at one batch gets that batch throughout."""
        fixed = self.preparation.inputs.fixed_batch
        low, optimum, high = (fixed, fixed, fixed) if fixed else (1, batch_size, self.max_batch_size)
        return {spec.name: ((low, *spec.shape), (optimum, *spec.shape), (high, *spec.shape))
                for spec in self.preparation.inputs.inputs}

    def close(self) -> None:
        # Each session frees its own engine. The runtime stays with this object, which every
        # session refers to, so it is freed after their engines (never before: an engine must
        # not outlive the runtime that loaded it).
        pass


def _io_tensors(trt: ModuleType, engine: trt_types.ICudaEngine) -> tuple[IoTensor, ...]:
    tensors = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        dtype_name = engine.get_tensor_dtype(name).name
        if dtype_name not in TORCH_DTYPES:
            raise UnsupportedConfig(f"the engine's tensor {name} is {dtype_name}, which autotune cannot feed")
        tensors.append(IoTensor(name, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                                TORCH_DTYPES[dtype_name]))
    return tuple(tensors)


class TrtSession:
    """An engine of its own and an execution context at one batch size, its buffers bound."""

    def __init__(self, prepared: TrtPrepared, config: RunConfig, memory_budget_bytes: float | None):
        self.prepared, self.config = prepared, config
        self.device = prepared.device
        self.engine: trt_types.ICudaEngine | None = None
        self.context: trt_types.IExecutionContext | None = None
        self.buffers: dict[str, Any] = {}
        self.device_name = f"TensorRT {prepared.trt.__version__} ({self.device.name()})"
        # The baseline before the engine loads (or builds): its weights and context are this
        # configuration's, and no earlier one's engine is alive in it (each closed with its session).
        self._memory = nvml_peak.ProcessPeakMemory(baseline=True,
                                                   runtime_bytes=lambda: context_memory_bytes(self.engine))
        try:
            self.engine = engine = prepared.engine_for(config.batch_size, memory_budget_bytes)
            self.context = engine.create_execution_context()
            if self.context is None:
                raise OutOfMemory("TensorRT could not make an execution context (its device memory)")
            outputs = [tensor.name for tensor in prepared.io if not tensor.is_input]
            recorded = prepared.compared_output
            self.compared = recorded if recorded in outputs else outputs[0]
            self.buffers = self._bind(self._own_batch())
        except BaseException:
            # Nobody closes a session that did not open: its engine goes now, before the
            # ladder's next rung loads one of its own.
            self.close()
            raise

    def _own_batch(self) -> dict[str, np.ndarray]:
        """The session's inputs: its batch, or the graph's own where the export fixed it."""
        inputs = self.prepared.preparation.inputs
        return synthetic_batch(inputs, inputs.fixed_batch or self.config.batch_size, seed=1)

    def _bind(self, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        """Device buffers for ``arrays`` (one per input) and for every output at their
        batch, each address handed to the context."""
        prepared, context = self.prepared, self._open_context()
        buffers = {}
        for tensor in prepared.io:
            if not tensor.is_input:
                continue
            if tensor.name not in arrays:
                raise UserError(f"the engine takes input {tensor.name}, which the input description lacks; "
                                "pass --input-spec naming every input")
            array = arrays[tensor.name]
            if not context.set_input_shape(tensor.name, tuple(array.shape)):
                low, _, high = prepared.profile_shapes(1)[tensor.name]
                raise UnsupportedConfig(f"input {tensor.name} at {tuple(array.shape)} is outside the "
                                        f"engine's profile (batch {low[0]} to {high[0]})")
            buffers[tensor.name] = self.device.tensor(array, tensor.dtype)
        for tensor in prepared.io:
            if not tensor.is_input:
                shape = tuple(context.get_tensor_shape(tensor.name))
                buffers[tensor.name] = self.device.empty(shape, tensor.dtype)
        for name, buffer in buffers.items():
            context.set_tensor_address(name, buffer.data_ptr())
        return buffers

    def _open_context(self) -> trt_types.IExecutionContext:
        if self.context is None:
            raise RuntimeError("the TensorRT session is closed")
        return self.context

    def step(self) -> None:
        log = self.prepared.log
        mark = log.mark() if log else 0
        if not self._open_context().execute_async_v3(self.device.stream_handle()):
            logged = log.errors(mark) if log else []
            said = one_line(logged[-1], 200) if logged else "nothing logged"
            if trt_engine.is_out_of_memory(said):  # TensorRT's words become the typed outcome
                raise OutOfMemory(f"TensorRT: {said}")
            raise RuntimeError(f"TensorRT's execute_async_v3 failed: {said}")

    def clock(self):
        return self.device.clock()

    def outputs(self, inputs) -> np.ndarray:
        """The compared output for ``inputs``, in chunks of the session's batch (of the
        graph's own batch where the export fixed it); the session's buffers are bound again
        afterwards."""
        fixed = self.prepared.preparation.inputs.fixed_batch
        results = []
        try:
            for chunk in batch_chunks(dict(inputs), self.config.batch_size, fixed):
                buffers = self._bind(chunk)
                self.step()
                self.device.synchronize()
                results.append(buffers[self.compared].float().cpu().numpy())
        finally:
            self.buffers = self._bind(self._own_batch())
        return np.concatenate(results).astype(np.float32)

    def peak_memory_bytes(self) -> int | None:
        return self._memory.read()

    @property
    def peak_memory_figure(self) -> MemoryFigure | None:
        """Which figure :meth:`peak_memory_bytes` gave: NVML's increment for this process since
        just before the engine loaded, else TensorRT's own (:func:`context_memory_bytes`), else
        the device's increment."""
        return self._memory.figure

    def close(self) -> None:
        # Nothing may be in flight when the context goes; then the buffers, the context and
        # the engine go, so the next configuration's figure holds none of them.
        self.device.synchronize()
        self.buffers = {}
        self.context = None
        self.engine = None
        self.device.release()


class TrtRunner:
    """Builds one engine per preparation (cached on disk); each session loads it and opens a
    context at its batch."""

    def __init__(self) -> None:
        self.trt = tensorrt()
        self.generation = trt_engine.major_version(self.trt)
        if self.generation not in PRECISIONS:
            raise BackendUnavailable(f"TensorRT {self.trt.__version__} is installed; autotune builds engines "
                                     "with TensorRT 10 and 11")
        self._device = None

    def device(self, wanted: str) -> str:
        if wanted != "cuda":
            raise BackendUnavailable("TensorRT runs on NVIDIA GPUs only, and this machine has none")
        return "cuda"

    def _cuda(self):
        if self._device is None:
            self._device = DEVICE()
        return self._device

    def precisions(self, device: str, device_precisions: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(p for p in PRECISIONS[self.generation] if p in device_precisions)

    def is_out_of_memory(self, error: BaseException) -> bool:
        if isinstance(error, OutOfMemory):
            return True
        return self._device is not None and self._device.is_out_of_memory(error)

    def enforces_memory_budget(self, device: str) -> bool:
        # The workspace follows the budget, but the engine's weights and activations do not:
        # the core holds the budget on the memory model's prediction and the NVML peak.
        return False

    def prepare(self, model, preparation: Preparation, device: str, max_batch_size: int) -> TrtPrepared:
        if preparation.task != "infer":
            raise BackendUnavailable("TensorRT serves trained models; training runs on PyTorch")
        if preparation.precision not in PRECISIONS[self.generation]:
            why = (" (11 takes BF16 from a BF16 ONNX file, which autotune does not make yet)"
                   if preparation.precision == "bf16" else "")
            raise UnsupportedConfig(f"{preparation.precision} is not built by TensorRT "
                                    f"{self.trt.__version__} here{why}")
        cuda = self._cuda()
        request = ConversionRequest(inputs=preparation.inputs, dynamic_batch=True)
        fp32_path = convert_model(model, "onnx", request)
        users_file = model.kind == "onnx"
        if users_file:
            onnx_files.validate(fp32_path)  # a converted file was checked by the converter that wrote it
        problems = trt_engine.parse_problems(self.trt, fp32_path)
        if problems:
            raise trt_engine.rejection(fp32_path, problems, users_file)
        onnx_path = self._onnx_for(fp32_path, preparation)
        return TrtPrepared(self.trt, cuda, onnx_path, fp32_path, preparation, max_batch_size,
                           onnx_files.recorded_output(fp32_path),
                           users_file=users_file and onnx_path == fp32_path)

    def _onnx_for(self, fp32_path: Path, preparation: Preparation) -> Path:
        """The file the engine is built from: the FP32 file, an FP16-converted one (11), or a
        symmetric INT8 Q/DQ one (both)."""
        precision = preparation.precision
        if precision in ("fp32", "tf32") or (self.generation < 11 and precision in ("fp16", "bf16")):
            return fp32_path
        try:
            from autotune_plugins.common import onnx_variants  # noqa: PLC0415 - ONNX Runtime's quantiser
        except ImportError as error:
            raise UnsupportedConfig(f"{precision} on TensorRT {self.generation} is built from a converted "
                                    f"ONNX file, made with the onnx extra ({one_line(str(error))}): "
                                    "pip install 'autotune[onnx]'") from None
        if precision == "fp16":
            return onnx_variants.make_variant(fp32_path, "fp16").path
        calibration = onnx_files.calibration_batch(preparation)
        return onnx_variants.make_variant(fp32_path, "int8", "qdq_s8", calibration=calibration,
                                          providers_hint="tensorrt").path

    def open(self, prepared: TrtPrepared, config: RunConfig,
             memory_budget_bytes: float | None = None) -> TrtSession:
        return TrtSession(prepared, config, memory_budget_bytes)
