"""The time budget holds for slow models (issue 12, point 7): ``verify`` within its budget
per backend, ``bench`` within its budget per point, each +20 % at most; what cannot fit
even the protocol's minimum is skipped and says so (``Outcome.OVER_BUDGET``), not overrun.

The slow model sleeps in its forward, in proportion to its batch: a stand-in for a large
model on a slow CPU whose step costs the same whatever else runs on the machine. Runs use
one thread, so a busy machine does not slow the model's own few operations.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import pytest

from autotune.backend_api import RunConfig
from autotune.measure.measurement import Outcome
from autotune.measure.measurer import Measurer
from autotune.measure.protocol import minimum_iterations, time_session
from autotune.model.stats import reference_models
from autotune.model_inputs import from_shape
from autotune.sdk.testing import FakeRunner, FakeSession

#: What the slow model sleeps per sample in a forward; each test sets its own.
SECONDS_PER_SAMPLE = 0.01
SLOW = "tests.test_budget:slow_model"
ALLOWED_OVERRUN = 1.2  # the bound: the budget +20 %


def slow_model():
    """A four-class linear model over eight features whose forward sleeps
    ``SECONDS_PER_SAMPLE`` per sample."""
    from torch import nn  # noqa: PLC0415 - the harness tests below need no torch

    class SlowModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            time.sleep(SECONDS_PER_SAMPLE * x.shape[0])
            return self.fc(x)

    return SlowModel()


@pytest.fixture
def seconds_per_sample(monkeypatch):
    def set_to(seconds: float) -> None:
        monkeypatch.setattr(sys.modules[__name__], "SECONDS_PER_SAMPLE", seconds)

    return set_to


# --- the harness: time_session and the measurer's deadline, with sleeping fakes ---------------

def sleeping_measurer(per_sample_s):
    stats = dataclasses.replace(reference_models()["resnet18"], inputs=from_shape((3, 4, 4)))
    runner = FakeRunner(seconds_per_sample=per_sample_s)
    return runner, Measurer("sleeping", runner, model=None, stats=stats, device="cpu", precisions=("fp32",))


@pytest.mark.parametrize(("step_s", "device_ms", "budget_s", "expected_steps"), [
    # Within the budget: warm-up and timed iterations stop by it.
    (0.01, None, 0.4, None),
    # The clock times device work only (1 ms) while each step takes 10 ms of wall time:
    # iterations counted from the clock alone would run 40 times over; the wall decides.
    (0.01, 1.0, 0.4, None),
    # A budget below the protocol's minimum runs the minimum and not one step more.
    (0.01, None, 0.05, "minimum"),
])
def test_time_session_stops_by_its_budget(step_s, device_ms, budget_s, expected_steps):
    session = FakeSession(step_s, device_ms)
    started = time.monotonic()
    timing = time_session(session, batch_size=1, budget_s=budget_s)
    wall_s = time.monotonic() - started
    assert len(timing.iterations_ms) >= 5
    if expected_steps == "minimum":
        # Ten 10 ms steps would be twice the warm-up's share of 50 ms: not cheap, so two.
        assert session.steps == minimum_iterations()
    else:
        assert timing.warmup_iterations >= 10  # S001-2's ten are cheap here: they run
        assert wall_s <= budget_s * ALLOWED_OVERRUN, wall_s
        assert session.steps > minimum_iterations()  # the budget was used, not just the minimum


def test_a_configuration_whose_minimum_cannot_fit_is_over_budget_not_overrun():
    runner, measurer = sleeping_measurer(per_sample_s=0.01)
    config = RunConfig("infer", "fp32", 4, None)  # 40 ms a step: the minimum takes 0.28 s
    started = time.monotonic()
    skipped = measurer.measure(config, budget_s=1.0, deadline=started + 0.2)
    assert time.monotonic() - started <= 0.2 * ALLOWED_OVERRUN
    assert skipped.outcome is Outcome.OVER_BUDGET and skipped.status == "skipped"
    assert skipped.timing is None and skipped.needed_s > 0.2 - (time.monotonic() - started)
    assert "2 warm-up + 5 timed iterations at 0.04 s" in skipped.reason and "s left" in skipped.reason
    assert skipped.to_dict()["outcome"] == "over_budget"
    assert all(session.closed for session in runner.sessions)
    # A steady slow step is not probed again and again: two steps at most decide.
    assert runner.sessions[0].steps <= 2


def test_a_larger_batch_is_skipped_on_an_over_budget_batch_s_step_without_opening():
    """An over-budget measurement books its step's cost: the next, larger batch (a detector's
    training step of minutes) is skipped on it, not opened for one more cold step."""
    runner, measurer = sleeping_measurer(per_sample_s=0.01)
    over = measurer.measure(RunConfig("infer", "fp32", 4, None), budget_s=1.0,
                            deadline=time.monotonic() + 0.2)
    assert over.outcome is Outcome.OVER_BUDGET and len(runner.sessions) == 1
    started = time.monotonic()
    larger = measurer.measure(RunConfig("infer", "fp32", 32, None), budget_s=1.0, deadline=started + 0.2)
    assert larger.outcome is Outcome.OVER_BUDGET and len(runner.sessions) == 1
    assert time.monotonic() - started < 0.05 and "as measured before" in larger.reason


def test_an_estimate_from_an_earlier_measurement_skips_without_opening():
    runner, measurer = sleeping_measurer(per_sample_s=0.005)
    measured = measurer.measure(RunConfig("infer", "fp32", 1, None), budget_s=0.1,
                                deadline=time.monotonic() + 0.5)
    assert measured.ok and len(runner.sessions) == 1
    # Batch 16 at 5 ms a sample: 80 ms a step, 1.3 s for the minimum; 0.5 s are left.
    skipped = measurer.measure(RunConfig("infer", "fp32", 16, None), budget_s=0.1,
                               deadline=time.monotonic() + 0.5)
    assert skipped.outcome is Outcome.OVER_BUDGET and "as measured before" in skipped.reason
    assert len(runner.sessions) == 1  # never opened
    assert measurer.estimate_s(RunConfig("infer", "fp32", 16, None)) == pytest.approx(skipped.needed_s)


# --- verify and bench on the slow model, through the API ------------------------------------------

@pytest.mark.parametrize(("budget_s", "per_sample_s", "batch_size", "expected"), [
    # Fast enough to explore: batch, precision and options until the budget is spent.
    (4, 0.001, None, "measured"),
    # 0.16 s a step at batch 8: the recommended configuration fits, exploring does not.
    (5, 0.02, 8, "measured"),
    # 0.4 s a step at batch 8: the minimum protocol takes 6 s, more than the budget holds.
    (2, 0.05, 8, "skipped"),
])
def test_verify_holds_its_budget_per_backend(seconds_per_sample, budget_s, per_sample_s, batch_size,
                                            expected):
    pytest.importorskip("torch")
    import autotune  # noqa: PLC0415
    from autotune.errors import NoBackend  # noqa: PLC0415

    seconds_per_sample(per_sample_s)
    fixed = {"batch_size": batch_size} if batch_size else {}
    backend_started: list[float] = []
    message = ""
    try:
        # The model's stats are read once before any backend, outside the per-backend budget:
        # the backend's wall runs from its start to verify's return.
        reports = autotune.verify(model=SLOW, input_shape="8", budget_s=budget_s, backends="torch",
                                  cpu_threads=1, on_backend=lambda name: backend_started.append(
                                      time.monotonic()), **fixed).reports
    except NoBackend as failure:
        reports, message = failure.reports, str(failure)
    wall_s = time.monotonic() - backend_started[0]
    print(f"verify: budget {budget_s} s, {per_sample_s} s a sample -> {wall_s:.2f} s")
    assert wall_s <= budget_s * ALLOWED_OVERRUN, (wall_s, [r.to_dict() for r in reports])
    (report,) = reports
    assert report.status == expected, report.to_dict()
    if expected == "measured":
        assert report.best is not None
        assert all(m.outcome in (Outcome.OK, Outcome.REJECTED, Outcome.OVER_BUDGET)
                   for m in report.measurements)
    else:
        assert report.over_budget and report.measurements[-1].outcome is Outcome.OVER_BUDGET
        assert report.budget_needed_s > budget_s
        assert f"pass a larger --budget-s (about {report.budget_needed_s} s)" in message


@pytest.fixture
def first_preparation(monkeypatch) -> list[float]:
    """When bench's measurer prepared each point: a sweep's wall runs from the first preparation
    (the model build is paid once, not charged to a point) to bench's return; the stats come
    before, outside."""
    prepared_at: list[float] = []
    prepare = Measurer.prepare

    def noting(self, config):
        prepared_at.append(time.monotonic())
        return prepare(self, config)

    monkeypatch.setattr(Measurer, "prepare", noting)
    return prepared_at


def test_bench_holds_its_budget_per_point(seconds_per_sample, first_preparation):
    pytest.importorskip("torch")
    import autotune  # noqa: PLC0415

    # 20, 40, 80, 160 ms a step: the minimum (2 warm-up + 5 timed) fits 1 s up to batch 4
    seconds_per_sample(0.02)
    result = autotune.bench(model=SLOW, input_shape="8", batches=[1, 2, 4, 8], precisions=["fp32"],
                            budget_s=1.0, cpu_threads=1)
    wall_s = time.monotonic() - first_preparation[0]
    print(f"bench: 4 points x 1 s -> {wall_s:.2f} s")
    assert wall_s <= 4 * 1.0 * ALLOWED_OVERRUN
    outcomes = [(m.config.batch_size, m.outcome) for m in result.measurements]
    assert outcomes == [(1, Outcome.OK), (2, Outcome.OK), (4, Outcome.OK), (8, Outcome.OVER_BUDGET)]
    for skipped in result.measurements[3:]:
        assert skipped.reason.startswith("needs about") and skipped.needed_s > 1.0
        assert result.rows()[result.measurements.index(skipped)]["status"] == "skipped"


def test_the_cli_says_the_budget_to_ask_for_in_one_line(capsys, seconds_per_sample):
    pytest.importorskip("torch")
    from tests.test_cli import run  # noqa: PLC0415

    seconds_per_sample(0.05)
    code, out, err = run(capsys, "verify", "--model", SLOW, "--input-shape", "8", "--backend", "torch",
                         "--budget-s", "1", "--set", "cpu_threads=1", "--set", "batch_size=8")
    assert code == 1 and out == ""
    error = err.splitlines()[-1]
    assert error.startswith("autotune: error: the 1 s budget covers no configuration")
    assert "pass a larger --budget-s (about" in error
    assert "over budget: needs about" in err  # the results table says what it needed


def test_bench_without_a_budget_lets_a_slow_point_finish_within_the_sweeps_budget(monkeypatch,
                                                                                   seconds_per_sample,
                                                                                   first_preparation):
    pytest.importorskip("torch")
    import autotune  # noqa: PLC0415
    from autotune.measure.plan import MeasurementBudget  # noqa: PLC0415

    # 30 ms a sample: batch 8's minimum protocol (2 warm-up + 5 timed at 0.24 s) outlasts the
    # 1.5 s timing window, batch 24's (5 s) outlasts what the sweep's 6 s leave it.
    seconds_per_sample(0.03)
    request = MeasurementBudget.from_request
    monkeypatch.setattr(MeasurementBudget, "from_request",
                        lambda **given: dataclasses.replace(request(**given), backend_s=6.0))
    result = autotune.bench(model=SLOW, input_shape="8", batches=[1, 8, 24], precisions=["fp32"],
                            cpu_threads=1)
    wall_s = time.monotonic() - first_preparation[0]
    print(f"bench: 3 points, a 6 s sweep -> {wall_s:.2f} s")
    assert wall_s <= 6.0 * ALLOWED_OVERRUN
    outcomes = [(m.config.batch_size, m.outcome) for m in result.measurements]
    assert outcomes[:2] == [(1, Outcome.OK), (8, Outcome.OK)]
    assert outcomes[2] in ((24, Outcome.OVER_BUDGET), (24, Outcome.CUT_SHORT))
