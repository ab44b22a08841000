"""ONNX Runtime's GPU paths through the runner's seams, on the CPU (issue 24, items 3, 4, 5,
14, 15): where each node ran (from ORT's own profile), the TensorRT provider's memory budget
checked on the measured peak, each configuration's peak its own, what each provider's "fp32"
computes in, and the accuracy check's outputs from a session that replays a CUDA graph.

What stands in for a GPU: ``onnxruntime.InferenceSession`` refusing as ORT's CPU-fallback
guard does, ``provider_that_ran`` naming a GPU provider for a CPU session, the placement of
``tests/ort_profiles/cuda_dynamic_batch.json``, an NVML whose process figure is the
sessions alive (``LiveNvml``), and a CPU session replaying as a CUDA graph does
(``_CudaGraphSession``)."""

from __future__ import annotations

import dataclasses
import json
import os
import weakref
from pathlib import Path
from types import SimpleNamespace

import pytest

np = pytest.importorskip("numpy")
onnxruntime = pytest.importorskip("onnxruntime")
pynvml = pytest.importorskip("pynvml")

from autotune_plugins.common import nvml_peak  # noqa: E402
from autotune_plugins.common.nvml_peak import ProcessPeakMemory  # noqa: E402
from autotune_plugins.onnxruntime import runner as ort_runner  # noqa: E402
from autotune_plugins.onnxruntime import session_plan, sessions  # noqa: E402
from autotune_plugins.onnxruntime.placement import (  # noqa: E402
    node_placement,
    placement_from_profile,
    placement_problem,
)
from autotune_plugins.onnxruntime.session_plan import plan_session  # noqa: E402
from autotune_plugins.onnxruntime.sessions import ProviderUnavailable, create_session  # noqa: E402

from autotune.backend_api import IEEE_MATH, TF32_MATH, BudgetCheck, MemoryFigure, RunConfig  # noqa: E402
from autotune.cli.render import results_table  # noqa: E402
from autotune.measure.measurement import Outcome  # noqa: E402
from autotune.measure.step_down import open_first_fitting  # noqa: E402
from tests.test_ort_runner import _measurer, conv_net  # noqa: E402

PROFILES = Path(__file__).parent / "ort_profiles"
REFUSED = ("[ONNXRuntimeError] : 1 : FAIL : This session contains graph nodes that are assigned to the "
           "default CPU EP, but fallback to CPU EP has been explicitly disabled by the user.")
SHAPE_NODES = ("Shape shape", "Gather batch_of", "Unsqueeze unsqueeze", "Concat target_shape")
MIB = 2**20


def profile(name: str) -> list:
    return json.loads((PROFILES / name).read_text())


# --- item 5: placement ---------------------------------------------------------------------


def test_a_real_profile_names_every_node_with_its_provider_and_tells_shape_arithmetic_from_compute():
    placement = placement_from_profile(profile("cpu_dynamic_batch.json"))
    assert placement.nodes == {"CPUExecutionProvider": (*SHAPE_NODES, "MatMul matmul", "Relu relu",
                                                        "Reshape flatten")}
    assert placement.host_compute_nodes == ("MatMul matmul", "Relu relu", "Reshape flatten")


def test_a_placement_read_from_a_live_session_is_the_profile_it_wrote(tmp_path):
    path = conv_net(tmp_path / "conv_net.onnx")
    options = sessions._profiled(onnxruntime.SessionOptions())
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    placement = node_placement(session, {"x": np.zeros((2, 3, 16, 16), np.float32)})
    assert placement is not None
    assert {node.split()[0] for node in placement.nodes["CPUExecutionProvider"]} >= {"Conv", "Gemm"}
    prefix = Path(options.profile_file_prefix)
    assert not list(prefix.parent.glob(prefix.name + "*"))  # the profile was removed once read
    # Profiling ended with the placement run: the timed runs after it are not profiled.
    assert not session.end_profiling()


