"""Which measured configuration wins: the one policy ``verify``, its batch climb, the
backends' ranking and ``bench``'s thread choice share, so noise never picks the winner.

A configuration beats another only by more than the two measurements' spread: its p90
time (per sample for throughput, per iteration for latency) is below the other's p10 —
their p10–p90 ranges do not overlap. Among the configurations the fastest does not beat
that way, the simplest stays. *Simpler* is defined once, here (:func:`simplicity`): the
more widely exact precision first (FP32, then BF16, FP16, INT8, INT4), then the fewest
settings changed from the rules' configuration (batch, threads, each option), then the
order the caller lists them in (the rules' backend order).
"""

from __future__ import annotations

from collections.abc import Sequence

from autotune.backend_api import RunConfig
from autotune.measure.measurement import Measurement

#: Simplest first: what a precision asks of the model and its accuracy check.
PRECISION_ORDER = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4")


def _spread_ms(measurement: Measurement, objective: str, percent: float) -> float:
    timing = measurement.timed
    if objective == "latency":
        return timing.per_sample_ms(percent) * timing.batch_size
    return timing.per_sample_ms(percent)


def clearly_faster(a: Measurement, b: Measurement, objective: str = "throughput") -> bool:
    """Whether ``a`` beats ``b`` by more than their spread: ``a``'s p90 time below ``b``'s p10
    (per sample for throughput, per iteration for latency)."""
    return _spread_ms(a, objective, 90) < _spread_ms(b, objective, 10)


def changes(config: RunConfig, baseline: RunConfig) -> int:
    """How many settings ``config`` changes from ``baseline``: batch, threads, each option."""
    changed = int(config.batch_size != baseline.batch_size) + int(config.cpu_threads != baseline.cpu_threads)
    names = {name for name, _ in config.options} | {name for name, _ in baseline.options}
    return changed + sum(config.option(name) != baseline.option(name) for name in names)


def simplicity(measurement: Measurement, baseline: RunConfig | None) -> tuple[int, int]:
    """Lower is simpler: (the precision's place in :data:`PRECISION_ORDER`, settings changed
    from the rules' configuration ``baseline``)."""
    precision = measurement.config.precision
    rank = PRECISION_ORDER.index(precision) if precision in PRECISION_ORDER else len(PRECISION_ORDER)
    return rank, changes(measurement.config, baseline) if baseline is not None else 0


def choose(measurements: Sequence[Measurement], objective: str = "throughput",
           baseline: RunConfig | None = None) -> Measurement:
    """The winner of ``measurements`` (each timed): the simplest one the fastest does not
    clearly beat (:func:`clearly_faster`); ties in simplicity go to the earlier listed."""
    if objective == "latency":
        fastest = min(measurements, key=lambda m: m.timed.p50_ms)
    else:
        fastest = max(measurements, key=lambda m: m.throughput)
    contenders = [(place, m) for place, m in enumerate(measurements)
                  if m is fastest or not clearly_faster(fastest, m, objective)]
    return min(contenders, key=lambda pair: (*simplicity(pair[1], baseline), pair[0]))[1]
