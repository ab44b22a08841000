"""Each stand-in for a model users bring, through the four commands a user runs on it:
inspect, recommend --model, verify --budget-s and bench --task train, all exit 0."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from tests.test_cli import run  # noqa: E402

TWO_INPUTS = "image:float32[3,H=32,W=32]; extra:float32[8]"
#: verify and bench here are about what they measure, decide and print, not how long they
#: time (tests/test_budget.py holds the budgets on the wall clock).
pytestmark = pytest.mark.usefixtures("quick_timing")
# (model, extra arguments, what inspect says about it)
STANDINS = [
    ("detector", (), {"kind": "image", "resolution": 640, "method": "FakeTensorMode"}),
    ("lazy_import_model", (), {"kind": "other"}),
    ("dict_output_model", (), {"output": "logits"}),
    ("model_output_model", (), {"output": "logits"}),
    ("token_classifier", (), {"kind": "text", "sequence_length": 128}),
    ("two_input_model", ("--input-spec", TWO_INPUTS), {"kind": "image", "resolution": 32}),
]

#: verify's budget and settings per stand-in. The budget is there to be met, not spent: each
#: measurement runs the protocol's minimum (quick_timing) and exploration ends by itself for the
#: small ones. The 640 px detector explores at batch 1 only: its batch climb (8, 16, 32 at
#: 640 px) would spend any budget large enough to hold its first measurement on a busy machine.
VERIFY_AT = {name: ("--budget-s", "10") for name, _, _ in STANDINS}
VERIFY_AT["detector"] = ("--budget-s", "20", "--set", "batch_size=1")


@pytest.mark.parametrize(("name", "extra", "expected"), STANDINS, ids=[s[0] for s in STANDINS])
def test_a_standin_goes_through_inspect_recommend_verify_and_bench(capsys, tmp_path, name, extra, expected):
    model = f"tests.standin_models:{name}"
    code, out, err = run(capsys, "inspect", model, *extra, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["kind"] == expected.get("kind", report["kind"])
    assert report["resolution"] == expected.get("resolution", report["resolution"])
    assert report["sequence_length"] == expected.get("sequence_length", report["sequence_length"])
    assert expected.get("method", "") in report["figures_from"]
    assert expected.get("output", "") in report["output_used"]

    code, out, err = run(capsys, "recommend", "--model", model, *extra, "--gpu", "t4", "--task", "train",
                         "--format", "json")
    assert code == 0, err
    settings = json.loads(out)["settings"]
    if report["kind"] == "image":  # tiers around the native size; text has none
        assert settings["resolution"] == report["resolution"]
    else:
        assert settings["resolution"] is None and settings["channels_last"] is False
    assert settings["sequence_length"] == report["sequence_length"]

    code, out, err = run(capsys, "verify", "--model", model, *extra, *VERIFY_AT[name], "--backend", "torch",
                         "--format", "json")
    assert code == 0, err
    assert json.loads(out)["measured"] is True

    code, out, err = run(capsys, "bench", "--model", model, *extra, "--task", "train", "--sweep", "batch=1,2",
                         "--budget-s", "10", "--plot", str(tmp_path / "bench.png"), "--json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert any(row["status"] == "ok" and row["throughput_samples_s"] > 0 for row in rows)


def test_an_input_spec_sets_the_sequence_length_of_a_text_model(capsys):
    spec = "input_ids:int64[S=48]:tokens<1000; attention_mask:int64[S=48]:ones"
    code, out, err = run(capsys, "recommend", "--model", "tests.standin_models:token_classifier",
                         "--input-spec", spec, "--format", "json")
    assert code == 0, err
    recommendation = json.loads(out)
    assert recommendation["settings"]["sequence_length"] == 48
    assert "S=48" in recommendation["model"]["inputs"]
    assert not any("guessed" in warning for warning in recommendation["warnings"])


def test_a_guess_is_said_in_one_line_of_the_recommendation(capsys):
    code, out, err = run(capsys, "recommend", "--model", "tests.standin_models:token_classifier",
                         "--format", "json")
    assert code == 0, err
    guesses = [w for w in json.loads(out)["warnings"] if "guessed" in w]
    assert len(guesses) == 1 and "\n" not in guesses[0] and "--input-spec" in guesses[0]


@pytest.mark.parametrize("name", ["detector", "token_classifier"])
def test_a_standin_is_verified_on_onnx_runtime_beside_torch(capsys, name):
    # The YOLO-style detector and the transformer on token ids, exported with every input
    # and measured on ONNX Runtime's CPU provider, in one table with torch.
    pytest.importorskip("onnxruntime")
    code, out, err = run(capsys, "verify", "--model", f"tests.standin_models:{name}", "--backend",
                         "onnxruntime,torch", *VERIFY_AT[name], "--format", "json")
    assert code == 0, err
    reports = {report["backend"]: report for report in json.loads(out)["measurements"]}
    assert reports["onnxruntime"]["status"] == "measured", reports["onnxruntime"]
    assert all(row["device"].startswith("CPU EP") for row in reports["onnxruntime"]["measurements"])
    assert reports["torch"]["status"] == "measured"
