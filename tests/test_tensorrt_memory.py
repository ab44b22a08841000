"""Each TensorRT configuration's peak memory is its own (issue 24, item 4), through the
runner's seams on the CPU: the stand-in TensorRT (tests/standin_tensorrt.py) with host
memory for the GPU's, and an NVML whose figure for this process is a CUDA context plus a
fixed amount for each engine still alive (``LiveNvml``, as ONNX Runtime's test has it for
its sessions)."""

from __future__ import annotations

import gc
import os
from types import SimpleNamespace

import pytest

pytest.importorskip("onnx")
pytest.importorskip("torch")
from autotune_plugins.common import nvml_peak  # noqa: E402
from autotune_plugins.common.nvml_peak import ProcessPeakMemory  # noqa: E402
from autotune_plugins.tensorrt import engine_build as trt_build  # noqa: E402
from autotune_plugins.tensorrt import engine_cache as trt_cache  # noqa: E402
from autotune_plugins.tensorrt import precision_proof as trt_proof  # noqa: E402
from autotune_plugins.tensorrt import runner as trt_runner  # noqa: E402

from autotune import plugins  # noqa: E402
from autotune.backend_api import MemoryFigure, RunConfig  # noqa: E402
from autotune.cache import cache_root  # noqa: E402
from autotune.measure.measurement import Outcome  # noqa: E402
from autotune.measure.measurer import Measurer  # noqa: E402
from autotune.model.source import model_stats_for, parse_model  # noqa: E402
from tests import standin_tensorrt  # noqa: E402
from tests.test_ort_gpu_paths import MIB, LiveNvml  # noqa: E402
from tests.test_ort_runner import conv_net  # noqa: E402
from tests.test_tensorrt_backend import TENSORRT_10, TENSORRT_11, HostDevice  # noqa: E402

PER_ENGINE = 150 * MIB

pytestmark = pytest.mark.usefixtures("quick_timing")


class ContainerNvml(LiveNvml):
    """The same GPU seen from a container: NVML lists the host's PID for this process, never
    ours, so only the device's used memory moves with the engines."""

    def nvmlDeviceGetComputeRunningProcesses(self, handle):  # noqa: N802 - pynvml's names
        (process,) = super().nvmlDeviceGetComputeRunningProcesses(handle)
        return [SimpleNamespace(pid=os.getpid() + 100_000, usedGpuMemory=process.usedGpuMemory)]

    def nvmlDeviceGetMemoryInfo(self, handle):  # noqa: N802
        used = 300 * MIB + self.per_session * len(self.sessions)
        return SimpleNamespace(total=6 * 2**30, free=6 * 2**30 - used, used=used)


class Engines:
    """Every engine the stand-in's runtimes load, while it lives (in ``nvml.sessions``, so
    NVML's figure follows them), and each one's ``device_memory_size_v2`` (None: absent)."""

    def __init__(self, monkeypatch, trt, nvml: LiveNvml):
        self.loaded = 0
        self.context_bytes: list[int | None] = []
        load = trt.Runtime.deserialize_cuda_engine

        def deserialize(runtime, plan):
            engine = load(runtime, plan)
            if engine is not None:
                self.loaded += 1
                nvml.sessions.add(engine)
                self.context_bytes.append(getattr(engine, "device_memory_size_v2", None))
            return engine

        monkeypatch.setattr(trt.Runtime, "deserialize_cuda_engine", deserialize)
        monkeypatch.setattr(nvml_peak, "ProcessPeakMemory", lambda **kwargs: ProcessPeakMemory(
            **kwargs, nvml=nvml, cuda_uuid=lambda ordinal: None))


def _measurer(path) -> Measurer:
    source = parse_model(str(path), None, None)
    backend = plugins.backends()["tensorrt"][1]
    return Measurer("tensorrt", trt_runner.TrtRunner(), source, model_stats_for(source), "cuda",
                    ("fp32", "fp16"), options=backend.options)


def _measure(measurer: Measurer, precision: str):
    measurement = measurer.measure(RunConfig("infer", precision, 2, None), budget_s=0.2, check_accuracy=False)
    assert measurement.ok, measurement.reason
    return measurement


@pytest.fixture
def builds(monkeypatch):
    """The precision of every engine built and of every engine proven, in order."""
    done = SimpleNamespace(built=[], proven=[])
    build, prove = trt_build.build_engine, trt_proof.prove_precision

    def building(trt, request):
        done.built.append(request.precision)
        return build(trt, request)

    def proving(asked, *args):
        done.proven.append(asked)
        return prove(asked, *args)

    monkeypatch.setattr(trt_build, "build_engine", building)
    monkeypatch.setattr(trt_proof, "prove_precision", proving)
    return done