def test_a_strict_session_needs_no_profile(tmp_path):
    path = conv_net(tmp_path / "c.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert node_placement(session, {}) is None


def test_shape_arithmetic_on_the_cpu_is_reported_and_compute_on_the_gpu_accepted():
    placement = placement_from_profile(profile("cuda_dynamic_batch.json"))
    assert placement.host_nodes == SHAPE_NODES and placement.host_compute_nodes == ()
    assert placement_problem(placement, "cuda") is None


def test_compute_on_the_cpu_is_refused_naming_the_nodes():
    events = profile("cuda_dynamic_batch.json")
    for event in events:
        if event.get("name") == "matmul_kernel_time":
            event["args"]["provider"] = "CPUExecutionProvider"
    problem = placement_problem(placement_from_profile(events), "cuda")
    assert problem == "1 compute node(s) ran on the CPU, not the CUDA provider: MatMul matmul"


def _guarded(options) -> bool:
    try:
        return options.get_session_config_entry("session.disable_cpu_ep_fallback") == "1"
    except RuntimeError:  # ORT: "SessionOptions does not have configuration with key"
        return False


class _GuardedSession:
    """ORT's session with the CPU-fallback guard: refused while the guard is on, as ORT does
    for a model with nodes the provider leaves to the CPU; made on the GPU provider without."""

    made: list = []

    def __init__(self, model, options, providers=None, **kwargs):
        _GuardedSession.made.append(options)
        if _guarded(options):
            raise RuntimeError(REFUSED)

    def disable_fallback(self):
        pass

    def get_providers(self):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_a_working_provider_refused_for_cpu_nodes_is_made_again_with_the_fallback_and_profiled(
        tmp_path, monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime, "InferenceSession", _GuardedSession)
    monkeypatch.setattr(sessions, "_preload_gpu_libraries", lambda: None)
    monkeypatch.setattr(sessions, "gpu_provider_problem", lambda provider: None)
    _GuardedSession.made = []
    session = create_session(tmp_path / "dynamic.onnx", plan_session("cuda"))
    assert isinstance(session, _GuardedSession)
    strict, allowed = _GuardedSession.made
    assert _guarded(strict) and not _guarded(allowed)
    assert allowed.enable_profiling and not strict.enable_profiling


def test_a_provider_that_does_not_work_is_still_unavailable_not_retried(tmp_path, monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime, "InferenceSession", _GuardedSession)
    monkeypatch.setattr(sessions, "_preload_gpu_libraries", lambda: None)
    monkeypatch.setattr(sessions, "gpu_provider_problem", lambda provider: "no CUDA-capable device")
    _GuardedSession.made = []
    with pytest.raises(ProviderUnavailable, match="^CUDA provider unavailable: no CUDA-capable device$"):
        create_session(tmp_path / "dynamic.onnx", plan_session("cuda"))
    assert len(_GuardedSession.made) == 1


# --- items 3 and 4: the budget and each configuration's own peak, through the runner ------


class LiveNvml:
    """One GPU whose NVML figure for this process is a 300 MiB CUDA context plus ``per_session``
    for each ONNX Runtime session still alive: what an arena that keeps what it took shows."""

    NVMLError = pynvml.NVMLError
    NVML_DEVICE_MIG_ENABLE = pynvml.NVML_DEVICE_MIG_ENABLE

    def __init__(self, per_session: int):
        self.per_session = per_session
        self.sessions: weakref.WeakSet = weakref.WeakSet()

    def nvmlDeviceGetCount(self):  # noqa: N802 - pynvml's names
        return 1

    def nvmlDeviceGetHandleByIndex(self, index):  # noqa: N802
        return "gpu0"

    def nvmlDeviceGetUUID(self, handle):  # noqa: N802
        return "GPU-5d1c0e43-8f2a-4b7e-9c61-0a3f2e7d8b14"

    def nvmlDeviceGetName(self, handle):  # noqa: N802
        return "NVIDIA GeForce GTX 1660"

    def nvmlDeviceGetMigMode(self, handle):  # noqa: N802
        return [0, 0]

    def nvmlDeviceGetMemoryInfo(self, handle):  # noqa: N802
        return SimpleNamespace(total=6 * 2**30, free=0, used=0)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):  # noqa: N802
        used = 300 * MIB + self.per_session * len(self.sessions)
        return [SimpleNamespace(pid=os.getpid(), usedGpuMemory=used)]


