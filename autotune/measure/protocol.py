"""The measurement protocol every backend shares: warm up, time, summarise.

Warm-up runs until the step times settle: S001-2's ten iterations and then two windows of
five that agree, where those ten are cheap (within the warm-up's share of the budget); for a
slow model, at least two, then until one step is within the tolerance of the one before —
ten steps of several seconds would leave no budget to time anything. The timed iterations
fill the configuration's time budget and stop by it, by the wall clock. A hard deadline is
checked before every iteration, warm-up included: a configuration whose minimum it cuts
short says so (:attr:`Timing.cut_short`) rather than running past it.
Each iteration is timed by the session's clock: CUDA events on a GPU (the S001-2 code
timed without synchronising, so it measured kernel launches, not kernels), a monotonic
clock on a CPU. Constants live in ``profiles/harness.yaml``.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autotune.backend_api import Session
from autotune.shipped_data import load_profile


@functools.cache
def protocol() -> dict[str, Any]:
    return load_profile("harness.yaml")


@dataclass(frozen=True)
class Timing:
    """Iteration times of one configuration and what they say."""

    iterations_ms: tuple[float, ...]
    warmup_iterations: int
    batch_size: int
    #: The hard deadline came before the protocol's minimum ran (``iterations_ms`` may be
    #: fewer than ``timed_min_iterations``, or none).
    cut_short: bool = False

    @property
    def p50_ms(self) -> float:
        return percentile(self.iterations_ms, 50)

    @property
    def p90_ms(self) -> float:
        return percentile(self.iterations_ms, 90)

    @property
    def p99_ms(self) -> float:
        return percentile(self.iterations_ms, 99)

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.iterations_ms)

    @property
    def cv(self) -> float:
        """Coefficient of variation: standard deviation / mean of the iteration times."""
        if len(self.iterations_ms) < 2:
            return 0.0
        return statistics.stdev(self.iterations_ms) / self.mean_ms

    @property
    def unstable(self) -> bool:
        return self.cv > protocol()["unstable_cv"]

    @property
    def throughput_samples_s(self) -> float:
        # The median iteration, so one slow outlier does not move the figure.
        return self.batch_size * 1000 / self.p50_ms

    def summary(self) -> dict[str, Any]:
        return {
            "p50_ms": round(self.p50_ms, 3), "p90_ms": round(self.p90_ms, 3),
            "p99_ms": round(self.p99_ms, 3), "mean_ms": round(self.mean_ms, 3),
            "throughput_samples_s": round(self.throughput_samples_s, 2),
            "cv": round(self.cv, 4), "unstable": self.unstable,
            "iterations": len(self.iterations_ms), "warmup_iterations": self.warmup_iterations,
        } | ({"cut_short": True} if self.cut_short else {})

    def per_sample_ms(self, percent: float) -> float:
        """The ``percent`` percentile of the iteration times, per sample of the batch."""
        return percentile(self.iterations_ms, percent) / self.batch_size


class WallClock:
    """The clock of a runtime whose step returns when the device is done: a CPU, or ONNX
    Runtime on CUDA, whose ``run`` synchronises its stream before it returns."""

    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self) -> float:
        return (time.perf_counter() - self._start) * 1000


def percentile(values: tuple[float, ...] | list[float], percent: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), no numpy needed."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * percent / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _settled(times: list[float], window: int) -> bool:
    """Whether the median of the last ``window`` times is within the tolerance of the
    window before."""
    if len(times) < 2 * window:
        return False
    recent = statistics.median(times[-window:])
    before = statistics.median(times[-2 * window:-window])
    return abs(recent - before) <= protocol()["settle_tolerance"] * before


def minimum_iterations() -> int:
    """Steps the protocol needs at the least: two warm-up, then the timed minimum (a model
    whose ten S001-2 warm-up steps are cheap runs them too; they fit by definition)."""
    settings = protocol()
    return settings["warmup_min_iterations"] + settings["timed_min_iterations"]


@dataclass
class _Steps:
    """Runs and times a session's steps, each only if the hard deadline leaves time for it."""

    session: Session
    hard_deadline: float | None
    on_iteration: Callable[[], None] | None
    walls_s: list[float]

    def __post_init__(self) -> None:
        self.clock = self.session.clock()

    def expected_s(self) -> float:
        # The slower of the last two: under outside load a step can take twice the one before,
        # and a deadline is missed by the step that was expected to fit.
        return max(self.walls_s[-2:], default=0.0)

    def fits(self, deadline: float | None) -> bool:
        return deadline is None or time.monotonic() + self.expected_s() <= deadline

    def one(self) -> float:
        begun = time.monotonic()
        self.clock.start()
        self.session.step()
        elapsed = self.clock.stop()
        if self.on_iteration is not None:
            self.on_iteration()
        self.walls_s.append(time.monotonic() - begun)
        return elapsed


