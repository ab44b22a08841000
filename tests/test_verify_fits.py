"""verify fits its budget (issue 27, point 2): where the rules' batch cannot be measured once
within ``--budget-s``, a smaller batch is (the OOM ladder's halvings, down to 1) before the
backend gives up; what it stepped down from is said."""

from __future__ import annotations

import sys
import time

import pytest

from autotune.measure.measurement import Outcome
from tests import test_budget

ALLOWED_OVERRUN = test_budget.ALLOWED_OVERRUN


@pytest.fixture
def slow(monkeypatch):
    """The budget tests' slow model, sleeping ``seconds`` per sample."""
    def set_to(seconds: float) -> str:
        monkeypatch.setattr(sys.modules["tests.test_budget"], "SECONDS_PER_SAMPLE", seconds)
        return test_budget.SLOW
    return set_to


def test_a_batch_over_the_budget_steps_down_instead_of_giving_up(slow):
    pytest.importorskip("torch")
    import autotune  # noqa: PLC0415

    model = slow(0.06)
    started: list[float] = []
    # The rules' batch on this CPU is 8 or more: 0.48 s a step, 7 s for the protocol's minimum.
    verification = autotune.verify(model=model, input_shape="8", budget_s=3, backends="torch", cpu_threads=1,
                                   on_backend=lambda name: started.append(time.monotonic()))
    wall_s = time.monotonic() - started[0]
    (report,) = verification.reports
    rules_batch = verification.proposed.settings["batch_size"]
    assert rules_batch >= 8
    assert report.status == "measured", report.reason
    first = report.measurements[0]
    assert first.outcome is Outcome.OVER_BUDGET and first.config.batch_size == rules_batch
    best = report.best
    assert best is not None and best.config.batch_size < rules_batch
    assert f"the rules' batch {rules_batch} does not fit the 3 s budget" in report.reason
    settings = verification.recommendation.settings
    assert settings["batch_size"] == best.config.batch_size
    decision = verification.recommendation.decision("batch_size")
    assert decision.rule == "measured"
    assert wall_s <= 3 * ALLOWED_OVERRUN, wall_s  # from the backend's start: the stats are read before


def test_a_fixed_batch_is_not_stepped_down(slow):
    pytest.importorskip("torch")
    import autotune  # noqa: PLC0415
    from autotune.errors import NoBackend  # noqa: PLC0415

    model = slow(0.06)
    with pytest.raises(NoBackend) as raised:
        autotune.verify(model=model, input_shape="8", budget_s=2, backends="torch", cpu_threads=1,
                        batch_size=8)
    assert "the 2 s budget covers no configuration" in str(raised.value)
    assert {m.config.batch_size for m in raised.value.measurements} == {8}