def _as_gpu_provider(monkeypatch, provider: str, nvml: LiveNvml):
    """The runner on ``provider`` with a CPU session underneath: the provider works, the
    session says it ran there, its nodes are placed as the CUDA-like profile says, and NVML
    is ``nvml``."""
    monkeypatch.setattr(sessions, "gpu_provider_problem", lambda name: None)
    monkeypatch.setattr(sessions, "provider_that_ran", lambda session: provider)
    monkeypatch.setattr(ort_runner.OrtSession, "_device_binding", lambda self: None)
    monkeypatch.setattr(ort_runner, "node_placement",
                        lambda session, feed: placement_from_profile(profile("cuda_dynamic_batch.json")))
    real_create = sessions.create_session

    def create(path, plan):
        session = real_create(path, plan_session("cpu"))
        nvml.sessions.add(session)
        return session

    monkeypatch.setattr(sessions, "create_session", create)
    monkeypatch.setattr(nvml_peak, "ProcessPeakMemory",
                        lambda baseline: ProcessPeakMemory(baseline=baseline, nvml=nvml,
                                                           cuda_uuid=lambda ordinal: None))


@pytest.mark.parametrize(("provider", "per_session_mib", "outcome", "check"), [
    # TensorRT provider: no arena cap; its measured 700 MiB passes a 512 MiB budget only if
    # the core does not check it. It must check it, and say so.
    ("tensorrt", 700, Outcome.OUT_OF_MEMORY, None),
    ("tensorrt", 200, Outcome.OK, BudgetCheck.MEASURED_PEAK),
    # CUDA provider: gpu_mem_limit caps its arena, the runtime holds the budget.
    ("cuda", 700, Outcome.OK, BudgetCheck.RUNTIME_LIMIT),
])
def test_the_memory_budget_is_held_by_the_provider_that_can_and_checked_on_the_peak_elsewhere(
        tmp_path, monkeypatch, provider, per_session_mib, outcome, check):
    path = conv_net(tmp_path / "conv_net.onnx")
    _as_gpu_provider(monkeypatch, provider, LiveNvml(per_session_mib * MIB))
    measurer, _ = _measurer(path, device="cuda")
    measurer.memory_budget_bytes = 512 * MIB
    config = RunConfig("infer", "fp32", 2, None).with_options(provider=provider)
    measurement = measurer.measure(config, budget_s=0.2, check_accuracy=False)
    assert measurement.outcome is outcome, measurement.reason
    if outcome is Outcome.OUT_OF_MEMORY:
        assert measurement.steps  # every rung of the ladder was over the budget
        return
    assert measurement.memory_budget_check is check
    assert measurement.to_dict()["memory_budget_check"] == check.value


def test_each_configuration_reports_its_own_increment_and_frees_its_session(tmp_path, monkeypatch):
    nvml = LiveNvml(200 * MIB)
    path = conv_net(tmp_path / "conv_net.onnx")
    _as_gpu_provider(monkeypatch, "cuda", nvml)
    measurer, _ = _measurer(path, device="cuda")
    measurements = [measurer.measure(RunConfig("infer", precision, 2, None), budget_s=0.2,
                                     check_accuracy=False) for precision in ("fp32", "int8")]
    for measurement in measurements:
        assert measurement.ok, measurement.reason
        # Neither the context nor the earlier precision's session: 200 MiB each.
        assert measurement.peak_memory_bytes == 200 * MIB
        assert measurement.peak_memory_figure is MemoryFigure.NVML_PROCESS_INCREMENT
        assert measurement.host_nodes == SHAPE_NODES
        assert measurement.to_dict()["peak_memory_figure"] == "nvml_process_increment"
    assert len(nvml.sessions) == 0  # every session freed when its configuration closed



# --- item 14: what an "fp32" row computes in -----------------------------------------------