def _warm_up(steps: _Steps, budget_s: float, started: float) -> tuple[list[float], bool]:
    """(the warm-up's times, whether the hard deadline cut it short)."""
    settings = protocol()
    warmup: list[float] = []
    warmup_deadline = started + budget_s * settings["warmup_budget_share"]
    cheap_count = settings["warmup_cheap_iterations"]
    while True:
        if not steps.fits(steps.hard_deadline):
            return warmup, True
        warmup.append(steps.one())
        if len(warmup) < settings["warmup_min_iterations"]:
            continue
        # S001-2's ten, where ten steps like the latest fit the warm-up's share: cheap.
        cheap = started + cheap_count * steps.walls_s[-1] <= warmup_deadline
        if cheap and len(warmup) < cheap_count:
            continue
        window = settings["settle_window"] if cheap else 1
        if _settled(warmup, window) or not steps.fits(warmup_deadline):
            return warmup, False


def time_session(session: Session, batch_size: int, budget_s: float | None = None,
                 on_iteration: Callable[[], None] | None = None,
                 hard_deadline: float | None = None) -> Timing:
    """Warm up, then time iterations until ``budget_s`` of wall time is spent.

    Beyond the protocol's minimum (:func:`minimum_iterations`), no iteration starts that would
    end past the budget, by the wall clock (the session's clock may time device work only).
    The minimum runs whatever the budget, except past ``hard_deadline`` (a
    :func:`time.monotonic` value), which is checked before every iteration, warm-up included:
    where it stops the minimum, the timing is :attr:`Timing.cut_short`.
    """
    settings = protocol()
    budget_s = float(settings["config_budget_s"]) if budget_s is None else budget_s
    steps = _Steps(session, hard_deadline, on_iteration, [])
    started = time.monotonic()
    warmup, cut_short = _warm_up(steps, budget_s, started)
    timed: list[float] = []
    if cut_short:
        return Timing((), len(warmup), batch_size, cut_short=True)
    deadline = started + budget_s
    remaining_s = max(0.0, deadline - time.monotonic())
    per_iteration_s = statistics.median(warmup[-settings["settle_window"]:]) / 1000
    count = max(settings["timed_min_iterations"], int(remaining_s / max(per_iteration_s, 1e-6)))
    minimum = settings["timed_min_iterations"]
    while len(timed) < count and (len(timed) < minimum or steps.fits(deadline)):
        if not steps.fits(hard_deadline):
            return Timing(tuple(timed), len(warmup), batch_size, cut_short=len(timed) < minimum)
        timed.append(steps.one())
    return Timing(iterations_ms=tuple(timed), warmup_iterations=len(warmup), batch_size=batch_size)


def probe(step: Callable[[], object], step_s: float, after_s: float, deadline: float) -> tuple[float, float]:
    """(the latest step's wall time, the seconds left): more ``step()``s while the latest says
    the protocol's minimum does not fit, one more step still does, and steps still get
    faster. First steps are cold (allocation, caches, compilation, autotuning) and can
    be many times the steady figure; a step no faster than the one before ends it."""
    left_s = deadline - time.monotonic()
    previous_s = float("inf")
    for _ in range(protocol()["warmup_min_iterations"]):
        if minimum_iterations() * step_s + after_s <= left_s or step_s >= left_s or step_s > 0.9 * previous_s:
            break
        stepped = time.monotonic()
        step()
        previous_s, step_s = step_s, time.monotonic() - stepped
        left_s = deadline - time.monotonic()
    return step_s, left_s
