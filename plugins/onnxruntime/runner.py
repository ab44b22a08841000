"""The ONNX Runtime backend's runner: an ONNX model in the asked precision, on the execution
provider that really runs.

Imported only when something is measured. The model is the user's ``.onnx`` file as given,
or a PyTorch model exported through the conversion hook (:func:`autotune.model.convert.convert_model`)
with every input the input description names; the precision variants (FP16, INT8, INT4)
are made from that file by ``onnx_variants`` and cached. Sessions are planned by
``session_plan`` and made by ``sessions``, which refuses to let a GPU provider fall back to
the CPU unnoticed.
ONNX Runtime here serves trained models: training stays with PyTorch.

Memory: each session is made when a configuration opens and dropped when it closes, so its
arena goes with it and the next configuration's NVML figure is its own increment
(``nvml_peak``), read against a baseline taken just before its session is made. The CUDA
provider holds its arena to the budget (``gpu_mem_limit``); the TensorRT provider has no such
cap, only its builder's workspace (``trt_max_workspace_size``), so there the core checks the
measured peak against the budget (:attr:`OrtSession.enforces_memory_budget`).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from autotune_plugins.common import nvml_peak, onnx_files, onnx_variants, ort_messages
from autotune_plugins.onnxruntime import session_plan, sessions
from autotune_plugins.onnxruntime.placement import node_placement, placement_problem

from autotune.sdk import UserError
from autotune.sdk.files import cache_root
from autotune.sdk.models import ConversionRequest, batch_chunks, convert_model, padded_batch, synthetic_batch
from autotune.sdk.running import (
    BackendUnavailable,
    MemoryFigure,
    Preparation,
    RunConfig,
    UnsupportedConfig,
    WallClock,
)

#: Precisions by provider. The CUDA provider runs an FP16-converted model, INT8 as a QDQ
#: model and INT4 through MatMulNBits; BF16 only through TensorRT's builder flag.
PRECISIONS = {
    "cpu": ("fp32", "fp16", "int8", "int4"),
    "cuda": ("fp32", "tf32", "fp16", "int8", "int4"),
    "tensorrt": ("fp32", "tf32", "fp16", "bf16", "int8"),
}


def resolve_provider(asked: str | None, device: str) -> str:
    """``auto`` is the CUDA provider on a GPU and the CPU provider on a CPU."""
    if asked in (None, "auto"):
        return "cuda" if device == "cuda" else "cpu"
    return asked


class OrtPrepared:
    """One precision variant of the model and the session plan for it; a session is made per
    opened configuration (the CUDA provider's memory limit comes with it) and freed with it."""

    def __init__(self, variant: onnx_variants.Variant, preparation: Preparation, provider: str,
                 max_batch_size: int, device: str, compared_output: str | None):
        self.variant, self.preparation, self.provider = variant, preparation, provider
        #: The output the exporter recorded for the accuracy check (read from the FP32 file:
        #: a converter need not keep the metadata), or None: the first.
        self.compared_output = compared_output
        self.model_file = variant.model_file
        self.max_batch_size, self.device = max_batch_size, device

    def new_session(self, plan: session_plan.SessionPlan) -> ort.InferenceSession:
        """A session for one configuration, made from :meth:`plan`; the caller drops it when
        the configuration closes."""
        try:
            return sessions.create_session(self.variant.path, plan)
        except UserError as error:
            raise self._refused(str(error)) from None

    def _refused(self, reason: str) -> Exception:
        if self.variant.precision == "fp32":
            return UserError(reason)  # the user's own file (or its export): bad input
        # A variant autotune made that this provider refuses: this precision, not the input.
        return UnsupportedConfig(f"{self.variant.label}: {reason}")

    def plan(self, memory_budget_bytes: float | None) -> session_plan.SessionPlan:
        """The session to make for one configuration: this preparation's options, the
        memory budget, every input's batch range."""
        preparation = self.preparation
        shapes = {}
        for spec in preparation.inputs.inputs:
            fixed = preparation.inputs.fixed_batch
            low, high = (fixed, fixed) if fixed else (1, self.max_batch_size)
            shapes[spec.name] = ((low, *spec.shape), (high, *spec.shape), (high, *spec.shape))
        return session_plan.plan_session(
            self.provider, cpu_threads=preparation.cpu_threads,
            graph_optimization=preparation.option("graph_optimization", "all"),
            execution_mode=preparation.option("execution_mode", "sequential"),
            memory_budget_bytes=memory_budget_bytes,
            tf32=bool(preparation.option("tf32", False)) or preparation.precision == "tf32",
            cudnn_conv_algo_search=preparation.option("cudnn_conv_algo_search", "heuristic"),
            prefer_nhwc=bool(preparation.option("prefer_nhwc", False)),
            cuda_graph=bool(preparation.option("cuda_graph", False)),
            precision=preparation.precision, input_shapes=shapes, cache_dir=cache_root())

    def close(self) -> None:
        pass  # sessions are freed by the configurations that opened them


class OrtSession:
    def __init__(self, prepared: OrtPrepared, config: RunConfig, memory_budget_bytes: float | None):
        self.prepared, self.config = prepared, config
        gpu = prepared.provider != "cpu"
        # The baseline before the session allocates anything: its figure is its own (the CUDA
        # context is there already, made by the provider check in prepare).
        self._memory = nvml_peak.ProcessPeakMemory(baseline=True) if gpu else None
        #: What the session was made with, as plain data.
        self.plan = prepared.plan(memory_budget_bytes)
        self._session: ort.InferenceSession | None = prepared.new_session(self.plan)
        ran = sessions.provider_that_ran(self.session)
        #: What an FP32 or TF32 session's matmuls and convolutions compute in ("" on the CPU,
        #: whose FP32 is FP32): the row says it, since an ORT "fp32" may be TF32.
        self.math = session_plan.fp32_math(self.plan, prepared.preparation.precision)
        #: The CUDA provider's arena fails above gpu_mem_limit; the TensorRT provider has no
        #: such cap (the workspace is only part of it): the core checks its measured peak.
        self.enforces_memory_budget = ran == "cuda" and memory_budget_bytes is not None
        # The provider that really ran, in every measurement row: a CPU figure never passes
        # for a GPU one.
        threads = self.session.get_session_options().intra_op_num_threads
        self.device_name = {"cpu": f"CPU EP ({threads or 'default'} threads)", "cuda": "CUDA EP",
                            "tensorrt": "TensorRT EP"}[ran]
        self.output_names = [output.name for output in self.session.get_outputs()]
        recorded = prepared.compared_output
        self.compared = recorded if recorded in self.output_names else self.output_names[0]
        self.feed = self._feed(synthetic_batch(prepared.preparation.inputs, config.batch_size, seed=1))
        placement = node_placement(self.session, self.feed)
        problem = placement_problem(placement, ran)
        if problem is not None:
            if prepared.variant.precision == "fp32":
                raise sessions.ProviderUnavailable(ran, f"{prepared.variant.path.name}: {problem}")
            raise UnsupportedConfig(f"{prepared.variant.label}: {problem}")
        #: Nodes ORT ran on the CPU beside the GPU provider (shape arithmetic), "op_type name".
        self.host_nodes: tuple[str, ...] = placement.host_nodes if placement is not None else ()
        #: The device buffers bound as inputs, by name: a CUDA graph reads these on every
        #: replay, so :meth:`outputs` copies its inputs into them.
        self._bound_inputs: dict[str, ort.OrtValue] = {}
        self._binding = self._device_binding() if ran != "cpu" else None

    def _device_binding(self) -> ort.IOBinding:
        """Inputs and outputs on the GPU, so host copies are not timed."""
        binding = self.session.io_binding()
        for name, array in self.feed.items():
            self._bound_inputs[name] = ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0)
            binding.bind_ortvalue_input(name, self._bound_inputs[name])
        for name in self.output_names:
            binding.bind_output(name, "cuda", 0)
        return binding

    @property
    def session(self) -> ort.InferenceSession:
        if self._session is None:
            raise ValueError("this ONNX Runtime session is closed")
        return self._session

    def _feed(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        wanted = {node.name for node in self.session.get_inputs()}
        missing = wanted - set(arrays)
        if missing:
            raise UserError(f"the ONNX model takes inputs {', '.join(sorted(missing))} that the input "
                            f"description lacks; pass --input-spec naming every input")
        return {name: array for name, array in arrays.items() if name in wanted}

    def step(self) -> None:
        try:
            if self._binding is not None:
                self.session.run_with_iobinding(self._binding)
            else:
                self.session.run(self.output_names, self.feed)
        except Exception as error:
            failure = ort_messages.run_failure(error)
            if failure is error:
                raise
            raise failure from error  # its one line keeps ORT's "Got 8 Expected 1"

    def clock(self):
        # ``run`` and ``run_with_iobinding`` return after the provider's stream is synchronised
        # (ONNX Runtime's default), so the wall clock times the device work.
        return WallClock()

    def outputs(self, inputs) -> np.ndarray:
        feed = self._feed(dict(inputs))
        fixed = self.prepared.preparation.inputs.fixed_batch
        if self._binding is not None and session_plan.uses_cuda_graph(self.plan):
            return self._replayed_outputs(self._binding, feed, fixed)
        results = []
        for chunk in batch_chunks(feed, self.config.batch_size, fixed):
            (output,) = self.session.run([self.compared], chunk)
            results.append(np.asarray(output, dtype=np.float32))
        return np.concatenate(results)

    def _replayed_outputs(self, binding: ort.IOBinding, feed: dict[str, np.ndarray],
                          fixed_batch: int | None) -> np.ndarray:
        """The outputs of a session that replays a CUDA graph. ``run`` with new arrays would
        replay the graph on the buffers it captured and return the captured batch's outputs,
        so each chunk is copied into the bound buffers and run through the binding. Chunks
        are cut as for every runtime (a graph fixed at one batch leaves a short last chunk
        out, as the FP32 reference does); a short last one is padded to the captured batch,
        the only shape the graph runs, and its padding dropped from the outputs."""
        captured = len(next(iter(self.feed.values())))
        compared = self.output_names.index(self.compared)
        results = []
        try:
            for chunk in batch_chunks(feed, captured, fixed_batch):
                samples = len(next(iter(chunk.values())))
                self._copy_into_bound_inputs(padded_batch(chunk, captured))
                self.session.run_with_iobinding(binding)
                output = binding.copy_outputs_to_cpu()[compared]
                results.append(np.asarray(output[:samples], dtype=np.float32))
        finally:
            # step() times the session's own batch, as before.
            self._copy_into_bound_inputs(self.feed)
        return np.concatenate(results)

    def _copy_into_bound_inputs(self, arrays: dict[str, np.ndarray]) -> None:
        for name, value in self._bound_inputs.items():
            # update_inplace copies bytes without checking their type: give it the bound one.
            value.update_inplace(np.ascontiguousarray(arrays[name], dtype=self.feed[name].dtype))

    def peak_memory_bytes(self) -> int | None:
        return self._memory.read() if self._memory is not None else None

    @property
    def peak_memory_figure(self) -> MemoryFigure | None:
        """Which figure :meth:`peak_memory_bytes` gave (an NVML increment, ...)."""
        return self._memory.figure if self._memory is not None else None

    def close(self) -> None:
        self._binding = None
        self._bound_inputs = {}
        self.feed = {}
        # The session and its arena go now, so the next configuration's figure is its own.
        self._session = None


class OrtRunner:
    """Converts each model once per input description, makes each precision variant once
    (both cached on disk), and opens sessions on the provider asked for."""

    def device(self, wanted: str) -> str:
        # A GPU asked for stays a GPU: a provider that cannot run there is reported as such
        # when the model is prepared, never quietly measured on the CPU instead.
        return "cuda" if wanted == "cuda" else "cpu"

    def precisions(self, device: str, device_precisions: tuple[str, ...]) -> tuple[str, ...]:
        if device == "cpu":
            return PRECISIONS["cpu"]
        return tuple(p for p in PRECISIONS["cuda"] if p in device_precisions or p == "int4")

    def is_out_of_memory(self, error: BaseException) -> bool:
        return sessions.is_out_of_memory(error)

    def enforces_memory_budget(self, device: str) -> bool:
        # Before a session opens: a GPU provider is held by the session's own answer after its
        # first step (OrtSession.enforces_memory_budget: the CUDA provider's gpu_mem_limit caps
        # its arena, the TensorRT provider is checked on its measured peak); the CPU provider
        # has no cap.
        return device == "cuda"

    def prepare(self, model, preparation: Preparation, device: str, max_batch_size: int) -> OrtPrepared:
        if preparation.task != "infer":
            raise BackendUnavailable("ONNX Runtime serves trained models here; training runs on PyTorch")
        provider = resolve_provider(preparation.option("provider", "auto"), device)
        if preparation.precision not in PRECISIONS[provider]:
            raise UnsupportedConfig(f"{preparation.precision} does not run on ONNX Runtime's "
                                    f"{session_plan.PROVIDERS[provider]}")
        if provider != "cpu":
            problem = sessions.gpu_provider_problem(provider)
            if problem is not None:
                raise sessions.ProviderUnavailable(provider, problem)
        request = ConversionRequest(inputs=preparation.inputs, dynamic_batch=True)
        fp32_path = convert_model(model, "onnx", request)
        if model.kind == "onnx":
            onnx_files.validate(fp32_path)  # a converted file was checked by the converter that wrote it
        variant = onnx_variants.make_variant(fp32_path, *self._variant_of(preparation, provider),
                                             calibration=onnx_files.calibration_batch(preparation))
        return OrtPrepared(variant, preparation, provider, max_batch_size, device,
                           onnx_files.recorded_output(fp32_path))

    @staticmethod
    def _variant_of(preparation: Preparation, provider: str) -> tuple[str, str]:
        """(precision, method) of the file to run. TF32 runs the FP32 file; TensorRT makes
        FP16 and BF16 engines from the FP32 file through its builder flags, and takes INT8 as
        a symmetric QDQ model."""
        precision = preparation.precision
        if precision == "tf32" or (provider == "tensorrt" and precision in ("fp16", "bf16")):
            return "fp32", ""
        if precision == "int8":
            return "int8", "qdq_s8" if provider == "tensorrt" else preparation.option("int8_method", "qdq")
        if precision == "int4":
            return "int4", "matmul_nbits"
        return precision, ""

    def open(self, prepared: OrtPrepared, config: RunConfig,
             memory_budget_bytes: float | None = None) -> OrtSession:
        return OrtSession(prepared, config, memory_budget_bytes)
