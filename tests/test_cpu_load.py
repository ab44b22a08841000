"""Measuring on a shared CPU (issue 27, points 4 and 6): the cores this process may use
(affinity, cgroup v1 and v2 quota), how busy they are, threads for the free ones, a deadline
checked before every iteration, a warm-up that ends when steps settle, and a winner that
noise cannot pick. One test loads the CPU with busy processes and holds verify to its budget."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from autotune.backend_api import RunConfig
from autotune.hardware.cpu_load import CpuLoad, sample_load
from autotune.hardware.host import cgroup_cpu_quota, usable_cores
from autotune.measure import winner
from autotune.measure.measurement import Measurement, Outcome
from autotune.measure.protocol import Timing, time_session
from autotune.measure.run_config import Explorable, explorables, for_the_load
from autotune.types import Backend

ALLOWED_OVERRUN = 1.2  # the bound: the budget +20 %


# --- the cores this process may use -------------------------------------------------------

def _cgroup(tmp_path, own_path: str, files: dict[str, str]):
    (tmp_path / "self").write_text(f"0::{own_path}\n")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path, tmp_path / "self"


def test_a_v2_quota_on_the_process_s_own_cgroup_caps_the_cores(tmp_path):
    root, own = _cgroup(tmp_path, "/kubepods/pod1", {"kubepods/pod1/cpu.max": "200000 100000\n"})
    assert cgroup_cpu_quota(root, own) == 2.0
    assert usable_cores(root, own) == min(2, len(os.sched_getaffinity(0)))


def test_a_v1_quota_counts_and_the_tightest_of_the_parents_wins(tmp_path):
    v1 = "cpu,cpuacct/docker"
    root, own = _cgroup(tmp_path, "/docker/abc", {
        f"{v1}/cpu.cfs_quota_us": "150000\n", f"{v1}/cpu.cfs_period_us": "100000\n",
        f"{v1}/abc/cpu.cfs_quota_us": "-1\n", f"{v1}/abc/cpu.cfs_period_us": "100000\n"})
    assert cgroup_cpu_quota(root, own) == 1.5
    assert usable_cores(root, own) == min(2, len(os.sched_getaffinity(0)))  # 1.5 rounds up


def test_no_quota_leaves_the_affinity(tmp_path):
    root, own = _cgroup(tmp_path, "/", {"cpu.max": "max 100000\n"})
    assert cgroup_cpu_quota(root, own) is None
    assert usable_cores(root, own) == len(os.sched_getaffinity(0))


def test_load_figures_and_the_line_that_says_figures_may_be_off(tmp_path):
    busy = CpuLoad(usable_cores=2, busy_cores=1.1, window_s=0.3)
    assert busy.busy and busy.free_cores == 1
    assert busy.line().startswith("the CPU is busy: other processes kept 1.1 of the 2 cores")
    assert "figures may be off" in busy.line()
    quiet = CpuLoad(usable_cores=8, busy_cores=0.2, window_s=0.3)
    assert not quiet.busy and quiet.free_cores == 8
    assert CpuLoad(2, 5.0, 0.3).free_cores == 1  # never zero
    # Where /proc/stat cannot be read, the CPUs count as idle rather than failing.
    assert sample_load(0.01, tmp_path / "missing", usable=4) == CpuLoad(4, 0.0, 0.01)


def test_threads_start_at_the_free_cores_and_explore_every_core_and_one():
    backend = Backend(name="fake", framework="fake", description="a stand-in")
    config = RunConfig("infer", "fp32", 2, None, cpu_threads=2)
    busy = CpuLoad(2, 1.0, 0.3)
    started = for_the_load(config, "cpu", busy, frozenset())
    assert started.cpu_threads == 1
    assert explorables(backend, started, "cpu", {"host.cpu_cores": 2}, frozenset(), busy) == [
        Explorable("cpu_threads", (2,))]
    # The user's thread count stays; a quiet machine keeps the rules'.
    assert for_the_load(config, "cpu", busy, frozenset({"cpu_threads"})).cpu_threads == 2
    assert for_the_load(config, "cpu", CpuLoad(2, 0.1, 0.3), frozenset()).cpu_threads == 2
    wide = RunConfig("infer", "fp32", 2, None, cpu_threads=3)
    assert explorables(backend, wide, "cpu", {"host.cpu_cores": 8}, frozenset(), CpuLoad(8, 5, 0.3)) == [
        Explorable("cpu_threads", (8, 1))]


# --- the protocol: warm-up that settles, a deadline before every iteration ------------------

class ScriptedSession:
    """Each step sleeps the next of ``steps_s`` (the last repeats): load that comes and goes."""

    device_name = "scripted"

    def __init__(self, steps_s):
        self.steps_s, self.steps = list(steps_s), 0

    def step(self):
        time.sleep(self.steps_s[min(self.steps, len(self.steps_s) - 1)])
        self.steps += 1

    def clock(self):
        from autotune.measure.protocol import WallClock  # noqa: PLC0415

        return WallClock()


def test_a_slow_model_warms_up_until_its_steps_settle_not_ten_steps():
    # A cold first step, then steady 0.2 s steps: ten warm-up steps would spend the budget.
    session = ScriptedSession([0.5, 0.2, 0.2])
    timing = time_session(session, batch_size=1, budget_s=2.5)
    assert 2 <= timing.warmup_iterations <= 3
    assert len(timing.iterations_ms) >= 5 and not timing.cut_short


def test_the_hard_deadline_cuts_a_minimum_short_when_load_slows_the_steps():
    # 20 ms steps, then outside load makes them 0.4 s: the minimum no longer fits.
    session = ScriptedSession([0.02] * 4 + [0.4])
    started = time.monotonic()
    timing = time_session(session, batch_size=1, budget_s=0.6, hard_deadline=started + 0.6)
    wall_s = time.monotonic() - started
    assert timing.cut_short and len(timing.iterations_ms) < 5
    assert wall_s <= 0.6 + 0.4 + 0.05  # one slow step past it at most, never the minimum's five


def test_a_measurement_cut_short_is_typed_and_says_what_it_needed():
    import dataclasses  # noqa: PLC0415

    from autotune.measure.measurer import Measurer  # noqa: PLC0415
    from autotune.model.stats import reference_models  # noqa: PLC0415
    from autotune.model_inputs import from_shape  # noqa: PLC0415
    from autotune.sdk.testing import FakeRunner  # noqa: PLC0415

    stats = dataclasses.replace(reference_models()["resnet18"], inputs=from_shape((3, 4, 4)))
    runner = FakeRunner(seconds_per_sample=0.01)
    measurer = Measurer("fake", runner, model=None, stats=stats, device="cpu", precisions=("fp32",))
    slow = iter([0.01] * 3)
    original_open = runner.open

    def open_loaded(*args, **kwargs):
        session = original_open(*args, **kwargs)
        session_step = session.step

        def step():
            session_step()
            time.sleep(next(slow, 0.3))  # load arrives after the probe's steps
        session.step = step
        return session

    runner.open = open_loaded
    started = time.monotonic()
    measured = measurer.measure(RunConfig("infer", "fp32", 1, None), budget_s=0.5, check_accuracy=False,
                                deadline=started + 0.5)
    assert time.monotonic() - started <= 0.5 + 0.35
    assert measured.outcome is Outcome.CUT_SHORT and measured.status == "skipped"
    assert measured.to_dict()["outcome"] == "cut_short" and measured.needed_s > 0
    assert measured.reason.startswith("the deadline came after")


# --- the winner: by more than the spread, else the simpler --------------------------------

def _measured(precision: str, times_ms, batch=1, threads=None) -> Measurement:
    config = RunConfig("infer", precision, batch, None, cpu_threads=threads)
    return Measurement("torch", "cpu", config, Outcome.OK, timing=Timing(tuple(times_ms), 2, batch))


def test_noise_does_not_pick_the_winner_the_simpler_stays():
    fp32 = _measured("fp32", [10, 11, 12, 13, 14])
    bf16 = _measured("bf16", [9, 10, 11, 12, 13])  # faster median, overlapping spread
    assert not winner.clearly_faster(bf16, fp32)
    assert winner.choose([bf16, fp32], baseline=bf16.config) is fp32
    clearly = _measured("bf16", [5, 5.5, 6, 6.5, 7])
    assert winner.choose([fp32, clearly], baseline=fp32.config) is clearly


def test_simpler_is_fewer_changes_from_the_rules_configuration():
    rules = _measured("fp32", [10, 11, 12, 13, 14], threads=2)
    one_thread = _measured("fp32", [9.5, 10.5, 11.5, 12.5, 13.5], threads=1)
    assert winner.choose([one_thread, rules], baseline=rules.config) is rules
    assert winner.choose([rules, _measured("fp32", [4, 4, 4, 4, 4], threads=1)],
                         baseline=rules.config).config.cpu_threads == 1


# --- under load: verify holds its budget with busy processes beside it ------------------------

def busy_model():
    """A CPU-bound MLP: each step is real arithmetic, so outside load slows it."""
    import torch  # noqa: PLC0415

    return torch.nn.Sequential(torch.nn.Linear(512, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 2048),
                               torch.nn.ReLU(), torch.nn.Linear(2048, 10))


@pytest.fixture
def loaded_cpu():
    """One busy process per usable core, plus one: the machine is oversubscribed."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(len(os.sched_getaffinity(0)) + 1)]
    time.sleep(0.3)
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()


@pytest.mark.real_cpu_load
@pytest.mark.parametrize("budget_s", [4.0, 8.0])
def test_verify_holds_its_budget_on_a_loaded_cpu(loaded_cpu, budget_s):
    pytest.importorskip("torch")
    import autotune  # noqa: PLC0415
    from autotune.errors import NoBackend  # noqa: PLC0415

    backend_started: list[float] = []
    try:
        verification = autotune.verify(model="tests.test_cpu_load:busy_model", input_shape="512",
                                       budget_s=budget_s, backends="torch",
                                       on_backend=lambda name: backend_started.append(time.monotonic()))
        reports = verification.reports
        assert verification.cpu_load is not None and verification.cpu_load.busy
    except NoBackend as failure:
        reports = failure.reports
    wall_s = time.monotonic() - backend_started[0]
    print(f"verify under load: budget {budget_s} s -> {wall_s:.2f} s")
    assert wall_s <= budget_s * ALLOWED_OVERRUN, (wall_s, [r.to_dict() for r in reports])
    for measurement in (m for r in reports for m in r.measurements):
        assert measurement.outcome in (Outcome.OK, Outcome.REJECTED, Outcome.OVER_BUDGET, Outcome.CUT_SHORT)
