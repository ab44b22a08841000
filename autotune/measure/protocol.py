"""The measurement protocol every backend shares: warm up, time, summarise.

Warm-up runs at least the ten iterations of S001-2, then until the timings settle; the
timed iterations fill the configuration's time budget and stop by it, by the wall clock
(only the protocol's minimum may not fit: :mod:`autotune.measure.measurer` checks that first).
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
        }


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


def _settled(times: list[float]) -> bool:
    window = protocol()["settle_window"]
    if len(times) < 2 * window:
        return False
    recent = statistics.median(times[-window:])
    before = statistics.median(times[-2 * window:-window])
    return abs(recent - before) <= protocol()["settle_tolerance"] * before


def minimum_iterations() -> int:
    """Steps the protocol runs whatever the budget: the S001-2 warm-up, then the timed minimum."""
    settings = protocol()
    return settings["warmup_min_iterations"] + settings["timed_min_iterations"]


def time_session(session: Session, batch_size: int, budget_s: float | None = None,
                 on_iteration: Callable[[], None] | None = None) -> Timing:
    """Warm up, then time iterations until ``budget_s`` of wall time is spent.

    The protocol's minimum (:func:`minimum_iterations`) always runs: a caller with a hard
    deadline checks first that it fits. Beyond the minimum, no iteration starts that would
    end past the budget, by the wall clock (the session's clock may time device work only).
    """
    settings = protocol()
    budget_s = float(settings["config_budget_s"]) if budget_s is None else budget_s
    clock = session.clock()
    walls_s: list[float] = []

    def one() -> float:
        begun = time.monotonic()
        clock.start()
        session.step()
        elapsed = clock.stop()
        if on_iteration is not None:
            on_iteration()
        walls_s.append(time.monotonic() - begun)
        return elapsed

    def time_for_one_more(deadline: float) -> bool:
        return time.monotonic() + statistics.median(walls_s[-settings["settle_window"]:]) <= deadline

    started = time.monotonic()
    deadline = started + budget_s
    warmup: list[float] = []
    warmup_deadline = started + budget_s * settings["warmup_budget_share"]
    while len(warmup) < settings["warmup_min_iterations"] or (
            not _settled(warmup) and time_for_one_more(warmup_deadline)):
        warmup.append(one())
    remaining_s = max(0.0, deadline - time.monotonic())
    per_iteration_s = statistics.median(warmup[-settings["settle_window"]:]) / 1000
    count = max(settings["timed_min_iterations"], int(remaining_s / max(per_iteration_s, 1e-6)))
    timed: list[float] = []
    minimum = settings["timed_min_iterations"]
    while len(timed) < count and (len(timed) < minimum or time_for_one_more(deadline)):
        timed.append(one())
    return Timing(iterations_ms=tuple(timed), warmup_iterations=len(warmup), batch_size=batch_size)
