"""Measurements that run the protocol's minimum only, for tests whose point is what verify
and bench decide, measure and print, not how long they time.

:func:`install` shrinks the protocol (``profiles/harness.yaml``, read through
:func:`autotune.measure.protocol.protocol`) to ``WARMUP`` warm-up + ``TIMED`` timed iterations and has
every configuration timed for that minimum, whatever budget it is given. The budgets and
deadlines stay on the wall clock, so what fits and what is skipped is still decided for real;
but no measurement spins on to fill its share of the budget, and verify ends when its
exploration does. The protocol's real figures, and the budgets held on the wall clock, are
tested in tests/test_harness.py and tests/test_budget.py, which do not use this.

The ``quick_timing`` fixture (tests/conftest.py) installs it for one test; a subprocess runs a
script under it with ``python -m tests.quick_timing SCRIPT``.
"""

from __future__ import annotations

import operator
import runpy
import sys

#: The protocol's minimum here: warm-up and timed iterations.
WARMUP, TIMED = 2, 3


def install(setitem=operator.setitem, setattr=setattr) -> None:  # noqa: A002 - monkeypatch's names
    from autotune.measure import measurer as measure  # noqa: PLC0415
    from autotune.measure.protocol import protocol, time_session  # noqa: PLC0415

    settings = protocol()
    setitem(settings, "warmup_min_iterations", WARMUP)
    setitem(settings, "timed_min_iterations", TIMED)
    setitem(settings, "config_budget_s", 0.0)

    def minimum_only(session, batch_size, budget_s=None, on_iteration=None, hard_deadline=None):
        return time_session(session, batch_size, 0.0, on_iteration, hard_deadline)

    setattr(measure, "time_session", minimum_only)


if __name__ == "__main__":
    install()
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
