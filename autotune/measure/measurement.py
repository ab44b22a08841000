"""What one measured configuration did: the :class:`Outcome` the core decides on and the
:class:`Measurement` record every caller reads, prints and stores (``to_dict``).

The :class:`~autotune.measure.measurer.Measurer` makes them; ``verify``, ``bench``, the
decisions and the renderers only read them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from autotune.backend_api import BudgetCheck, MemoryFigure, ModelFile, RunConfig
from autotune.measure.accuracy import AccuracyReport
from autotune.measure.protocol import Timing

GIB = 2**30


class Outcome(enum.Enum):
    """What a measured configuration did: a field the core decides on, never a phrase."""

    OK = "ok"
    OUT_OF_MEMORY = "out_of_memory"  # every rung of the ladder ran out of memory
    UNSUPPORTED = "unsupported"  # the backend cannot run this precision here
    FAILED = "failed"  # the model raised something else (the error is in ``reason``)
    REJECTED = "rejected"  # ran, but the accuracy check against FP32 failed
    #: skipped: the time left could not cover the protocol's minimum (``needed_s`` says how much)
    OVER_BUDGET = "over_budget"
    #: stopped by the deadline before the protocol's minimum ran (outside load slowed the
    #: steps); ``timing`` holds the timed iterations it got, if any, ``needed_s`` the rest
    CUT_SHORT = "cut_short"


@dataclass(frozen=True)
class Measurement:
    """What one configuration did on the metal."""

    backend: str
    device: str
    config: RunConfig
    outcome: Outcome
    reason: str = ""
    timing: Timing | None = None
    peak_memory_bytes: int | None = None
    predicted_peak_bytes: float | None = None
    roofline_samples_s: float | None = None
    #: What the prediction calibrated on published figures expected (GPU rows it covers).
    predicted_samples_s: float | None = None
    accuracy: AccuracyReport | None = None
    steps: tuple[str, ...] = field(default_factory=tuple)
    #: Option names (and ``cpu_threads``) worth showing in the label: the explored ones.
    shown: tuple[str, ...] = ()
    #: OVER_BUDGET, CUT_SHORT: the seconds this configuration still needed when it was skipped.
    needed_s: float | None = None
    #: UNSUPPORTED because the backend cannot run on this device at all (a GPU provider that
    #: does not load): nothing else this backend would try can run either.
    unavailable: bool = False
    #: The file the runtime ran, beside the FP32 one's size (``ModelFile``), where it made one.
    model_file: ModelFile | None = None
    #: Which figure ``peak_memory_bytes`` is (an allocator's, NVML's increment, ...), where known.
    peak_memory_figure: MemoryFigure | None = None
    #: How the memory budget was held, where there was one.
    memory_budget_check: BudgetCheck | None = None
    #: Graph nodes the runtime ran on the CPU beside the device (``"op_type name"``).
    host_nodes: tuple[str, ...] = ()
    #: What the matmuls and convolutions computed in, where the session says (``Session.math``):
    #: an "fp32" baseline may be IEEE FP32 or TF32 depending on the runtime.
    math: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def status(self) -> str:
        """ok, rejected, skipped (over the time budget) or failed: the coarse word tables
        show (``outcome`` says why)."""
        if self.outcome in (Outcome.OVER_BUDGET, Outcome.CUT_SHORT):
            return "skipped"
        return self.outcome.value if self.outcome in (Outcome.OK, Outcome.REJECTED) else "failed"

    @property
    def label(self) -> str:
        return self.config.label(self.shown)

    @property
    def throughput(self) -> float:
        return self.timing.throughput_samples_s if self.timing else 0.0

    @property
    def timed(self) -> Timing:
        """The timing of a measurement that ran (every OK one did)."""
        if self.timing is None:
            raise ValueError(f"{self.backend} {self.label} has no timing ({self.outcome.value})")
        return self.timing

    @property
    def roofline_percent(self) -> float | None:
        if self.timing is None or not self.roofline_samples_s:
            return None
        return 100 * self.throughput / self.roofline_samples_s

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "backend": self.backend, "device": self.device, "status": self.status,
            "outcome": self.outcome.value, "config": self.label,
            "batch_size": self.config.batch_size, "precision": self.config.precision,
        }
        if self.config.resolution:
            data["resolution"] = self.config.resolution
        if self.config.cpu_threads:
            data["cpu_threads"] = self.config.cpu_threads
        if self.config.options:
            data["options"] = dict(self.config.options)
        if self.reason:
            data["reason"] = self.reason
        if self.needed_s is not None:
            data["needed_s"] = round(self.needed_s, 1)
        if self.timing is not None:
            data |= self.timing.summary()
        if self.peak_memory_bytes is not None:
            data["peak_memory_gb"] = round(self.peak_memory_bytes / GIB, 3)
        elif self.timing is not None:
            data["peak_memory_gb"] = None  # ran, but this runtime has no memory counter here: unknown
        if self.peak_memory_figure is not None:
            data["peak_memory_figure"] = self.peak_memory_figure.value
        if self.memory_budget_check is not None:
            data["memory_budget_check"] = self.memory_budget_check.value
        if self.host_nodes:
            data["host_nodes"] = list(self.host_nodes)
        if self.predicted_peak_bytes is not None:
            data["predicted_peak_gb"] = round(self.predicted_peak_bytes / GIB, 3)
        if self.roofline_percent is not None:
            data["roofline_percent"] = round(self.roofline_percent, 1)
        if self.predicted_samples_s is not None:
            data["predicted_samples_s"] = round(self.predicted_samples_s, 1)
        if self.accuracy is not None:
            data["accuracy"] = self.accuracy.to_dict()
        if self.steps:
            data["oom_steps"] = list(self.steps)
        if self.math:
            data["math"] = self.math
        if self.model_file is not None:
            data["model_file_mb"] = round(self.model_file.size_bytes / 1e6, 2)
            data["fp32_file_mb"] = round(self.model_file.fp32_size_bytes / 1e6, 2)
            if self.model_file.detail:
                data["model_file_detail"] = self.model_file.detail
            if self.model_file.precision_evidence is not None:
                data["precision_evidence"] = self.model_file.precision_evidence.value
            if self.model_file.speedup_over_fp32 is not None:
                data["speedup_over_fp32"] = round(self.model_file.speedup_over_fp32, 2)
        return data
