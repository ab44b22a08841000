"""What measurement decided: the recommendation's decisions from each backend's report.

``verify`` measures (:mod:`autotune.measure.verify`); this turns its reports into decisions —
batch size, precision, quantisation, explored options and the backend order — that stand
over the rules' in the final recommendation, each with the figures that made it, plus the
winning backend's own options.
"""

from __future__ import annotations

from typing import Any

from autotune.measure import winner
from autotune.measure.measurement import Measurement, Outcome
from autotune.measure.verify_report import BackendReport
from autotune.types import Decision, Recommendation


def _option_decisions(report: BackendReport, winner: Measurement, settings: dict[str, Any],
                      where: str) -> dict[str, Decision]:
    """Explored options whose measured value differs from the decision they follow."""
    decisions: dict[str, Decision] = {}
    registration = report.registration
    if registration is None:  # a report made without its backend's registration explored nothing
        return decisions
    for name in report.explored:
        if name == "cpu_threads":
            decision, value = "cpu_threads", winner.config.cpu_threads
        else:
            decision, value = registration.option(name).decision, winner.config.option(name)
        if decision is not None and decision in settings and value != settings[decision]:
            shown = str(settings[decision]).lower()
            decisions[decision] = Decision(decision, value, "measured", "S002-8",
                                           f"{where}; the rules proposed {shown}, measured slower here")
    return decisions


def _measured(reports: list[BackendReport]) -> list[tuple[BackendReport, Measurement]]:
    """Each report that has a best configuration, with it."""
    return [(r, r.best) for r in reports if r.best is not None]


def winning_backend(reports: list[BackendReport], recommendation: Recommendation
             ) -> tuple[BackendReport, Measurement] | None:
    """The backend whose best configuration is best, with that configuration, or None when
    none measured. A backend wins only by more than the spread (:mod:`winner`); else the
    simpler configuration, then the backend the rules list first, stays."""
    measured = _measured(reports)
    if not measured:
        return None
    best = winner.choose([m for _, m in measured], recommendation.inputs["objective"],
                         measured[0][0].measurements[0].config)
    return next(pair for pair in measured if pair[1] is best)


def winning_options(reports: list[BackendReport], recommendation: Recommendation
                    ) -> dict[str, dict[str, Any]]:
    """The winning configuration's backend options, by backend name (options that mean
    nothing for its precision left out)."""
    found = winning_backend(reports, recommendation)
    if found is None:
        return {}
    winning, best = found
    config, registration = best.config, winning.registration
    if not config.options or registration is None:
        return {}
    return {winning.backend: {name: value for name, value in config.options if value is not None
                              and registration.option(name).applies_to(config.precision)}}


def _quantization_decision(reports: list[BackendReport], winner: Measurement, settings: dict[str, Any],
                           reason: str) -> Decision | None:
    """What measurement says of quantising: the winner's INT8/INT4 and how it was made, or
    that the quantised precision proposed lost (slower, or over the accuracy budget)."""
    if winner.config.precision in ("int8", "int4"):
        method = winner.config.option("int8_method") if winner.config.precision == "int8" else None
        made = f"; made by {method}" if method else ""
        return Decision("quantization", winner.config.precision, "measured", "S002-8", reason + made)
    proposed = settings["quantization"]
    tried = [m for r in reports for m in r.measurements
             if m.config.precision == proposed and m.outcome in (Outcome.OK, Outcome.REJECTED)]
    if proposed == "none" or not tried:
        return None
    passed = [m for m in tried if m.ok]
    if passed:
        best = max(passed, key=lambda m: m.throughput)
        why = (f"{best.backend} {best.label} measured {best.throughput:.1f} samples/s, slower than "
               f"{winner.backend} {winner.label} at {winner.throughput:.1f}")
    else:
        why = f"{tried[-1].backend} {tried[-1].label} failed the accuracy check: {tried[-1].reason}"
    return Decision("quantization", "none", "measured", "S002-8", why)


def measured_decisions(reports: list[BackendReport], recommendation: Recommendation
                       ) -> dict[str, Decision]:
    """The decisions measurement made: batch size, precision, quantisation and explored
    options of the best configuration, and the backend order by measured speed."""
    found = winning_backend(reports, recommendation)
    if found is None:
        return {}
    winning, winner = found
    settings = recommendation.settings
    speed = f"{winner.throughput:.1f} samples/s, p50 {winner.timed.p50_ms:.1f} ms"
    if winner.roofline_percent is not None:
        speed += f", {winner.roofline_percent:.0f} % of the roofline"
    where = f"measured with {winner.backend} on {winner.device}: {speed}"
    # The rules' own configuration is what each backend measured first.
    baseline = next((m for m in winning.measurements if m.ok), None)
    if baseline is None or baseline.config == winner.config:
        reason = f"{where}; confirms the rules' choice"
    else:
        reason = (f"{where}, {winner.throughput / baseline.throughput:.2f}x the rules' "
                  f"{baseline.label} ({baseline.throughput:.1f} samples/s)")
    decisions = {"batch_size": Decision("batch_size", winner.config.batch_size, "measured", "S002-8", reason)}
    if winner.config.precision != settings["precision"]:
        decisions["precision"] = Decision("precision", winner.config.precision, "measured", "S002-8", reason)
    if winner.config.resolution and winner.config.resolution != settings["resolution"]:
        decisions["resolution"] = Decision("resolution", winner.config.resolution, "measured", "S000-7",
                                           f"{where}; the OOM ladder stepped down to it")
    decisions |= _option_decisions(winning, winner, settings, where)
    quantization = _quantization_decision(reports, winner, settings, reason)
    if quantization is not None:
        decisions["quantization"] = quantization
    backends = _backends_decision(reports, settings["backends"])
    if backends is not None:
        decisions["backends"] = backends
    return decisions


def _backends_decision(reports: list[BackendReport], proposed: list[str]) -> Decision | None:
    """The backends by measured throughput, then the rules' others that were not tried or ran
    out of time; one that failed or cannot run here leaves the list. None: the rules' order stands."""
    order = sorted(_measured(reports), key=lambda measured: -measured[1].throughput)
    measured_names = [r.backend for r, _ in order]
    dropped = {r.backend: r for r in reports if r.cannot_run}
    ranked = measured_names + [b for b in proposed if b not in measured_names and b not in dropped]
    if ranked == proposed:
        return None
    reason = "ordered by measured throughput: " + ", ".join(
        f"{r.backend} {best.throughput:.1f}/s" for r, best in order)
    gone = [f"{name} {r.status}" for name, r in dropped.items() if name in proposed]
    if gone:
        reason += "; left out: " + ", ".join(gone)
    return Decision("backends", ranked, "measured", "S002-8", reason)


def batch_one_latency_ms(reports: list[BackendReport], decisions: dict[str, Decision]) -> float | None:
    """The measured p50 at batch 1 in the chosen precision, for the S002-4 latency class."""
    precision = decisions["precision"].value if "precision" in decisions else None
    ones = [m for r in reports for m in r.measurements
            if m.ok and m.config.batch_size == 1 and precision in (None, m.config.precision)]
    return min((m.timed.p50_ms for m in ones), default=None)
