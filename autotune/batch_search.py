"""The largest batch that really fits, in at most two trials when the memory model is right.

Trial 1 runs the memory model's batch and measures its peak; the measured per-sample
cost then predicts the largest batch, which trial 2 confirms. Only when a trial runs out
of memory does the search bisect. A safety margin of usable memory stays free.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from autotune.harness import protocol


@dataclass(frozen=True)
class SearchResult:
    batch_size: int
    trials: tuple[tuple[int, int | None], ...]  # (batch, peak bytes) — None: out of memory
    predicted_peak_bytes: float
    measured_peak_bytes: int | None

    @property
    def trial_count(self) -> int:
        return len(self.trials)


def search_largest_batch(trial: Callable[[int], int | None], predicted_batch: int,
                         static_bytes: float, usable_bytes: float, predict_peak: Callable[[int], float],
                         max_trials: int = 10) -> SearchResult:
    """``trial(batch)`` returns the measured peak in bytes, or None when it ran out of memory."""
    limit = usable_bytes * (1 - protocol()["batch_search_margin"])
    trials: list[tuple[int, int | None]] = []

    def run(batch: int) -> int | None:
        peak = trial(batch)
        trials.append((batch, peak))
        return peak

    good, bad = 0, None
    first = max(1, predicted_batch)
    peak = run(first)
    if peak is not None and peak <= limit:
        good = first
        per_sample = max((peak - static_bytes) / first, 1.0)
        second = math.floor((limit - static_bytes) / per_sample)
        if second > first:
            second_peak = run(second)
            if second_peak is not None and second_peak <= limit:
                good = second
            else:
                bad = second
        else:
            bad = first + 1
    else:
        bad = first
    while bad is not None and bad - good > 1 and len(trials) < max_trials:
        middle = (good + bad) // 2
        middle_peak = run(middle)
        if middle_peak is not None and middle_peak <= limit:
            good = middle
        else:
            bad = middle
    measured = next((p for b, p in reversed(trials) if b == good), None)
    return SearchResult(batch_size=max(good, 1), trials=tuple(trials),
                        predicted_peak_bytes=predict_peak(max(good, 1)), measured_peak_bytes=measured)
