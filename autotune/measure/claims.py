"""What a verified config claims: every decision marked measured, confirmed or unmeasured.

A config marked ``measured: true`` holds decisions measurement made (batch, precision, the
backend order, explored options), decisions the rules made that the winning configuration
ran, and decisions nothing ran — the data loader's workers, a quantisation no measurement
reached. :func:`with_claims` says which is which on each decision
(:attr:`autotune.types.Decision.measurement`, one of
:data:`autotune.types.MEASUREMENT_CLAIMS`) and, for an unmeasured one, why.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from autotune.measure.decisions import winning_backend
from autotune.measure.measurement import Measurement, Outcome
from autotune.measure.verify_report import BackendReport
from autotune.types import Decision, Recommendation

#: Why a decision verify never runs is unmeasured, by decision.
_NOT_RUN = {
    **dict.fromkeys(("num_workers", "pin_memory", "data_pipeline"),
                    "verify feeds synthetic batches already in memory; data loading is not measured"),
    **dict.fromkeys(("multi_gpu", "dist_backend", "interconnect"),
                    "verify measures one device in one process"),
    **dict.fromkeys(("amp", "amp_dtype", "grad_scaler"),
                    "how a training loop applies the precision; verify measured the precision itself"),
}
#: Decisions that name a precision, which a measurement of that precision runs.
_PRECISION_DECISIONS = ("alternative_precision",)


def with_claims(recommendation: Recommendation, reports: list[BackendReport]) -> Recommendation:
    """``recommendation`` (made with verify's measured decisions) with every decision marked
    measured, confirmed or unmeasured against what ``reports`` measured."""
    found = winning_backend(reports, recommendation)
    if found is None:
        return recommendation
    report, winner = found
    ran = _what_ran(report, winner)
    decisions = tuple(_claimed(decision, ran, winner, reports) for decision in recommendation.decisions)
    return replace(recommendation, decisions=decisions)


def _what_ran(report: BackendReport, winner: Measurement) -> dict[str, Any]:
    """The value of each decision the winning configuration carries, as it ran."""
    config = winner.config
    ran: dict[str, Any] = {
        "device": report.device, "batch_size": config.batch_size, "precision": config.precision,
        "quantization": config.precision if config.precision in ("int8", "int4") else "none",
    }
    if config.resolution is not None:
        ran["resolution"] = config.resolution
    if config.cpu_threads and report.device == "cpu":
        ran["cpu_threads"] = config.cpu_threads
    for option in report.registration.options if report.registration is not None else ():
        if option.decision is not None and report.device in option.devices:
            ran[option.decision] = config.option(option.name, option.default)
    return ran


def _claimed(decision: Decision, ran: dict[str, Any], winner: Measurement,
             reports: list[BackendReport]) -> Decision:
    """``decision`` marked by what ran."""
    name, value = decision.name, decision.value
    by = f"{winner.backend} {winner.label}"
    if name == "backends":
        return _backends_claim(decision, reports)
    if name in ran:
        if ran[name] == value:
            if decision.rule == "measured":
                return replace(decision, measurement="measured")
            return replace(decision, measurement="confirmed", measurement_note=f"ran in the winning {by}")
        precision = value if name in ("precision", "quantization") else None
        why = f"the winning {by} ran {ran[name]}"
        if precision not in (None, "none"):
            why += "; " + why_not_run(str(precision), reports)
        return replace(decision, measurement="unmeasured", measurement_note=why)
    if name in _PRECISION_DECISIONS and value not in (None, "none"):
        ran_it = [m for r in reports for m in r.measurements
                  if m.config.precision == value and m.outcome in (Outcome.OK, Outcome.REJECTED)]
        if ran_it:
            best = ran_it[-1]
            return replace(decision, measurement="confirmed",
                           measurement_note=f"measured: {best.backend} {best.label} {best.outcome.value}")
        return replace(decision, measurement="unmeasured", measurement_note=why_not_run(str(value), reports))
    why = _NOT_RUN.get(name, "verify does not run this setting")
    return replace(decision, measurement="unmeasured", measurement_note=why)


def _backends_claim(decision: Decision, reports: list[BackendReport]) -> Decision:
    """The backend order is measured where measurement ordered it; the listed backends no
    measurement ran are named."""
    measured = {r.backend for r in reports if r.best is not None}
    unmeasured = [name for name in decision.value if name not in measured]
    note = ""
    if unmeasured:
        why = {r.backend: f"{r.status}: {r.reason}" if r.reason else r.status for r in reports}
        note = "not measured: " + "; ".join(f"{name} ({why.get(name, 'not asked for')})"
                                            for name in unmeasured)
    claim = "measured" if decision.rule == "measured" else "confirmed"
    return replace(decision, measurement=claim, measurement_note=note)


def why_not_run(precision: str, reports: list[BackendReport]) -> str:
    """Why no configuration in ``precision`` ran (or passed), backend by backend."""
    tried = [m for r in reports for m in r.measurements if m.config.precision == precision]
    if tried:
        last = tried[-1]
        return (f"{precision}: {last.backend} {last.label} {last.outcome.value}"
                + (f" ({last.reason})" if last.reason else ""))
    words = []
    for report in reports:
        if report.status != "measured":
            because = f" ({report.reason})" if report.reason else ""
            words.append(f"{report.backend} {report.status}{because}")
        elif precision not in report.precisions:
            words.append(f"{report.backend} has no {precision} path here")
        else:
            words.append(f"{report.backend}'s budget left no time for it")
    return f"no {precision} configuration ran: " + "; ".join(words)