@pytest.mark.parametrize(("provider", "options", "math"), [
    ("cuda", {}, IEEE_MATH),  # use_tf32=0, always passed: ORT's own default is on
    ("cuda", {"tf32": True}, TF32_MATH),
    ("tensorrt", {}, session_plan.TENSORRT_FP32_MATH),  # no way to clear TensorRT's TF32
])
def test_each_gpu_fp32_row_says_what_it_computed_in_the_table_and_the_json(
        tmp_path, monkeypatch, capsys, provider, options, math):
    path = conv_net(tmp_path / "conv_net.onnx")
    _as_gpu_provider(monkeypatch, provider, LiveNvml(100 * MIB))
    measurer, _ = _measurer(path, device="cuda")
    configs = [RunConfig("infer", precision, 2, None).with_options(provider=provider, **options)
               for precision in ("fp32", "int8")]
    rows = [measurer.measure(config, budget_s=0.2, check_accuracy=False) for config in configs]
    fp32, int8 = rows
    assert fp32.ok and int8.ok, (fp32.reason, int8.reason)
    assert fp32.math == math and fp32.to_dict()["math"] == math
    assert int8.math == "" and "math" not in int8.to_dict()  # INT8 has no FP32 question
    results_table(rows, "onnxruntime")
    shown = " ".join(capsys.readouterr().err.split())  # the result column may wrap
    assert f"; {math}" in shown and shown.count("matmul and conv") == 1


# --- item 15: the accuracy check's outputs from a CUDA graph ---------------------------------


class _Binding:
    """An IOBinding on the CPU: what the runner binds, by name, and the last replay's outputs."""

    def __init__(self):
        self.inputs: dict = {}
        self.output_names: list[str] = []
        self.outputs: list = []

    def bind_ortvalue_input(self, name, value):
        self.inputs[name] = value

    def bind_output(self, name, device_type="cpu", device_id=0):
        self.output_names.append(name)

    def copy_outputs_to_cpu(self):
        return list(self.outputs)


class _CudaGraphSession:
    """A CPU session that runs as one replaying a CUDA graph: the run that captures reads its
    inputs, and every later run reads the buffers that run read, whatever it is given — so
    ``run`` with new arrays returns the captured batch's outputs again."""

    def __init__(self, session):
        self._session = session
        self.bindings: list[_Binding] = []
        #: Readers of the buffers the capturing run read, by input name.
        self.captured: dict | None = None
        self.replayed_shapes: list[tuple[int, ...]] = []

    def __getattr__(self, name):
        return getattr(self._session, name)

    def io_binding(self):
        self.bindings.append(_Binding())
        return self.bindings[-1]

    def run(self, names, feed):
        if self.captured is None:
            copies = {name: np.array(array) for name, array in feed.items()}
            self.captured = {name: (lambda array=array: array) for name, array in copies.items()}
        return self._replay(names)

    def run_with_iobinding(self, binding):
        if self.captured is None:
            self.captured = {name: value.numpy for name, value in binding.inputs.items()}
        binding.outputs = self._replay(binding.output_names)

    def _replay(self, names):
        arrays = {name: read() for name, read in self.captured.items()}
        self.replayed_shapes.extend(array.shape for array in arrays.values())
        return self._session.run(names, arrays)


def _as_cuda_graph_session(monkeypatch) -> list[_CudaGraphSession]:
    """The runner on the CUDA provider with each session a :class:`_CudaGraphSession` over a
    CPU one (listed in the list returned), made only from a plan that asks for a CUDA graph,
    and device buffers on the host."""
    made: list[_CudaGraphSession] = []
    monkeypatch.setattr(sessions, "gpu_provider_problem", lambda name: None)
    monkeypatch.setattr(sessions, "provider_that_ran", lambda session: "cuda")
    monkeypatch.setattr(ort_runner, "node_placement", lambda session, feed: None)
    real_create = sessions.create_session

    def create(path, plan):
        assert session_plan.uses_cuda_graph(plan), plan.provider_options
        made.append(_CudaGraphSession(real_create(path, plan_session("cpu"))))
        return made[-1]

    monkeypatch.setattr(sessions, "create_session", create)
    # A copy, as to a device: a host OrtValue would share the numpy array's memory.
    on_the_host = onnxruntime.OrtValue.ortvalue_from_numpy
    monkeypatch.setattr(onnxruntime.OrtValue, "ortvalue_from_numpy",
                        staticmethod(lambda array, *device: on_the_host(np.array(array))))
    nvml = LiveNvml(100 * MIB)
    monkeypatch.setattr(nvml_peak, "ProcessPeakMemory",
                        lambda baseline: ProcessPeakMemory(baseline=baseline, nvml=nvml,
                                                           cuda_uuid=lambda ordinal: None))
    return made