@pytest.mark.parametrize("version", [TENSORRT_10, TENSORRT_11])
def test_each_configuration_reports_its_own_increment_and_frees_its_engine(monkeypatch, tmp_path, builds,
                                                                           version):
    monkeypatch.setattr(trt_runner, "DEVICE", HostDevice)
    nvml = LiveNvml(PER_ENGINE)
    engines = Engines(monkeypatch, standin_tensorrt.install(monkeypatch, version), nvml)
    measurer = _measurer(conv_net(tmp_path / "conv_net.onnx"))
    try:
        for precision in ("fp32", "fp16", "fp32"):
            measurement = _measure(measurer, precision)
            # Neither the CUDA context nor the engine of the configuration before it.
            assert measurement.peak_memory_bytes == PER_ENGINE
            assert measurement.peak_memory_figure is MemoryFigure.NVML_PROCESS_INCREMENT
            assert measurement.to_dict()["peak_memory_figure"] == "nvml_process_increment"
            # Its session closed, its engine is gone, though its preparation is still held.
            assert len(nvml.sessions) == 0
        assert len(measurer._prepared) == 2
    finally:
        measurer.close()
    # FP32's second session loaded the plan it had proven from the engine cache: no rebuild,
    # no second proof.
    assert builds.built == builds.proven == ["fp32", "fp16"] and engines.loaded == 3


def test_a_plan_gone_from_the_cache_is_built_and_proven_again(monkeypatch, tmp_path, builds):
    monkeypatch.setattr(trt_runner, "DEVICE", HostDevice)
    Engines(monkeypatch, standin_tensorrt.install(monkeypatch, TENSORRT_11), LiveNvml(PER_ENGINE))
    measurer = _measurer(conv_net(tmp_path / "conv_net.onnx"))
    try:
        _measure(measurer, "fp32")
        for plan in (cache_root() / trt_cache.ENGINE_CACHE_KIND).glob("*.engine"):
            plan.unlink()
        _measure(measurer, "fp32")
    finally:
        measurer.close()
    assert builds.built == builds.proven == ["fp32", "fp32"]


def test_where_nvml_sees_no_process_the_figure_is_the_engines_own(monkeypatch, tmp_path):
    monkeypatch.setattr(trt_runner, "DEVICE", HostDevice)
    nvml = ContainerNvml(PER_ENGINE)
    engines = Engines(monkeypatch, standin_tensorrt.install(monkeypatch, TENSORRT_11), nvml)
    measurer = _measurer(conv_net(tmp_path / "conv_net.onnx"))
    try:
        measurement = _measure(measurer, "fp16")
    finally:
        measurer.close()
    (context_bytes,) = engines.context_bytes
    assert context_bytes and measurement.peak_memory_bytes == context_bytes
    assert measurement.peak_memory_figure is MemoryFigure.RUNTIME
    assert measurement.to_dict()["peak_memory_figure"] == "runtime"


def test_an_engine_without_device_memory_size_v2_gives_no_figure_of_its_own(monkeypatch, tmp_path):
    # A TensorRT without the attribute: the device's increment is left, and says it is.
    monkeypatch.setattr(trt_runner, "DEVICE", HostDevice)
    monkeypatch.delattr(standin_tensorrt._CudaEngine, "device_memory_size_v2")
    nvml = ContainerNvml(PER_ENGINE)
    engines = Engines(monkeypatch, standin_tensorrt.install(monkeypatch, TENSORRT_11), nvml)
    measurer = _measurer(conv_net(tmp_path / "conv_net.onnx"))
    try:
        measurement = _measure(measurer, "fp16")
    finally:
        measurer.close()
    assert engines.context_bytes == [None]
    assert measurement.peak_memory_bytes == PER_ENGINE
    assert measurement.peak_memory_figure is MemoryFigure.NVML_DEVICE_INCREMENT


def test_a_session_that_does_not_open_frees_its_engine_at_once(monkeypatch, tmp_path):
    # Nobody closes a session whose context TensorRT could not make: the ladder's next rung
    # must not find its engine still loaded (with the garbage collector off, as it may be).
    monkeypatch.setattr(trt_runner, "DEVICE", HostDevice)
    nvml = LiveNvml(PER_ENGINE)
    trt = standin_tensorrt.install(monkeypatch, TENSORRT_11)
    Engines(monkeypatch, trt, nvml)
    measurer = _measurer(conv_net(tmp_path / "conv_net.onnx"))
    try:
        _measure(measurer, "fp32")  # built and proven while contexts could still be made
        monkeypatch.setattr(trt.ICudaEngine, "create_execution_context", lambda engine: None)
        gc.disable()
        try:
            measurement = measurer.measure(RunConfig("infer", "fp32", 2, None), budget_s=0.2,
                                           check_accuracy=False)
            alive = len(nvml.sessions)
        finally:
            gc.enable()
    finally:
        measurer.close()
    assert measurement.outcome is Outcome.OUT_OF_MEMORY  # every rung, each loading an engine
    assert alive == 0
