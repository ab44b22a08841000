"""`make gpu-check` (scripts/gpu_check.py) on a machine without a GPU: the real script once,
bounded in time, and its orchestration with injected checks (each runs in a spawned process,
so the check functions live at module level here, where the child can import them)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autotune.errors import UserError
from autotune.hardware.probe import probe
from tests.conftest import REPO

# Appended, never ahead of anything: a spawned check's process finds `gpu_check` on the path
# it inherits, to unpickle the function it runs.
if str(REPO / "scripts") not in sys.path:
    sys.path.append(str(REPO / "scripts"))
import gpu_check  # noqa: E402
from gpu_check import Check, SkipCause, Status  # noqa: E402

from tests import gpu_check_injected as injected  # noqa: E402


def test_the_script_here_exits_0_with_both_reports_and_every_check_skipped_for_a_reason(tmp_path):
    machine = probe()
    if machine.gpus:
        pytest.skip("a GPU is here: the real run is `make gpu-check` (up to 8 minutes)")
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started < 60
    (json_path,) = tmp_path.glob("gpu-check-*.json")
    assert json_path.with_suffix(".md").is_file()
    assert sorted(path.name for path in tmp_path.glob("gpu-check-*")) == [json_path.name,
                                                                           json_path.with_suffix(".md").name]
    report = json.loads(json_path.read_text())
    rows = {row["name"]: row for row in report["checks"]}
    assert list(rows) == [check.name for check in gpu_check.CHECKS]
    assert report["gpu_reason"] == machine.note and report["to_commit"] == []
    # The inventory runs anywhere; every other check says why it did not.
    assert rows["runtimes"]["status"] == "ok"
    assert rows["runtimes"]["figures"]["probe"]["note"] == machine.note
    for check in gpu_check.CHECKS[1:]:
        row = rows[check.name]
        assert row["status"] == "skipped" and row["skip_cause"] in ("no_gpu", "not_installed"), row
        if row["skip_cause"] == "no_gpu":
            assert row["reason"] == f"no GPU: {machine.note}"
    markdown = json_path.with_suffix(".md").read_text()
    assert all(f"| {check.name} |" in markdown for check in gpu_check.CHECKS)


def check(name, run, limit_s=20.0, **fields) -> Check:
    return Check(name, run, limit_s, f"{name} (injected)", **fields)


def test_a_check_needing_what_is_not_here_is_skipped_before_it_starts_with_a_typed_cause(tmp_path):
    results = gpu_check.run_checks([
        check("gpu", injected.returns_figures),
        check("absent", injected.returns_figures, needs=("no_such_module_for_gpu_check",), gpu=False),
        check("unselected", injected.returns_figures, gpu=False),
    ], tmp_path, gpu_name=None, gpu_reason="no NVIDIA driver", only=("gpu", "absent"))
    gpu, absent, unselected = results
    assert (gpu.status, gpu.skip_cause, gpu.reason) == (Status.SKIPPED, SkipCause.NO_GPU,
                                                        "no GPU: no NVIDIA driver")
    assert (absent.status, absent.skip_cause, absent.reason) == (
        Status.SKIPPED, SkipCause.NOT_INSTALLED, "not installed: no_such_module_for_gpu_check")
    assert (unselected.status, unselected.skip_cause) == (Status.SKIPPED, SkipCause.NOT_SELECTED)
    assert not (tmp_path / "saved.txt").exists()  # none of them ran


def test_each_outcome_is_a_row_and_a_check_that_raises_hangs_or_dies_is_a_failed_row_not_a_crash(
        tmp_path, capsys):
    started = time.monotonic()
    code = gpu_check.main(["--out", str(tmp_path / "results")], checks=[
        check("ok", injected.returns_figures, gpu=False),
        check("raises", injected.raises, gpu=False),
        check("finds", injected.finds_a_problem, gpu=False),
        check("skips", injected.cannot_run_here, gpu=False),
        check("hangs", injected.hangs, limit_s=1.0, gpu=False),
        check("dies", injected.dies, gpu=False),
    ])
    assert time.monotonic() - started < 15
    assert code == 1  # a check failed
    (json_path,) = (tmp_path / "results").glob("gpu-check-*.json")
    report = json.loads(json_path.read_text())  # valid JSON
    rows = {row["name"]: row for row in report["checks"]}
    assert list(rows) == ["ok", "raises", "finds", "skips", "hangs", "dies"]
    assert (rows["ok"]["status"], rows["ok"]["figures"]) == ("ok", {"answer": 42, "limit_s": 20.0})
    assert report["artifacts"] == [f"{json_path.stem}/saved.txt"]
    assert (tmp_path / "results" / json_path.stem / "saved.txt").read_text() == "kept"
    assert rows["raises"]["status"] == "failed"
    assert rows["raises"]["reason"] == "RuntimeError: the driver said no"
    assert "the driver said no" in rows["raises"]["figures"]["traceback"]
    assert (rows["finds"]["status"], rows["finds"]["reason"]) == ("failed", "2 readers raise")
    assert rows["finds"]["figures"]["readers"] == ["a", "b"]
    assert (rows["skips"]["status"], rows["skips"]["skip_cause"]) == ("skipped", "check")
    assert rows["skips"]["reason"] == "torch sees no CUDA GPU"
    assert (rows["hangs"]["status"], rows["hangs"]["reason"]) == ("failed", "timed out after 1 s")
    assert rows["hangs"]["seconds"] < 10
    assert "started, then hung" in rows["hangs"]["figures"]["log_tail"]
    assert (rows["dies"]["status"], rows["dies"]["reason"]) == (
        "failed", "the check's process died (exit code 3) before reporting")
    assert "| raises | failed |" in json_path.with_suffix(".md").read_text()
    assert f"gpu_check: wrote {json_path}" in capsys.readouterr().out


def test_the_whole_run_is_bounded_a_check_gets_what_is_left_and_none_starts_without_time(tmp_path):
    # The clock reads: the start, before the first check (10 s used), before the second (all used).
    readings = iter([0.0, 10.0, gpu_check.TOTAL_LIMIT_S])
    checks = [check("first", injected.returns_figures, limit_s=9999.0, gpu=False),
              check("second", injected.returns_figures, gpu=False)]
    first, second = gpu_check.run_checks(checks, tmp_path, gpu_name=None, gpu_reason=None,
                                         clock=lambda: next(readings))
    left = gpu_check.TOTAL_LIMIT_S - gpu_check.REPORT_RESERVE_S - 10.0
    assert (first.status, first.limit_s, first.figures["limit_s"]) == (Status.OK, left, left)
    assert (second.status, second.skip_cause) == (Status.SKIPPED, SkipCause.NO_TIME)
    assert second.reason == "the 480 s bound left 0 s"


@pytest.mark.parametrize("arguments", [["--only", "nonesuch"], ["--out", "a-file"]])
def test_bad_arguments_are_one_line_exit_2_and_nothing_written(tmp_path, capsys, arguments):
    (tmp_path / "a-file").write_text("")
    arguments = [str(tmp_path / value) if value == "a-file" else value for value in arguments]
    out = [] if "--out" in arguments else ["--out", str(tmp_path / "results")]
    assert gpu_check.main([*arguments, *out],
                          checks=[check("anywhere", injected.returns_figures, gpu=False)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists() and not list(tmp_path.rglob("gpu-check-*"))


def test_a_report_that_cannot_be_written_leaves_no_partial_file(tmp_path):
    stem = "gpu-check-host-2026-01-01"
    (tmp_path / f"{stem}.json").mkdir()  # where the JSON report would go: the atomic writer refuses
    with pytest.raises(UserError, match="it is a folder"):
        gpu_check.write_reports({"checks": []}, tmp_path, stem)
    assert sorted(path.name for path in tmp_path.glob(f"*{stem}*")) == [f"{stem}.json"]


def test_node_placement_reads_every_node_and_its_provider_from_a_real_onnxruntime_profile(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import numpy as np  # noqa: PLC0415

    from tests.test_ort_providers import _conv_model  # noqa: PLC0415

    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "conv")
    # Graph optimisations off: the two nodes stay two, as the file names them.
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(str(_conv_model(tmp_path / "conv.onnx")), options,
                                           providers=["CPUExecutionProvider"])
    session.run(None, {"x": np.ones((1, 3, 8, 8), np.float32)})
    placement = gpu_check._node_placement(Path(session.end_profiling()))
    assert sorted((node["op"], node["provider"]) for node in placement.values()) == [
        ("Conv", "CPUExecutionProvider"), ("Relu", "CPUExecutionProvider")]


def test_the_pytest_check_reads_passes_failures_and_skips_from_pytests_own_junit_xml(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_passes(): pass\n"
        "def test_fails(): assert 1 == 2\n"
        "def test_skips(): pytest.skip('no CUDA GPU here')\n")
    junit = tmp_path / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                    "test_sample.py"], cwd=tmp_path, capture_output=True, timeout=60)
    figures = gpu_check._junit_figures(junit)
    assert (figures["tests"], figures["passed"], figures["failed"], figures["skipped"]) == (3, 1, 1, 1)
    assert [failure["test"] for failure in figures["failures"]] == ["test_sample::test_fails"]
    assert figures["skips"] == [{"test": "test_sample::test_skips", "reason": "no CUDA GPU here"}]
