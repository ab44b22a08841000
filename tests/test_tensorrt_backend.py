"""The TensorRT backend, run end to end against a stand-in that follows TensorRT 10's and 11's
Python APIs (tests/standin_tensorrt.py, kept honest by tests/test_tensorrt_api.py), with host
memory in place of the GPU's: the version paths, the engine and timing caches, the precision
proof, and bad input. Real engines are built only in the tests marked ``tensorrt``."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
from autotune_plugins.tensorrt import device as trt_device  # noqa: E402
from autotune_plugins.tensorrt import engine_build as trt_build  # noqa: E402
from autotune_plugins.tensorrt import engine_cache as trt_cache  # noqa: E402
from autotune_plugins.tensorrt import messages as trt_messages  # noqa: E402
from autotune_plugins.tensorrt import precision_proof as trt_proof  # noqa: E402
from autotune_plugins.tensorrt import runner as trt_runner  # noqa: E402
from autotune_plugins.tensorrt import session as trt_session  # noqa: E402

from autotune import api, plugins  # noqa: E402
from autotune.backend_api import IEEE_MATH, TF32_MATH, PrecisionEvidence, RunConfig  # noqa: E402
from autotune.cache import cache_root  # noqa: E402
from autotune.cli.render import results_table  # noqa: E402
from autotune.errors import DoesNotFit, NoBackend  # noqa: E402
from autotune.measure.measurement import Outcome  # noqa: E402
from autotune.measure.measurer import Measurer  # noqa: E402
from autotune.measure.protocol import WallClock  # noqa: E402
from autotune.model.source import model_stats_for, parse_model  # noqa: E402
from tests import standin_tensorrt  # noqa: E402
from tests.conftest import simulated  # noqa: E402
from tests.test_cli import one_line_error, run  # noqa: E402
from tests.test_ort_runner import conv_net  # noqa: E402

TENSORRT_10, TENSORRT_11 = "10.16.1.11", "11.4.0.106"
GPU = "H100 SXM"

#: verify and bench here are about what they measure, decide and print, not how long they
#: time (tests/test_budget.py holds the budgets on the wall clock).
pytestmark = pytest.mark.usefixtures("quick_timing")


class HostDevice:
    """What :class:`trt_device.CudaDevice` offers, in host memory: the stand-in reads and
    writes the buffers at their addresses, as TensorRT does on the GPU."""

    def name(self) -> str:
        return "NVIDIA H100 80GB HBM3"

    def compute_capability(self) -> str:
        return "9.0"

    def total_memory_bytes(self) -> int:
        return 80 * 2**30

    def tensor(self, array, dtype: str):
        return torch.from_numpy(np.ascontiguousarray(array)).to(getattr(torch, dtype)).contiguous()

    def empty(self, shape, dtype: str):
        return torch.empty(shape, dtype=getattr(torch, dtype))

    def stream_handle(self) -> int:
        return 0x51  # a stream of its own, as CudaDevice's (0 is the default stream)

    def synchronize(self) -> None:
        pass

    def clock(self):
        return WallClock()

    def release(self) -> None:
        pass

    def is_out_of_memory(self, error: BaseException) -> bool:
        return False


@pytest.fixture
def on_a_gpu(monkeypatch):
    """An H100 as the probe sees it, and host memory as its device memory."""
    monkeypatch.setattr(api, "probe", lambda *args, **kwargs: simulated(GPU))
    monkeypatch.setattr(trt_runner, "DEVICE", HostDevice)


@pytest.fixture(params=[TENSORRT_10, TENSORRT_11])
def tensorrt(request, monkeypatch, on_a_gpu):
    return standin_tensorrt.install(monkeypatch, request.param)


@pytest.fixture
def onnx_file(tmp_path):
    return conv_net(tmp_path / "conv_net.onnx")


@pytest.fixture
def builds(monkeypatch):
    """The engines built in this test, by precision."""
    built = []
    original = trt_build.build_engine

    def counting(trt, request):
        built.append(request.precision)
        return original(trt, request)

    monkeypatch.setattr(trt_build, "build_engine", counting)
    return built


def verify(model, budget_s=30, **settings):
    verification = api.verify(str(model), backends="tensorrt", budget_s=budget_s, **settings)
    (report,) = verification.reports
    return report


def test_each_version_builds_proves_and_measures_its_precisions(tensorrt, onnx_file, monkeypatch):
    # A small budget keeps the batch search within what the stand-in runs in host memory.
    # The engine's profile reaches the memory model's batch for the whole card (planned
    # without the budget) and its context takes memory for that batch, so TensorRT's own
    # figure, the one left where NVML sees no process, would put every batch over this
    # budget (tests/test_tensorrt_memory.py): this test is about the version paths, so the
    # budget is held on the memory model's prediction, as with no figure at all.
    monkeypatch.setattr(trt_session, "context_memory_bytes", lambda engine: None)
    report = verify(onnx_file, memory_budget_gb=0.6, budget_s=20)
    assert report.status == "measured", report.reason
    ran = {m.config.precision: m for m in report.measurements if m.ok}
    # H100: the rules' FP16, then the INT8 quantisation; BF16 is built by 10 only.
    assert {"fp16", "int8"} <= set(ran)
    for precision, measurement in ran.items():
        assert measurement.device == f"TensorRT {tensorrt.__version__} (NVIDIA H100 80GB HBM3)"
        detail = measurement.model_file.detail
        assert detail.startswith("TensorRT engine: ") and f" {precision if precision != 'tf32' else 'fp32'}" \
            in detail, detail
        assert measurement.accuracy is not None and measurement.accuracy.passed
    bf16 = [m for m in report.measurements if m.config.precision == "bf16"]
    if tensorrt.__version__ == TENSORRT_11:
        assert not bf16 or bf16[0].outcome is Outcome.UNSUPPORTED
    else:
        assert bf16 and bf16[0].ok


def test_the_engine_is_cached_and_the_next_run_builds_nothing(tensorrt, onnx_file, builds):
    verify(onnx_file, precision="fp16", batch_size=4, budget_s=10)
    first = list(builds)
    assert "fp16" in first
    engines = sorted((cache_root() / trt_cache.ENGINE_CACHE_KIND).glob("*.engine"))
    assert engines and not list((cache_root() / trt_cache.ENGINE_CACHE_KIND).glob(".*"))
    timing = list((cache_root() / trt_build.TIMING_CACHE_KIND).glob("*.cache"))
    assert len(timing) == 1  # one per GPU and TensorRT version, shared by every engine
    builds.clear()
    verify(onnx_file, precision="fp16", batch_size=4, budget_s=10)
    assert builds == []
    # A timing cache TensorRT cannot read is replaced by a fresh one, not trusted or fatal.
    timing[0].write_bytes(b"not a timing cache")
    verify(onnx_file, precision="fp32", batch_size=4, budget_s=10)
    assert builds == ["fp32"] and timing[0].read_bytes() != b"not a timing cache"


@pytest.mark.parametrize("damage", ["corrupt", "other_version"])
def test_a_cached_engine_that_does_not_load_is_rebuilt_and_says_why(tensorrt, onnx_file, builds, damage,
                                                                   monkeypatch):
    verify(onnx_file, precision="fp16", batch_size=4, budget_s=10)
    (engine,) = [p for p in (cache_root() / trt_cache.ENGINE_CACHE_KIND).glob("*.engine")
                 if "fp16" in json.loads(p.with_suffix(".json").read_text())["key"]["precision"]]
    if damage == "corrupt":
        engine.write_bytes(engine.read_bytes()[: len(engine.read_bytes()) // 3])
    else:
        # The bytes of an engine another TensorRT version built, under this version's key.
        other = TENSORRT_11 if tensorrt.__version__ == TENSORRT_10 else TENSORRT_10
        foreign = standin_tensorrt.make_module(other)
        monkeypatch.setitem(__import__("sys").modules, "tensorrt", foreign)
        request = trt_build.EngineRequest(
            onnx_path=onnx_file, onnx_sha256="0" * 64, precision="fp32", input_shapes={
                "x": ((1, 3, 16, 16), (4, 3, 16, 16), (8, 3, 16, 16))}, workspace_bytes=2**30,
            optimization_level=3, tf32=False, gpu_name="g", compute_capability="9.0")
        engine.write_bytes(trt_build.build_engine(foreign, request))
        monkeypatch.setitem(__import__("sys").modules, "tensorrt", tensorrt)
    builds.clear()
    report = verify(onnx_file, precision="fp16", batch_size=4, budget_s=10)
    fp16 = next(m for m in report.measurements if m.config.precision == "fp16" and m.ok)
    assert "rebuilt: the cached engine could not be loaded (" in fp16.model_file.detail
    assert builds.count("fp16") == 1


def test_an_fp32_engine_built_for_fp16_is_refused_not_reported(monkeypatch, on_a_gpu, onnx_file):
    # TensorRT 11's known trap: asked for FP16, it builds FP32 with a warning only.
    standin_tensorrt.install(monkeypatch, TENSORRT_11, built_precision="Float")
    report = verify(onnx_file, precision="fp16", batch_size=4, budget_s=10)
    fp16 = [m for m in report.measurements if m.config.precision == "fp16"]
    assert fp16 and all(m.outcome is Outcome.UNSUPPORTED for m in fp16)
    assert "none in fp16" in fp16[0].reason and "not reported as fp16" in fp16[0].reason
    assert "(TensorRT: " in fp16[0].reason  # what it warned while building


def test_tf32_is_cleared_for_fp32_and_set_only_when_asked(tensorrt, onnx_file, monkeypatch):
    flags = []
    original = tensorrt.Builder.build_serialized_network

    def recording(self, network, config):
        flags.append(config.get_flag(tensorrt.BuilderFlag.TF32))
        return original(self, network, config)

    monkeypatch.setattr(tensorrt.Builder, "build_serialized_network", recording)
    request = dict(onnx_path=onnx_file, onnx_sha256="1" * 64, input_shapes={
        "x": ((1, 3, 16, 16), (4, 3, 16, 16), (8, 3, 16, 16))}, workspace_bytes=2**30,
        optimization_level=3, gpu_name="g", compute_capability="9.0")
    trt_build.build_engine(tensorrt, trt_build.EngineRequest(precision="fp32", tf32=False, **request))
    trt_build.build_engine(tensorrt, trt_build.EngineRequest(precision="tf32", tf32=True, **request))
    assert flags == [False, True]


@pytest.mark.parametrize(("precision", "options", "math"), [
    ("fp32", {}, IEEE_MATH),  # BuilderFlag.TF32 cleared, where TensorRT's own default is TF32
    ("fp32", {"tf32": True}, TF32_MATH),  # the tf32 decision leaves it set
    ("tf32", {}, TF32_MATH),
    ("fp16", {}, ""),  # no FP32 question: the row says nothing
])
def test_each_fp32_row_says_what_its_engine_computes_in_from_the_tf32_flag_it_was_built_with(
        tensorrt, onnx_file, monkeypatch, capsys, precision, options, math):
    flags = set()
    original = tensorrt.Builder.build_serialized_network

    def recording(self, network, config):
        flags.add(config.get_flag(tensorrt.BuilderFlag.TF32))
        return original(self, network, config)

    monkeypatch.setattr(tensorrt.Builder, "build_serialized_network", recording)
    source = parse_model(str(onnx_file), None, None)
    measurer = Measurer("tensorrt", trt_runner.TrtRunner(), source, model_stats_for(source), "cuda",
                        ("fp32", "tf32", "fp16"), options=plugins.backends()["tensorrt"][1].options)
    config = RunConfig("infer", precision, 2, None).with_options(**options)
    row = measurer.measure(config, budget_s=0.2, check_accuracy=False)
    assert row.ok, row.reason
    assert flags == {math == TF32_MATH}  # the phrase is the flag the engine was built with
    assert row.math == math and row.to_dict().get("math") == (math or None)
    results_table([row], "tensorrt")
    shown = " ".join(capsys.readouterr().err.split())  # the result column may wrap
    assert shown.count("matmul and conv") == (1 if math else 0) and (not math or f"; {math}" in shown)


def test_tensorrt_11_has_no_precision_flags_and_takes_fp16_from_the_file(monkeypatch, on_a_gpu, onnx_file):
    trt = standin_tensorrt.install(monkeypatch, TENSORRT_11)
    assert not hasattr(trt.BuilderFlag, "FP16")
    runner = trt_runner.TrtRunner()
    from autotune.backend_api import Preparation  # noqa: PLC0415
    from autotune.model_inputs import from_shape  # noqa: PLC0415

    preparation = Preparation("infer", "fp16", from_shape((3, 16, 16), "x"))
    assert runner._onnx_for(onnx_file, preparation) != onnx_file  # an FP16-converted file
    trt10 = standin_tensorrt.install(monkeypatch, TENSORRT_10)
    assert hasattr(trt10.BuilderFlag, "FP16")
    assert trt_runner.TrtRunner()._onnx_for(onnx_file, preparation) == onnx_file  # the flag's job


def test_a_model_the_parser_rejects_is_one_line_naming_the_node_and_exit_2(tensorrt, tmp_path, capsys):
    path = conv_net(tmp_path / "unsupported.onnx")
    standin_tensorrt.refuse_operator(tensorrt, "Gemm")
    message = one_line_error(capsys, "verify", "--model", str(path), "--backend", "tensorrt",
                             "--budget-s", "10", "--batch-size", "4")
    assert "TensorRT's ONNX parser rejects unsupported.onnx: node 6" in message and "Gemm" in message
    assert "--backend onnxruntime" in message
    engines = cache_root() / trt_cache.ENGINE_CACHE_KIND
    assert not engines.exists() or [p for p in engines.iterdir() if not p.name.endswith(".lock")] == []


def test_no_gpu_no_tensorrt_each_says_so_and_the_other_backends_run(monkeypatch, onnx_file, capsys):
    code, out, err = run(capsys, "verify", "--model", str(onnx_file), "--backend", "tensorrt",
                         "--budget-s", "5")
    assert code == 1
    assert "tensorrt is not installed (pip install tensorrt-cu13" in out + err
    assert "pypi.nvidia.com" in out + err
    standin_tensorrt.install(monkeypatch, TENSORRT_10)
    code, out, err = run(capsys, "verify", "--model", str(onnx_file), "--backend", "tensorrt,onnxruntime",
                         "--budget-s", "8")
    assert code == 0, err
    assert "TensorRT runs on NVIDIA GPUs only, and this machine has none" in out


def test_training_is_left_to_pytorch(tensorrt):
    with pytest.raises(NoBackend) as refused:
        verify("tests.test_model_stats:small_cnn", input_shape="3,32,32", task="train", budget_s=5)
    (report,) = refused.value.reports
    assert report.status == "skipped" and "TensorRT serves trained models" in report.reason


def test_bench_sweeps_the_tensorrt_backend(tensorrt, onnx_file, capsys):
    code, out, err = run(capsys, "bench", "--model", str(onnx_file), "--backend", "tensorrt", "--sweep",
                         "batch=1,4", "--budget-s", "5", "--json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    ran = {(r["precision"], r["batch_size"]) for r in rows if r["status"] == "ok"}
    assert {("fp16", 1), ("fp16", 4), ("int8", 1), ("int8", 4)} <= ran, rows


def test_a_model_with_dynamic_dimensions_and_no_shapes_is_exit_2(tensorrt, tmp_path, capsys):
    path = conv_net(tmp_path / "dynamic.onnx", batch="batch")
    model = __import__("onnx").load(str(path))
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.dim_param = "side"
    __import__("onnx").save(model, str(path))
    message = one_line_error(capsys, "verify", "--model", str(path), "--backend", "tensorrt")
    assert "dynamic input dimensions" in message and "--input-spec" in message


def test_an_optimization_level_tensorrt_lacks_is_exit_2(tensorrt, onnx_file, capsys):
    message = one_line_error(capsys, "verify", "--model", str(onnx_file), "--backend", "tensorrt",
                             "--set", "tensorrt.optimization_level=9")
    assert "tensorrt.optimization_level" in message and "5" in message


def test_a_graph_exported_at_a_fixed_batch_gets_an_engine_at_that_batch(tensorrt, tmp_path):
    report = verify(conv_net(tmp_path / "fixed.onnx", batch=2), budget_s=10, precision="fp16")
    ran = [m for m in report.measurements if m.ok]
    assert ran and {m.config.batch_size for m in ran} == {2}, report.measurements


class FakeCuda:
    """``torch.cuda`` as :class:`trt_device.CudaDevice` uses it, on a machine with no GPU:
    streams with handles, the current stream (the default one, handle 0, as in torch), and
    events that remember the stream they were recorded on."""

    DEFAULT = 0

    def __init__(self):
        self.recorded_on: list[int] = []
        self.current = self.DEFAULT
        cuda = self

        class Stream:
            handles = iter(range(0x7F00, 0x8000))

            def __init__(self):
                self.cuda_stream = next(self.handles)

            def synchronize(self):
                pass

        class Event:
            def __init__(self, enable_timing=False):
                self.at = 0.0

            def record(self, stream=None):
                cuda.recorded_on.append(stream.cuda_stream if stream is not None else cuda.current)
                self.at = time.perf_counter()

            def synchronize(self):
                pass

            def elapsed_time(self, end):
                return (end.at - self.at) * 1e3

        self.Stream, self.Event = Stream, Event

    def install(self, monkeypatch):
        @contextmanager
        def stream(chosen):
            before, self.current = self.current, chosen.cuda_stream
            try:
                yield
            finally:
                self.current = before

        current = SimpleNamespace(cuda_stream=self.DEFAULT)
        for name, value in {"is_available": lambda: True,
                            "get_device_name": lambda *a: "NVIDIA H100 80GB HBM3",
                            "get_device_capability": lambda *a: (9, 0),
                            "get_device_properties": lambda *a: SimpleNamespace(total_memory=80 * 2**30),
                            "Stream": self.Stream, "Event": self.Event, "stream": stream,
                            "current_stream": lambda *a: current, "synchronize": lambda *a: None,
                            "empty_cache": lambda: None}.items():
            monkeypatch.setattr(torch.cuda, name, value)
        # The buffers stay in host memory, where the stand-in reads and writes them.
        monkeypatch.setattr(trt_device.CudaDevice, "memory", "cpu")


@pytest.mark.parametrize("version", [TENSORRT_10, TENSORRT_11])
def test_the_engine_runs_on_a_stream_of_its_own_and_the_clock_times_that_stream(monkeypatch, onnx_file,
                                                                                 version):
    monkeypatch.setattr(api, "probe", lambda *args, **kwargs: simulated(GPU))
    cuda = FakeCuda()
    cuda.install(monkeypatch)
    trt = standin_tensorrt.install(monkeypatch, version)
    report = verify(onnx_file, precision="fp16", batch_size=4, budget_s=10)
    assert any(m.ok for m in report.measurements), report.measurements
    enqueued = set(standin_tensorrt.enqueued_streams(trt))
    # One stream for every enqueue, not torch's current (default) stream, on which TensorRT
    # warns and synchronises; the clock's events are recorded on that same stream.
    assert len(enqueued) == 1 and FakeCuda.DEFAULT not in enqueued
    assert cuda.recorded_on and set(cuda.recorded_on) == enqueued


@pytest.mark.parametrize("first_logger_wins", [True, False])
def test_a_builds_out_of_memory_is_found_in_the_processs_one_logger(monkeypatch, on_a_gpu, onnx_file,
                                                                   first_logger_wins):
    # Whether TensorRT 10/11 send everything to the first logger given (as 7.x and 8.0 say)
    # or to each object's own, the build's own words are found and read as out of memory.
    trt = standin_tensorrt.install(monkeypatch, TENSORRT_10, first_logger_wins=first_logger_wins)
    said = "Error Code 2: OutOfMemory (Requested size was 68719476736 bytes.)"

    def out_of_memory(*args, **kwargs):
        raise standin_tensorrt._BuildError(said)

    monkeypatch.setattr(standin_tensorrt, "_build_plan", out_of_memory)
    with pytest.raises(DoesNotFit, match="ran out of memory at batch 1 in every precision") as refused:
        verify(onnx_file, precision="fp16", batch_size=4, budget_s=10)
    assert {m.outcome for m in refused.value.measurements} == {Outcome.OUT_OF_MEMORY}
    assert trt_messages.process_logger(trt) is trt_messages.process_logger(trt)
    with pytest.raises(trt_build.BuildFailed) as failed:
        trt_build.build_engine(trt, trt_build.EngineRequest(
            onnx_path=onnx_file, onnx_sha256="2" * 64, precision="fp32", input_shapes={
                "x": ((1, 3, 16, 16), (4, 3, 16, 16), (8, 3, 16, 16))}, workspace_bytes=2**30,
            optimization_level=3, tf32=False, gpu_name="g", compute_capability="9.0"))
    assert str(failed.value) == said and failed.value.out_of_memory


#: A GPU's speeds, for the stand-in: a Half engine runs a step four times as fast as a Float one.
GPU_SPEEDS = {"Float": 0.04, "Half": 0.01}


@pytest.mark.parametrize("version", [TENSORRT_10, TENSORRT_11])
def test_a_fused_engine_is_proven_by_its_speedup_over_fp32_and_says_its_precision_is_not_visible(
        monkeypatch, on_a_gpu, onnx_file, version):
    # TensorRT fuses a transformer block into one Myelin layer whose visible types are FP32:
    # its FP16 is shown by the speed over the FP32 engine (and the accuracy check), not refused.
    standin_tensorrt.install(monkeypatch, version, fuse_layers=True, step_seconds=GPU_SPEEDS)
    report = verify(onnx_file, precision="fp16", batch_size=4, budget_s=10)
    fp16 = next(m for m in report.measurements if m.config.precision == "fp16")
    assert fp16.ok, fp16.reason
    assert fp16.model_file.precision_evidence is PrecisionEvidence.FUSED
    assert fp16.model_file.speedup_over_fp32 >= trt_proof.MIN_FUSED_SPEEDUP
    assert fp16.accuracy is not None and fp16.accuracy.passed
    said = fp16.to_dict()
    assert said["precision_evidence"] == "fused" and said["speedup_over_fp32"] >= trt_proof.MIN_FUSED_SPEEDUP
    assert "1 fused" in said["model_file_detail"]
    assert "fused, precision not visible: " in fp16.model_file.describe()


def test_a_fused_engine_no_faster_than_fp32_is_refused(monkeypatch, on_a_gpu, onnx_file):
    # The trap again, behind a fused layer: asked for FP16, TensorRT built FP32.
    standin_tensorrt.install(monkeypatch, TENSORRT_11, built_precision="Float", fuse_layers=True,
                             step_seconds=GPU_SPEEDS)
    with pytest.raises(NoBackend) as refused:  # INT8, tried instead, is refused the same way
        verify(onnx_file, precision="fp16", batch_size=4, budget_s=10)
    measurements = refused.value.measurements
    assert measurements and all(m.outcome is Outcome.UNSUPPORTED for m in measurements)
    fp16 = next(m for m in measurements if m.config.precision == "fp16")
    assert "fused the engine's layers, so their precision is not visible, and it ran at " in fp16.reason
    assert "not reported as fp16" in fp16.reason


def test_a_layer_that_shows_the_precision_needs_no_speedup():
    engine = json.dumps({"Layers": [
        {"Name": "{ForeignNode[/blocks.0/attn/MatMul.../blocks.0/mlp/Add]}", "LayerType": "Myelin",
         "Inputs": [{"Name": "x", "Format/Datatype": "Row major linear FP32 format"}],
         "Outputs": [{"Name": "y", "Format/Datatype": "Row major linear FP32 format"}]},
        {"Name": "head", "LayerType": "CaskGemm", "Inputs": [{"Name": "y", "Format/Datatype": "Half"}],
         "Outputs": [{"Name": "z", "Format/Datatype": "Half"}]}]})
    layers = trt_proof.layer_precisions(engine)
    assert layers.counts == {"fp16": 1} and layers.fused == 1
    assert trt_proof.prove_precision("fp16", layers) is PrecisionEvidence.LAYERS
    assert trt_proof.prove_precision("int8", layers) is PrecisionEvidence.FUSED
    assert trt_proof.needs_speedup("int8", PrecisionEvidence.FUSED)
    assert not trt_proof.needs_speedup("tf32", PrecisionEvidence.FUSED)
