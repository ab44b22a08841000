"""A TensorRT session: an engine of its own, loaded from the prepared model's cached plan,
and an execution context at one batch size with its buffers bound, run with
``execute_async_v3`` on the device's stream.

Memory: each session loads its own engine and drops it with its execution context when it
closes, so no configuration's engine is alive in the next one's figure. That figure is
NVML's increment for this process over a baseline read just before the session loads its
engine (``nvml_peak``: the engine's weights and context count, the CUDA context made in
``prepare`` does not); where NVML cannot name the process (a container's PIDs, MIG without
privileges) it is TensorRT's own figure for the engine, its ``device_memory_size_v2``: what
an execution context takes (activations and scratch for the profile's largest shapes, which
a context allocates up front), not the weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from autotune_plugins.common import nvml_peak
from autotune_plugins.tensorrt.messages import is_out_of_memory
from autotune_plugins.tensorrt.prepared import TrtPrepared

from autotune.sdk import UserError, one_line
from autotune.sdk.models import batch_chunks, synthetic_batch
from autotune.sdk.running import MemoryFigure, OutOfMemory, RunConfig, UnsupportedConfig

if TYPE_CHECKING:  # the stub in typings/; the module itself is imported when first needed
    import tensorrt as trt_types  # pyright: ignore[reportMissingModuleSource] - installed only where NVIDIA's index is


def context_memory_bytes(engine: trt_types.ICudaEngine | None) -> int | None:
    """TensorRT's own figure for the device memory an execution context of ``engine`` takes,
    or None: no engine, or a TensorRT without ``device_memory_size_v2`` (an older 10.x; 11
    has only this name, the one without ``_v2`` is gone)."""
    size = getattr(engine, "device_memory_size_v2", None) if engine is not None else None
    return int(size) if size is not None else None


class TrtSession:
    """An engine of its own and an execution context at one batch size, its buffers bound."""

    def __init__(self, prepared: TrtPrepared, config: RunConfig, memory_budget_bytes: float | None):
        self.prepared, self.config = prepared, config
        self.device = prepared.device
        self.engine: trt_types.ICudaEngine | None = None
        self.context: trt_types.IExecutionContext | None = None
        self.buffers: dict[str, Any] = {}
        self.device_name = f"TensorRT {prepared.trt.__version__} ({self.device.name()})"
        #: What an fp32 or tf32 session's matmuls and convolutions computed in: IEEE_MATH, or
        #: TF32_MATH where the tf32 decision (or precision) left ``BuilderFlag.TF32`` set; ""
        #: for the other precisions. Read from the flag the engine's request sets
        #: (``engine_build.fp32_math``), not measured.
        self.math = ""
        # The baseline before the engine loads (or builds): its weights and context are this
        # configuration's, and no earlier one's engine is alive in it (each closed with its session).
        self._memory = nvml_peak.ProcessPeakMemory(baseline=True,
                                                   runtime_bytes=lambda: context_memory_bytes(self.engine))
        try:
            self.engine = engine = prepared.engine_for(config.batch_size, memory_budget_bytes)
            self.math = prepared.math
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
            if is_out_of_memory(said):  # TensorRT's words become the typed outcome
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
