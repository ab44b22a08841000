"""An open set of runtimes: a third-party backend with its own options and runner, through
recommend, verify and bench — the manual's example backend (docs/writing-plugins.md) and a
scripted one."""

from __future__ import annotations

import importlib
import json
import re
import sys

import pytest
import yaml

from autotune.sdk import Backend, BackendOption, hookimpl
from autotune.sdk.testing import FakeRunner
from autotune.types import PRECISIONS
from tests.conftest import REPO
from tests.test_cli import one_line_error, run

SMALL = ("--model", "tests.test_model_stats:small_cnn", "--input-shape", "3,32,32")


def docs_block(page: str, first_line: str) -> str:
    """The fenced Python block of the manual's ``page`` (under docs/) that starts with ``first_line``."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / page).read_text(), re.DOTALL)
    (block,) = [b for b in blocks if b.startswith(first_line)]
    return block


@pytest.fixture
def ortcpu(tmp_path, monkeypatch, register_plugin):
    """The manual's example backend, written out as its own module and registered."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "autotune_ortcpu.py").write_text(docs_block("writing-plugins.md", "# autotune_ortcpu.py"))
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module("autotune_ortcpu")
    register_plugin(module, "ortcpu")
    yield module
    sys.modules.pop("autotune_ortcpu", None)


def test_the_example_backend_stays_short():
    # The page says "in under 100 lines": a plugin author reads it whole.
    assert len(docs_block("writing-plugins.md", "# autotune_ortcpu.py").splitlines()) <= 100


def test_the_example_backend_is_listed_with_its_option(ortcpu, capsys):
    code, out, _ = run(capsys, "plugins", "--json")
    row = next(row for row in json.loads(out) if row["backend"] == "ortcpu")
    assert code == 0 and row["measurable"] and row["plugin"] == "ortcpu"
    assert row["options"][0]["name"] == "graph_optimization" and row["options"][0]["explored"]
    code, out, _ = run(capsys, "plugins")
    assert "--set ortcpu.graph_optimization=<choice>" in out


def test_the_example_backend_can_be_recommended(ortcpu, capsys):
    code, out, _ = run(capsys, "recommend", "--gpu", "t4", "--backend", "ortcpu,torch")
    assert code == 0 and yaml.safe_load(out)["settings"]["backends"] == ["ortcpu", "torch"]


@pytest.mark.usefixtures("quick_timing")
def test_the_example_backend_is_verified_preparing_once_per_preparation(ortcpu, capsys, monkeypatch):
    import onnxruntime

    sessions = []
    original = onnxruntime.InferenceSession

    def counting(path, options, providers):
        sessions.append(options.graph_optimization_level)
        return original(path, options, providers=providers)

    monkeypatch.setattr(onnxruntime, "InferenceSession", counting)
    code, out, err = run(capsys, "verify", *SMALL, "--backend", "ortcpu", "--budget-s", "8", "--json")
    report = json.loads(out)
    assert code == 0, err
    (ortcpu_report,) = [r for r in report["measurements"] if r["backend"] == "ortcpu"]
    measured = [m for m in ortcpu_report["measurements"] if m["status"] == "ok"]
    assert ortcpu_report["status"] == "measured" and ortcpu_report["explored"] == ["graph_optimization"]
    levels = {m["options"]["graph_optimization"] for m in measured}
    assert len(levels) >= 2  # the rules' value and at least one the exploration tried
    batches = {m["batch_size"] for m in measured}
    assert len(batches) >= 2  # exploration opened several batch sizes ...
    # ... from one InferenceSession per option value (per thread count), not one per batch
    threads = {m.get("cpu_threads") for m in measured}
    assert len(sessions) <= len(levels) * len(threads) < len(measured)
    assert report["settings"]["backends"][0] == "ortcpu"


@pytest.mark.usefixtures("quick_timing")
def test_the_example_backend_benches_with_a_user_option(ortcpu, capsys, tmp_path):
    plot = tmp_path / "bench.png"
    code, out, err = run(capsys, "bench", *SMALL, "--backend", "ortcpu", "--sweep", "batch=1,4",
                         "--precision", "fp32", "--budget-s", "5",
                         "--set", "ortcpu.graph_optimization=basic", "--plot", str(plot), "--json")
    rows = json.loads(out)["rows"]
    assert code == 0, err
    assert [row["batch_size"] for row in rows] == [1, 4]
    assert {row["options"]["graph_optimization"] for row in rows} == {"basic"}
    assert plot.exists()


@pytest.mark.parametrize("assignment, says", [
    ("ortcpu.graph_optimization=fastest", "ortcpu.graph_optimization by flag must be one of basic"),
    ("ortcpu.threads=2", "backend ortcpu has no option 'threads'"),
    ("tvm.opt_level=3", "unknown backend 'tvm' in tvm.opt_level"),
])
def test_bad_backend_options_are_one_line_exit_2(ortcpu, capsys, assignment, says):
    assert says in one_line_error(capsys, "recommend", "--gpu", "t4", "--set", assignment)


#: A runtime whose 'fast' option halves each step's time, FP32 only; it keeps what it prepares.
SCRIPTED_RUNTIME = FakeRunner(seconds_per_sample=0.0004, speedups={"fast": 0.5},
                              unsupported=tuple(p for p in PRECISIONS if p != "fp32"))


def scripted_runtime() -> FakeRunner:
    """The runner the core loads for the 'scripted' backend: the one above, so a test reads
    what every verification prepared."""
    return SCRIPTED_RUNTIME


class ScriptedRuntimePlugin:
    @hookimpl
    def autotune_backends(self):
        return [Backend(name="scripted", framework="yaml", description="a scripted runtime",
                        runner="tests.test_runtimes:scripted_runtime",
                        options=(BackendOption("fast", "bool", "half the time per sample", default=False,
                                               explore=True),))]


@pytest.mark.usefixtures("quick_timing")
def test_a_scripted_runtime_is_verified_through_the_api(register_plugin):
    pytest.importorskip("torch")  # the model's stats come from the torch inspector
    import autotune

    register_plugin(ScriptedRuntimePlugin(), "scripted-runtime")
    SCRIPTED_RUNTIME.prepared.clear()
    verification = autotune.verify(model="tests.test_model_stats:small_cnn", input_shape="3,32,32",
                                   backends=["scripted"], budget_s=3, batch_size=4)
    settings = verification.recommendation.settings
    (report,) = verification.reports
    assert report.status == "measured" and report.explored == ("fast",)
    assert {m.config.option("fast") for m in report.measurements} == {False, True}
    # Measurement decided the option over its default; batch 4 was the user's and stayed.
    assert report.best.config.option("fast") is True and settings["batch_size"] == 4
    assert settings["backends"][0] == "scripted"  # measured first, the rules' others after it
    # One preparation per option value, however many sessions the measurements opened.
    assert len(SCRIPTED_RUNTIME.prepared) == len(set(SCRIPTED_RUNTIME.prepared)) == 2


@pytest.mark.usefixtures("quick_timing")
def test_a_scripted_runtime_option_set_by_the_user_is_not_explored(register_plugin):
    pytest.importorskip("torch")
    import autotune

    register_plugin(ScriptedRuntimePlugin(), "scripted-runtime")
    verification = autotune.verify(model="tests.test_model_stats:small_cnn", input_shape="3,32,32",
                                   backends="scripted", budget_s=2, batch_size=2, scripted={"fast": True})
    (report,) = verification.reports
    assert report.explored == () and {m.config.option("fast") for m in report.measurements} == {True}
