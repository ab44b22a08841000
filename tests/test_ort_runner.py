"""The ONNX Runtime backend measured for real on the CPU provider: an ONNX file as given, a
PyTorch model converted beside the torch backend, INT8 checked against FP32, the CUDA
provider reported unavailable rather than measured on the CPU, and bad input on one line."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from autotune_plugins.common import onnx_variants  # noqa: E402
from autotune_plugins.onnxruntime import sessions  # noqa: E402
from autotune_plugins.onnxruntime.runner import OrtRunner  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from autotune import api  # noqa: E402
from autotune.backend_api import RunConfig  # noqa: E402
from autotune.measure.measurement import Outcome  # noqa: E402
from autotune.measure.measurer import Measurer  # noqa: E402
from autotune.model.source import parse_model  # noqa: E402
from tests.test_cli import one_line_error, run  # noqa: E402

CUDA_PROBLEM = sessions.gpu_provider_problem("cuda")

#: verify and bench here are about what they measure, decide and print, not how long they
#: time (tests/test_budget.py holds the budgets on the wall clock).
pytestmark = pytest.mark.usefixtures("quick_timing")


def conv_net(path, opset: int = 17, batch="batch"):
    """x[batch,3,16,16] -> Conv(3->32, k3) -> Relu -> Conv(32->128, k3) -> Relu -> global average
    pool -> Gemm(128->10): a small classifier with a dynamic batch, seeded weights (enough of
    them for INT8's 4x to show through the file's fixed overhead)."""
    generator = np.random.default_rng(0)

    def weight(name, *shape):
        return numpy_helper.from_array((generator.standard_normal(shape) * 0.2).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "g", "gb"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "conv_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        [weight("w1", 32, 3, 3, 3), weight("b1", 32), weight("w2", 128, 32, 3, 3), weight("b2", 128),
         weight("g", 10, 128), weight("gb", 10)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # what onnxruntime 1.18 and later read
    onnx.save(model, path)
    return path


@pytest.fixture
def onnx_file(tmp_path):
    return conv_net(tmp_path / "conv_net.onnx")


def _measurer(path, device="cpu", inputs_path=None):
    from autotune import plugins  # noqa: PLC0415
    from autotune.model.source import model_stats_for  # noqa: PLC0415

    source = parse_model(str(path), None, None)
    stats = model_stats_for(source)
    backend = plugins.backends()["onnxruntime"][1]
    return Measurer("onnxruntime", OrtRunner(), source, stats, device, ("fp32", "int8"), inputs_path,
                    options=backend.options), stats


def test_an_onnx_file_is_measured_on_the_cpu_provider_and_each_row_names_it(onnx_file):
    verification = api.verify(str(onnx_file), backends="onnxruntime", budget_s=8)
    (report,) = verification.reports
    assert report.status == "measured", report.reason
    ran = [m for m in report.measurements if m.ok]
    assert ran and all(m.device.startswith("CPU EP (") for m in ran)
    precisions = {m.config.precision for m in ran}
    assert "fp32" in precisions and "int8" in precisions  # the rules' quantisation, measured
    settings = verification.recommendation.settings
    assert settings["quantization"] in ("int8", "none")
    assert verification.recommendation.decision("quantization").rule == "measured"
    assert "onnxruntime" in verification.recommendation.backend_options


def test_a_graph_fixed_at_batch_1_is_measured_and_checked_at_batch_1(tmp_path):
    # torch.onnx.export's default: the batch the sample had. The accuracy check runs the
    # FP32 reference and INT8 one sample at a time.
    path = conv_net(tmp_path / "batch1.onnx", batch=1)
    verification = api.verify(str(path), backends="onnxruntime", budget_s=8)
    ran = [m for m in verification.measurements if m.timing is not None]
    assert ran and {m.config.batch_size for m in ran} == {1}
    assert any(m.config.precision == "int8" and m.ok and m.accuracy.passed for m in ran)


def test_int8_passes_the_accuracy_check_and_its_file_is_four_times_smaller(onnx_file):
    measurer, stats = _measurer(onnx_file)
    try:
        config = RunConfig("infer", "int8", 4, stats.native_resolution)
        measurement = measurer.measure(config, budget_s=0.2)
        assert measurement.outcome is Outcome.OK, measurement.reason
        assert measurement.accuracy.passed and measurement.accuracy.cosine_similarity > 0.99
        # Each variant's file size is reported beside FP32's.
        assert 3 < measurement.model_file.fp32_size_bytes / measurement.model_file.size_bytes < 4.5
        assert measurement.to_dict()["model_file_mb"] < measurement.to_dict()["fp32_file_mb"]
    finally:
        measurer.close()
    calibration = {"x": np.random.default_rng(1).standard_normal((8, 3, 16, 16)).astype(np.float32)}
    variant = onnx_variants.make_variant(onnx_file, "int8", "qdq", calibration=calibration)
    assert 3 < variant.fp32_size_bytes / variant.size_bytes < 4.5


def test_a_broken_int8_conversion_is_rejected_with_its_figure(onnx_file, monkeypatch, tmp_path):
    made = onnx_variants.make_variant

    def broken(path, precision, method="", **kwargs):
        variant = made(path, precision, method, **kwargs)
        if precision != "int8":
            return variant
        # Scramble the classifier's weights: a conversion that went wrong.
        model = onnx.load(str(variant.path))
        for tensor in model.graph.initializer:
            if tensor.name.startswith("g") and tensor.data_type == TensorProto.FLOAT:
                array = numpy_helper.to_array(tensor)
                tensor.CopyFrom(numpy_helper.from_array(np.random.default_rng(5).permutation(
                    array.reshape(-1)).reshape(array.shape) * -3, tensor.name))
        target = tmp_path / "broken.onnx"
        onnx.save(model, target)
        return onnx_variants.Variant("int8", method, target, target.stat().st_size, variant.fp32_size_bytes)

    monkeypatch.setattr(onnx_variants, "make_variant", broken)
    measurer, stats = _measurer(onnx_file)
    try:
        measurement = measurer.measure(RunConfig("infer", "int8", 4, stats.native_resolution), budget_s=0.2)
    finally:
        measurer.close()
    assert measurement.outcome is Outcome.REJECTED
    assert "exceeds the 3% budget" in measurement.reason and not measurement.accuracy.passed


@pytest.mark.skipif(CUDA_PROBLEM is None, reason="the CUDA provider loads here")
def test_the_cuda_provider_is_reported_unavailable_never_measured_on_the_cpu(onnx_file, capsys):
    measurer, stats = _measurer(onnx_file, device="cuda")
    try:
        config = RunConfig("infer", "fp32", 2, stats.native_resolution)
        measurement = measurer.measure(config, budget_s=0.2)
    finally:
        measurer.close()
    assert measurement.outcome is Outcome.UNSUPPORTED and measurement.unavailable
    assert measurement.reason.startswith("CUDA provider unavailable: ") and measurement.timing is None
    code, out, err = run(capsys, "verify", "--model", str(onnx_file), "--backend", "onnxruntime",
                         "--set", "onnxruntime.provider=cuda", "--budget-s", "5", "--format", "json")
    assert code == 1 and "CUDA provider unavailable: " in err and "CPU EP" not in err


def test_the_runner_refuses_training_in_one_line(onnx_file):
    measurer, stats = _measurer(onnx_file)
    try:
        measurement = measurer.measure(RunConfig("train", "fp32", 2, stats.native_resolution), budget_s=0.2)
    finally:
        measurer.close()
    assert measurement.unavailable and "training runs on PyTorch" in measurement.reason


def test_a_torch_model_is_measured_by_both_backends_in_one_table(capsys):
    code, out, err = run(capsys, "verify", "--model", "tests.test_model_stats:small_cnn", "--input-shape",
                         "3,32,32", "--backend", "torch,onnxruntime", "--budget-s", "6", "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    assert {report["backend"] for report in document["measurements"]} == {"torch", "onnxruntime"}
    rows = [m for report in document["measurements"] for m in report["measurements"]]
    assert any(r["backend"] == "onnxruntime" and r["device"].startswith("CPU EP") for r in rows)
    assert document["reasons"]["backends"]["rule"] in ("measured", "backends-cpu")
    assert document["settings"]["backends"][0] in ("torch", "onnxruntime")


def test_bench_sweeps_the_onnxruntime_backend_in_fp32_and_int8_with_a_plot(onnx_file, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "ort.png"
    code, out, err = run(capsys, "bench", "--model", str(onnx_file), "--backend", "onnxruntime", "--sweep",
                         "batch=1,4", "--budget-s", "5", "--plot", str(plot), "--json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert {(r["precision"], r["batch_size"]) for r in rows if r["status"] == "ok"} == {
        ("fp32", 1), ("fp32", 4), ("int8", 1), ("int8", 4)}
    assert plot.stat().st_size > 0


def test_a_truncated_onnx_file_is_one_line(onnx_file, capsys):
    data = onnx_file.read_bytes()
    onnx_file.write_bytes(data[: len(data) // 2])
    err = one_line_error(capsys, "verify", "--model", str(onnx_file), "--backend", "onnxruntime")
    assert str(onnx_file) in err


def test_an_opset_onnx_runtime_cannot_run_is_one_line(tmp_path, capsys):
    path = conv_net(tmp_path / "future.onnx", opset=99)
    err = one_line_error(capsys, "verify", "--model", str(path), "--backend", "onnxruntime",
                         "--budget-s", "5")
    assert "it uses opset 99" in err and "re-export with opset <=" in err


def test_a_calibration_batch_of_the_wrong_shape_is_one_line_and_caches_nothing(onnx_file, capsys, tmp_path):
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, 3, 8, 8), dtype=np.float32))
    err = one_line_error(capsys, "verify", "--model", str(onnx_file), "--backend", "onnxruntime",
                         "--inputs", str(wrong))
    assert "(batch, 3, 16, 16)" in err or "3, 16, 16" in err
    cache = tmp_path / "xdg-cache" / "autotune" / "onnx-variants"
    assert not cache.exists() or not list(cache.glob("*.onnx"))


@pytest.mark.parametrize("installed, backends, quantization_rule, alternative", [
    (["onnxruntime", "torch"], ["onnxruntime", "torch"], "cpu-int8-static", "int8"),
    (["torch"], ["torch", "onnxruntime"], "quantise-next-step", "none"),
])
def test_cpu_inference_proposes_onnx_runtime_first_and_int8_only_where_it_is_installed(
        monkeypatch, installed, backends, quantization_rule, alternative):
    from autotune.hardware.probe import probe  # noqa: PLC0415
    from autotune.recommendation import facts  # noqa: PLC0415
    from autotune.recommendation.engine import recommend  # noqa: PLC0415

    monkeypatch.setattr(facts, "installed_backends", lambda: installed)
    machine = probe()
    machine = replace(machine, host=replace(machine.host, bf16=False), gpus=())

    recommendation = recommend(machine, {"task": "infer", "objective": "throughput", "tier": "balanced"})
    assert recommendation.settings["backends"] == backends
    assert recommendation.decision("quantization").rule == quantization_rule
    assert recommendation.settings["alternative_precision"] == alternative  # no native BF16 here
    for name in ("backends", "quantization", "alternative_precision"):
        assert recommendation.decision(name).source  # every rule names its source
    trained = recommend(machine, {"task": "train", "objective": "throughput", "tier": "balanced"})
    assert trained.settings["backends"] == ["torch"] and trained.settings["alternative_precision"] != "int8"


def test_every_built_in_option_explores_on_conditions_the_rule_language_reads():
    from autotune import plugins  # noqa: PLC0415
    from autotune.recommendation.conditions import Expression  # noqa: PLC0415
    from autotune.recommendation.rules import known_facts  # noqa: PLC0415

    for _, backend in plugins.backends().values():
        for option in backend.options:
            for condition, values in option.explore_also:
                Expression(condition, known_facts())  # raises on an unknown fact or bad syntax
                assert set(values) <= set(option.choices)


def test_dynamic_int8_is_explored_for_transformers_only():
    from autotune import plugins  # noqa: PLC0415
    from autotune.measure.run_config import explored_also  # noqa: PLC0415

    option = plugins.backends()["onnxruntime"][1].option("int8_method")
    for family, explored in (("transformer", True), ("cnn", False)):
        also = explored_also(option, {"model.family": family})
        assert ("dynamic" in option.alternatives("qdq", also)) is explored
