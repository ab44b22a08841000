"""The largest batch that really fits, in at most two trials when the memory model is right.

Trial 1 runs the memory model's batch and measures its peak; the measured per-sample
cost then predicts the largest batch, which trial 2 confirms. Only when a trial runs out
of memory does the search bisect. A safety margin of usable memory stays free.

A runtime without a peak-memory counter still gets a search, driven by out-of-memory
alone: the batch doubles from the memory model's figure until a trial does not fit, then
bisects. "Peak unknown" never counts as "out of memory".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from autotune.measure.protocol import protocol


@dataclass(frozen=True)
class Trial:
    """One batch tried: whether it fit, and its measured peak where the runtime has a counter."""

    fits: bool
    peak_bytes: int | None = None


@dataclass(frozen=True)
class SearchResult:
    batch_size: int
    trials: tuple[tuple[int, int | None], ...]  # (batch, peak bytes) — None: out of memory or no counter
    predicted_peak_bytes: float
    measured_peak_bytes: int | None
    by_out_of_memory: bool = False  # the runtime had no peak counter

    @property
    def trial_count(self) -> int:
        return len(self.trials)


def search_largest_batch(trial: Callable[[int], Trial], predicted_batch: int,
                         static_bytes: float, usable_bytes: float, predict_peak: Callable[[int], float],
                         max_trials: int = 10) -> SearchResult:
    """``trial(batch)`` runs one batch; see :class:`Trial`."""
    limit = usable_bytes * (1 - protocol()["batch_search_margin"])
    trials: list[tuple[int, int | None]] = []
    blind = False  # no peak counter: out-of-memory alone decides

    def fits(batch: int) -> tuple[bool, int | None]:
        nonlocal blind
        result = trial(batch)
        trials.append((batch, result.peak_bytes if result.fits else None))
        if result.fits and result.peak_bytes is None:
            blind = True
        return result.fits and (result.peak_bytes is None or result.peak_bytes <= limit), result.peak_bytes

    good, bad = 0, None
    first = max(1, predicted_batch)
    ok, peak = fits(first)
    if ok and peak is not None:
        good = first
        per_sample = max((peak - static_bytes) / first, 1.0)
        second = math.floor((limit - static_bytes) / per_sample)
        if second > first:
            if fits(second)[0]:
                good = second
            else:
                bad = second
        else:
            bad = first + 1
    elif ok:  # ran, but the runtime cannot say how much memory it took: double until it fails
        good = first
        while bad is None and len(trials) < max_trials:
            if fits(good * 2)[0]:
                good *= 2
            else:
                bad = good * 2
    else:
        bad = first
    while bad is not None and bad - good > 1 and len(trials) < max_trials:
        middle = (good + bad) // 2
        if fits(middle)[0]:
            good = middle
        else:
            bad = middle
    measured = next((p for b, p in reversed(trials) if b == good), None)
    return SearchResult(batch_size=max(good, 1), trials=tuple(trials),
                        predicted_peak_bytes=predict_peak(max(good, 1)), measured_peak_bytes=measured,
                        by_out_of_memory=blind)
