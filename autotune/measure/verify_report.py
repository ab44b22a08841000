"""What ``verify`` found: each backend's :class:`BackendReport` and the whole
:class:`Verification`, as :mod:`autotune.measure.verify` fills them and
:mod:`autotune.measure.decisions`, the API and the renderers read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autotune.hardware.cpu_load import CpuLoad
from autotune.measure.batch_search import SearchResult
from autotune.measure.measurement import GIB, Measurement, Outcome
from autotune.types import Backend, Recommendation


@dataclass
class BackendReport:
    """One backend's verification: measured, skipped or failed and why, every measurement,
    the best one, the batch search on a GPU, and which options were explored."""

    backend: str
    status: str  # measured | skipped | failed
    reason: str = ""
    measurements: list[Measurement] = field(default_factory=list)
    best: Measurement | None = None
    search: SearchResult | None = None
    registration: Backend | None = None
    explored: tuple[str, ...] = ()
    #: Skipped over the time budget: about the --budget-s that measures the rules' configuration once.
    budget_needed_s: int | None = None
    #: The device it measured on (``cpu``, ``cuda``), and the precisions it runs there.
    device: str = ""
    precisions: tuple[str, ...] = ()

    @property
    def over_budget(self) -> bool:
        """Skipped because the time budget could not cover the rules' configuration once."""
        return self.status == "skipped" and any(m.outcome in (Outcome.OVER_BUDGET, Outcome.CUT_SHORT)
                                                  for m in self.measurements)

    @property
    def cannot_run(self) -> bool:
        """Failed, or skipped for a reason other than time (not installed, the wrong model
        kind, no GPU provider): a verified config does not list it among its backends."""
        return self.status == "failed" or (self.status == "skipped" and not self.over_budget)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"backend": self.backend, "status": self.status}
        if self.reason:
            data["reason"] = self.reason
        if self.best is not None:
            data["best"] = self.best.label
        if self.explored:
            data["explored"] = list(self.explored)
        if self.budget_needed_s is not None:
            data["budget_needed_s"] = self.budget_needed_s
        if self.search is not None:
            data["batch_search"] = {
                "batch_size": self.search.batch_size, "trials": self.search.trial_count,
                "predicted_peak_gb": round(self.search.predicted_peak_bytes / GIB, 3),
                "measured_peak_gb": (round(self.search.measured_peak_bytes / GIB, 3)
                                     if self.search.measured_peak_bytes else None),
                "by_out_of_memory": self.search.by_out_of_memory,
            }
        data["measurements"] = [m.to_dict() for m in self.measurements]
        return data


@dataclass(frozen=True)
class Verification:
    """What ``verify`` found: the measured recommendation, the rules' one it started from,
    and each backend's report with its measurements."""

    recommendation: Recommendation
    proposed: Recommendation
    reports: tuple[BackendReport, ...]
    #: How busy this process's CPUs were before measuring (a CPU measurement only).
    cpu_load: CpuLoad | None = None

    @property
    def measurements(self) -> list[Measurement]:
        return [m for report in self.reports for m in report.measurements]
