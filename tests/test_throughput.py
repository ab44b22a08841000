"""The throughput prediction (autotune/model/throughput.py) and its fit to the published
measurements (scripts/fit_throughput.py, profiles/throughput_model.yaml)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from autotune.hardware.gpu_database import spec_named
from autotune.model import throughput
from autotune.model.stats import reference_models
from autotune.shipped_data import load_profile

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "scripts") not in sys.path:
    sys.path.append(str(REPO / "scripts"))

fit_throughput = pytest.importorskip("fit_throughput")  # needs scipy: the dev group


@pytest.fixture(scope="module")
def refitted():
    return fit_throughput.calibrate()


def test_every_usable_row_has_its_model_stats():
    """A row the fit skips for want of stats would silently shrink the table."""
    stats = load_profile("published_models.yaml")["models"]
    for row in load_profile("published_measurements.yaml")["measurements"]:
        if row["usable_for_fit"] and row["metric"] in ("samples_s", "latency_ms"):
            assert str(row["input"]) in stats.get(row["model"], {}), (row["model"], row["input"])


def test_the_shipped_fit_is_the_fit_of_the_shipped_table(refitted):
    """profiles/throughput_model.yaml is what `make calibrate` makes of today's table."""
    shipped = throughput.coefficients()
    for term in fit_throughput.TERMS:
        assert shipped[term]["base"] == pytest.approx(refitted[term]["base"], abs=0.02), term
        for factor, levels in refitted[term]["offsets"].items():
            for level, value in levels.items():
                shipped_value = shipped[term]["offsets"][factor][level]
                assert shipped_value == pytest.approx(value, abs=0.02), (term, level)
    assert shipped["covered"] == refitted["covered"]
    held_out = refitted["error"]["leave_one_source_out"]
    assert shipped["error"]["leave_one_source_out"]["rows"] == held_out["rows"]
    assert shipped["error"]["leave_one_source_out"]["median_error"] == pytest.approx(held_out["median_error"],
                                                                                      abs=0.01)


@pytest.mark.parametrize("page", ["README.md", "docs/predictions.md"])
def test_the_docs_state_the_held_out_error_of_each_runtime(page):
    text = " ".join((REPO / page).read_text("utf-8").split())
    for runtime, name in (("pytorch", "eager PyTorch"), ("pytorch_compiled", "`torch.compile`"),
                          ("tensorrt", "TensorRT")):
        error = throughput.coefficients()["error"]["by_runtime"][runtime]
        assert f"{name} median error {error['median_error']:.0%}" in text, runtime
        assert f"{error['off_by_2x']} of {error['rows']}" in text, runtime


def test_held_out_rows_are_predicted_by_a_fit_that_never_saw_their_source():
    data = fit_throughput.observations()
    source = data[0].source
    design, _ = fit_throughput.fit([o for o in data if o.source != source])
    seen = {o.load.levels["runtime"] for o in data if o.source != source}
    assert {level for term, factor, level in design.slots if factor == "runtime"} == seen


def test_the_interval_holds_most_held_out_rows(refitted):
    for spread in refitted["interval"].values():
        assert spread["low"] < 1 < spread["high"]


def test_more_batch_means_more_samples_and_a_longer_batch():
    stats, spec = reference_models()["resnet50"], spec_named("A100 40GB SXM")
    small = throughput.predict(stats, spec, precision="fp16", batch=1, runtime="torch", resolution=224)
    large = throughput.predict(stats, spec, precision="fp16", batch=256, runtime="torch", resolution=224)
    assert small is not None and large is not None
    assert large.samples_s > small.samples_s and large.latency_ms > small.latency_ms
    low, high = large.samples_s_range
    assert low < large.samples_s < high


def test_a_faster_gpu_is_predicted_faster():
    stats = reference_models()["resnet50"]
    t4 = throughput.predict(stats, spec_named("T4"), precision="fp16", batch=64, resolution=224)
    a100 = throughput.predict(stats, spec_named("A100 40GB SXM"), precision="fp16", batch=64, resolution=224)
    assert t4 is not None and a100 is not None and a100.samples_s > 2 * t4.samples_s


def test_no_prediction_where_no_published_figure_covers_the_precision(monkeypatch):
    stats, spec = reference_models()["resnet50"], spec_named("A100 40GB SXM")
    covered = throughput.coefficients()["covered"]
    missing = next(p for p in ("int4", "fp4", "fp8", "int8", "bf16") if p not in covered["precision"])
    assert throughput.predict(stats, spec, precision=missing, batch=8, resolution=224) is None
    note = throughput.figures(stats, spec, precision=missing, batch=8, backends=("torch",), resolution=224)
    reason = f"published {missing} figures come from fewer than two sources: no checked precision prediction"
    assert note == {"not_predicted": {"torch": reason}}


def test_the_runtime_names_of_backends_and_tables_are_one():
    assert throughput.runtime_name("torch") == throughput.runtime_name("pytorch") == "pytorch"
    assert throughput.precision_class("amp") == "fp16"
    assert throughput.precision_class("fp32", tf32=True) == "tf32"


def test_recommend_shows_the_prediction_for_its_batch_and_first_runtime():
    from autotune import api

    result = api.recommend("resnet50", gpu="A100").to_dict()
    model = result["model"]
    predicted_for = model["predicted_for"]
    assert predicted_for["batch"] == result["settings"]["batch_size"]
    backends = result["settings"]["backends"]
    first = next(backend for backend in backends if backend not in model.get("not_predicted", {}))
    assert predicted_for["runtime"] == throughput.runtime_name(first)
    predicted = set(model.get("predicted_samples_s_by_backend", {first: 0}))
    assert set(model.get("not_predicted", {})) | predicted == set(backends)
    assert model["predicted_samples_s"] == pytest.approx(
        predicted_for["batch"] / model["predicted_latency_ms"] * 1e3, rel=0.01)


def test_inspect_text_gives_pytorch_s_prediction():
    from autotune import api
    from autotune.recommendation.inspect_report import render_text

    text = render_text(api.inspect("resnet50", gpu="T4"))
    assert re.search(r"fp16 .*\n +PyTorch predicted [\d,]+ samples/s at batch \d+", text)