def _samples(count: int) -> dict:
    return {"x": np.random.default_rng(count).standard_normal((count, 3, 16, 16)).astype(np.float32)}


def test_a_cuda_graph_sessions_outputs_are_its_inputs_not_the_captured_batch(tmp_path, monkeypatch):
    made = _as_cuda_graph_session(monkeypatch)
    path = conv_net(tmp_path / "fixed_batch.onnx", batch=2)  # static shapes: the plan asks for a graph
    measurer, _ = _measurer(path, device="cuda")
    config = RunConfig("infer", "fp32", 2, None).with_options(provider="cuda", cuda_graph=True)
    session = open_first_fitting(measurer, config).session  # its first step captures the graph
    (graph,) = made
    inputs = _samples(5)
    outputs = session.outputs(inputs)
    # Two runs of the graph's batch; the fifth sample left out, as at a fixed batch everywhere
    # (the FP32 reference included).
    on_the_cpu = create_session(path, plan_session("cpu"))
    expected = np.concatenate([on_the_cpu.run(None, {"x": inputs["x"][start:start + 2]})[0]
                               for start in (0, 2)])
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    assert set(graph.replayed_shapes) == {(2, 3, 16, 16)}
    # The buffers hold the session's own batch again: the timed steps run what they ran before.
    (binding,) = graph.bindings
    np.testing.assert_array_equal(binding.inputs["x"].numpy(), session.feed["x"])
    session.close()


def test_a_cuda_graph_runs_a_remainder_padded_to_its_batch_and_drops_the_padding(tmp_path, monkeypatch):
    made = _as_cuda_graph_session(monkeypatch)
    path = conv_net(tmp_path / "dynamic_batch.onnx")
    # A graph captured at batch 3 of a dynamic-batch export. The plan asks for one only when
    # every shape is static, but outputs() must not count on the samples filling each run.
    planned = ort_runner.OrtPrepared.plan
    monkeypatch.setattr(ort_runner.OrtPrepared, "plan", lambda self, budget: dataclasses.replace(
        planned(self, budget), provider_options={**planned(self, budget).provider_options,
                                                 "enable_cuda_graph": "1"}))
    measurer, _ = _measurer(path, device="cuda")
    config = RunConfig("infer", "fp32", 3, None).with_options(provider="cuda")
    session = open_first_fitting(measurer, config).session
    (graph,) = made
    inputs = _samples(7)
    outputs = session.outputs(inputs)
    expected = create_session(path, plan_session("cpu")).run(None, inputs)[0]
    assert outputs.shape == (7, 10)  # 3 + 3 + 1 of 3, the two padding rows dropped
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    assert graph.replayed_shapes == [(3, 3, 16, 16)] * 4  # the first step, then three chunks
    session.close()


@pytest.mark.gpu
def test_a_real_cuda_graph_sessions_outputs_match_the_cpu_and_its_fp32_says_ieee(tmp_path):
    problem = sessions.gpu_provider_problem("cuda")
    if problem is not None:
        pytest.skip(problem)
    path = conv_net(tmp_path / "fixed_batch.onnx", batch=2)
    measurer, _ = _measurer(path, device="cuda")
    config = RunConfig("infer", "fp32", 2, None).with_options(provider="cuda", cuda_graph=True)
    session, *_ = measurer.open_with_ladder(config)
    assert session_plan.uses_cuda_graph(session.plan) and session.math == IEEE_MATH
    for _ in range(3):  # captured and replayed on the session's own batch first
        session.step()
    inputs = _samples(6)
    expected = np.concatenate([create_session(path, plan_session("cpu")).run(
        None, {"x": inputs["x"][start:start + 2]})[0] for start in (0, 2, 4)])
    np.testing.assert_allclose(session.outputs(inputs), expected, rtol=1e-3, atol=1e-3)
    session.close()
