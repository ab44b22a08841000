"""The prepared model of the TensorRT backend: the ONNX file for one preparation, its engine
built (or read from the engine cache) when the first batch opens, proven to run the
precision asked, and handed to each session from the cached plan.

The engine is built with that first batch as the profile's optimum and the memory budget's
half as its workspace, proven (``precision_proof``: the inspector's layer types, and for
fused layers the speed-up over the FP32 engine, timed here), cached on disk, and opened at
each batch through ``set_input_shape``. Each session loads its own engine from that plan
and drops it when it closes: the preparation keeps none.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
from autotune_plugins.tensorrt import engine_build, engine_cache, messages, precision_proof
from autotune_plugins.tensorrt.device import IoTensor, io_tensors

from autotune.sdk.files import file_sha256
from autotune.sdk.models import synthetic_batch
from autotune.sdk.running import ModelFile, OutOfMemory, PrecisionEvidence, Preparation, UnsupportedConfig

if TYPE_CHECKING:  # the stub in typings/; the module itself is imported when first needed
    import tensorrt as trt_types  # pyright: ignore[reportMissingModuleSource] - installed only where NVIDIA's index is

GIB = 2**30
#: The workspace TensorRT may use for its tactics: this share of the memory budget (or of the
#: GPU's memory without one), in whole GiB so the engine's cache key stays put.
WORKSPACE_SHARE = 0.5
#: Steps each engine runs untimed, then timed, where a fused engine's speed-up over the FP32
#: one is what shows its precision (precision_proof.MIN_FUSED_SPEEDUP).
SPEEDUP_WARMUP_STEPS = 3
SPEEDUP_TIMED_STEPS = 7


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
        self.log: messages.CapturingLogger | None = None
        self.model_file: ModelFile | None = None
        self.io: tuple[IoTensor, ...] = ()
        #: What the FP32 layers of the engine handed out last compute their matmuls and
        #: convolutions in (``engine_build.fp32_math``): its session's ``math``.
        self.math = ""
        #: The request of the engine proven last, and where its plan is cached: later
        #: sessions load that plan again (the first batch stays the profile's optimum).
        self._proven: tuple[engine_build.EngineRequest, Path] | None = None
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
        self.math = engine_build.fp32_math(request)
        #: What TensorRT logs, this engine's contexts included: a failed step says it there.
        self.log = log = messages.process_logger(self.trt)
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
            cached, engine = engine_cache.cached_engine(self.trt, request, loads)
        except engine_build.BuildFailed as error:
            if error.out_of_memory:
                raise OutOfMemory(f"TensorRT ran out of memory building the engine ({error})") from None
            raise UnsupportedConfig(f"{self.preparation.precision}: TensorRT could not build the engine "
                                    f"({error})") from None
        if reloading and not cached.rebuilt_because:
            return engine
        self.io = io_tensors(self.trt, engine)
        # What TensorRT warned since the build began (none when the engine came from the cache).
        layers, evidence = self._proven_layers(engine, batch_size, log.warnings(mark))
        speedup = None
        if precision_proof.needs_speedup(self.preparation.precision, evidence):
            speedup = self._speedup_over_fp32(engine, request, loads, batch_size)
            precision_proof.prove_speedup(self.preparation.precision, speedup)
        detail = layers.describe()
        if cached.rebuilt_because:
            detail += f"; rebuilt: {cached.rebuilt_because}"
        self.model_file = ModelFile(cached.path.stat().st_size, self.fp32_path.stat().st_size, detail,
                                    precision_evidence=evidence, speedup_over_fp32=speedup)
        self._proven = (request, cached.path)
        return engine

    def _request(self, batch_size: int, workspace: int) -> engine_build.EngineRequest:
        return engine_build.EngineRequest(
            onnx_path=self.onnx_path, onnx_sha256=file_sha256(self.onnx_path),
            precision=self.preparation.precision, input_shapes=self.profile_shapes(batch_size),
            workspace_bytes=workspace,
            optimization_level=int(self.preparation.option("optimization_level", 3)),
            tf32=bool(self.preparation.option("tf32", False)) or self.preparation.precision == "tf32",
            gpu_name=self.device.name(), compute_capability=self.device.compute_capability(),
            users_file=self.users_file)

    def _speedup_over_fp32(self, engine: trt_types.ICudaEngine, request: engine_build.EngineRequest, loads,
                           batch_size: int) -> float:
        """How many times faster ``engine`` runs a batch than the FP32 engine of the same
        model and profile (built, or read from the cache, for this), each timed on the
        device's clock after a warm-up: what shows a fused engine's lower precision."""
        fp32_request = replace(request, onnx_path=self.fp32_path, onnx_sha256=file_sha256(self.fp32_path),
                               precision="fp32", tf32=False, users_file=self.users_file)
        try:
            _, fp32_engine = engine_cache.cached_engine(self.trt, fp32_request, loads)
        except engine_build.BuildFailed as error:
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
        io = io_tensors(self.trt, engine)
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
                       ) -> tuple[precision_proof.LayerPrecisions, PrecisionEvidence]:
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
        layers = precision_proof.layer_precisions(
            inspector.get_engine_information(self.trt.LayerInformationFormat.JSON))
        return layers, precision_proof.prove_precision(self.preparation.precision, layers, warnings)

    def workspace_bytes(self, memory_budget_bytes: float | None) -> int:
        available = memory_budget_bytes or self.device.total_memory_bytes()
        return max(1, int(available * WORKSPACE_SHARE) // GIB) * GIB

    def shape_of(self, name: str, batch_size: int) -> tuple[int, ...]:
        spec = next(spec for spec in self.preparation.inputs.inputs if spec.name == name)
        return (self.preparation.inputs.fixed_batch or batch_size, *spec.shape)

    def profile_shapes(self, batch_size: int) -> dict[str, engine_build.ProfileShapes]:
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
