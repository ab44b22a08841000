"""A verified config claims only what was measured (issue 27, point 3), and ``verify --json
-o FILE`` writes the JSON there (point 8)."""

from __future__ import annotations

import json

import pytest

from autotune.backend_api import RunConfig
from autotune.cli import render
from autotune.sdk import Backend, hookimpl
from autotune.sdk.testing import FakeRunner
from autotune.types import MEASUREMENT_CLAIMS, PRECISIONS, Recommendation
from tests.test_cli import one_line_error, run

SMALL = ("--model", "tests.test_model_stats:small_cnn", "--input-shape", "3,32,32")


@pytest.mark.usefixtures("quick_timing")
def test_json_with_an_output_file_writes_the_json_there(capsys, tmp_path):
    pytest.importorskip("torch")
    written = tmp_path / "verified.json"
    code, out, err = run(capsys, "verify", *SMALL, "--backend", "torch", "--budget-s", "3", "--json",
                         "-o", str(written))
    assert code == 0, err
    assert out == "" and f"wrote {written}" in err
    document = json.loads(written.read_text())
    assert document["measured"] is True and document["settings"]["backends"][0] == "torch"


def test_json_with_another_format_is_refused_before_measuring(capsys, tmp_path):
    message = one_line_error(capsys, "verify", *SMALL, "--json", "--format", "yaml", "-o",
                             str(tmp_path / "x.yaml"))
    assert "--json and --format yaml ask for two formats" in message
    assert not (tmp_path / "x.yaml").exists()


def test_an_ort_run_error_keeps_the_line_that_says_what_is_wrong():
    pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    import io  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415
    from autotune_plugins.common import ort_messages  # noqa: PLC0415

    from autotune.measure.step_down import first_line  # noqa: PLC0415

    # A graph exported at a fixed batch of 1, run at batch 8: ORT's real message.
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))
    exported = io.BytesIO()
    torch.onnx.export(model, (torch.randn(1, 3, 8, 8),), exported, input_names=["images"], dynamo=False)
    session = onnxruntime.InferenceSession(exported.getvalue(), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception) as raised:
        session.run(None, {"images": np.zeros((8, 3, 8, 8), np.float32)})
    assert "Got: 8 Expected: 1" not in first_line(raised.value)  # what the summary used to keep
    summary = first_line(ort_messages.run_failure(raised.value))
    assert "Got invalid dimensions for input: images" in summary
    assert "index: 0 Got: 8 Expected: 1" in summary and "Please fix" not in summary
    assert summary.startswith("OnnxRuntimeError: InvalidArgument: ")


class FixedPointPlugin:
    """'fp32only': a runtime that runs FP32 only; 'broken': one that runs nothing."""

    @hookimpl
    def autotune_backends(self):
        return [Backend(name="fp32only", framework="yaml", description="FP32 only",
                        runner="tests.test_verify_claims:fp32_only"),
                Backend(name="broken", framework="yaml", description="runs nothing",
                        runner="tests.test_verify_claims:broken")]


def fp32_only() -> FakeRunner:
    return FakeRunner(seconds_per_sample=0.0004, unsupported=tuple(p for p in PRECISIONS if p != "fp32"))


def broken() -> FakeRunner:
    return FakeRunner(unsupported=PRECISIONS)


@pytest.mark.usefixtures("quick_timing")
def test_every_decision_of_a_verified_config_says_whether_it_was_measured(register_plugin, capsys):
    pytest.importorskip("torch")
    import autotune  # noqa: PLC0415

    register_plugin(FixedPointPlugin(), "fixed-point")
    verification = autotune.verify(model="tests.test_model_stats:small_cnn", input_shape="3,32,32",
                                   backends="fp32only", budget_s=3)
    recommendation = verification.recommendation
    claims = {d.name: d for d in recommendation.decisions}
    assert recommendation.measured and all(d.measurement in MEASUREMENT_CLAIMS for d in claims.values())
    assert claims["batch_size"].measurement in ("measured", "confirmed")
    assert claims["precision"].measurement == "confirmed" and "ran in the winning fp32only" in \
        claims["precision"].measurement_note
    workers = claims["num_workers"]
    assert workers.measurement == "unmeasured" and "data loading" in workers.measurement_note
    if verification.proposed.settings["quantization"] == "int8":  # the rules propose INT8 with onnxruntime
        quantization = claims["quantization"]
        assert quantization.value == "int8" and quantization.measurement == "unmeasured"
        assert "no int8 configuration ran: fp32only has no int8 path here" in quantization.measurement_note
    document = recommendation.to_dict()
    assert document["reasons"]["num_workers"]["measurement"] == "unmeasured"
    assert Recommendation.from_dict(document) == recommendation  # written and read back whole
    # --explain shows it too.
    render.explain_table(recommendation)
    assert "unmeasured: verify feeds synthetic batches" in " ".join(capsys.readouterr().err.split())


def test_a_failed_backend_leaves_the_backends():
    from autotune.measure.decisions import measured_decisions  # noqa: PLC0415
    from autotune.measure.measurement import Measurement, Outcome  # noqa: PLC0415
    from autotune.measure.protocol import Timing  # noqa: PLC0415
    from autotune.measure.verify_report import BackendReport  # noqa: PLC0415
    from autotune.types import Decision  # noqa: PLC0415

    inputs = {"task": "infer", "objective": "throughput", "tier": "balanced"}
    proposed = Recommendation(inputs, "this CPU", tuple(
        Decision(name, value, "rule", "S000-1", "the rules'") for name, value in (
            ("precision", "fp32"), ("resolution", 224), ("batch_size", 8), ("quantization", "none"),
            ("backends", ["onnxruntime", "torch"]))))
    config = RunConfig("infer", "fp32", 8, 224)
    timing = Timing((10.0,) * 5, 10, 8)
    ran = Measurement("torch", "cpu", config, Outcome.OK, timing=timing)
    failed = Measurement("onnxruntime", "cpu", config, Outcome.FAILED,
                         "OnnxRuntimeError: InvalidArgument: index: 0 Got: 8 Expected: 1")
    reports = [BackendReport("onnxruntime", "failed", failed.reason, [failed]),
               BackendReport("torch", "measured", "", [ran], best=ran)]
    decision = measured_decisions(reports, proposed)["backends"]
    assert decision.value == ["torch"] and "left out: onnxruntime failed" in decision.reason


def test_a_backend_that_cannot_take_the_model_kind_is_not_tried():
    from autotune import plugins  # noqa: PLC0415
    from autotune.measure.verify import select_backends  # noqa: PLC0415

    registered = plugins.backends()
    chosen = [name for name, _ in select_backends(None, registered, ["onnxruntime", "torch"], "onnx")]
    assert chosen == ["onnxruntime"]
    assert "torch" in [name for name, _ in select_backends(None, registered, ["onnxruntime", "torch"],
                                                           "callable")]
