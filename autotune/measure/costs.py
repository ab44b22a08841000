"""What measurements cost, so a time budget is kept rather than overrun.

A :class:`CostBook` keeps what earlier measurements of one model on one backend cost —
opening a session, each sample of a step, preparing the model, the FP32 reference — and
estimates from that the least wall time a new configuration needs: the protocol's minimum
iterations (:func:`autotune.measure.protocol.minimum_iterations`) plus whatever is not done yet.
:class:`autotune.measure.measurer.Measurer` asks it before opening a configuration and after its
first step, and skips what cannot end by the deadline (``Outcome.OVER_BUDGET``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from autotune.backend_api import RunConfig
from autotune.measure.protocol import Timing, minimum_iterations, protocol


def protocol_words(step_s: float, about: str = "") -> str:
    """``10 warm-up + 5 timed iterations at 0.95 s``: the protocol's minimum, in words."""
    settings = protocol()
    return (f"{settings['warmup_min_iterations']} warm-up + {settings['timed_min_iterations']} timed "
            f"iterations at {about}{step_s:.2f} s")


def cut_short_words(timing: Timing, step_s: float) -> tuple[str, float]:
    """(what a timing the deadline cut short ran, in words; the seconds its minimum still needed)."""
    settings = protocol()
    timed, minimum = len(timing.iterations_ms), settings["timed_min_iterations"]
    missing = max(0, settings["warmup_min_iterations"] - timing.warmup_iterations) + minimum - timed
    return (f"the deadline came after {timing.warmup_iterations} warm-up and {timed} of {minimum} timed "
            f"iterations at {step_s:.2f} s", missing * step_s)


@dataclass
class CostBook:
    """Measured costs, by configuration at batch 1: (seconds to open, take outputs from and
    close a session; seconds per sample of a step); plus the last FP32 reference's wall time
    and the quickest preparation seen."""

    by_config: dict[RunConfig, tuple[float, float]] = field(default_factory=dict)
    reference_s: float | None = None
    quickest_preparation_s: float | None = None

    def record(self, config: RunConfig, overhead_s: float, step_per_sample_s: float) -> None:
        self.by_config[replace(config, batch_size=1)] = (overhead_s, step_per_sample_s)

    def record_preparation(self, seconds: float) -> None:
        if seconds > 0:
            self.quickest_preparation_s = min(seconds, self.quickest_preparation_s or seconds)

    def reference_estimate_s(self, opening_s: float, fp32_prepared: bool) -> float:
        """What the FP32 reference will cost: the last one's time, else about what opening a
        configuration and taking its outputs cost (the same work in FP32), plus a
        preparation if FP32 is not prepared yet."""
        if self.reference_s is not None:
            return self.reference_s
        return opening_s + (0.0 if fp32_prepared else self.quickest_preparation_s or 0.0)

    def estimate(self, config: RunConfig, prepared: bool, needs_reference: bool,
                 fp32_prepared: bool) -> tuple[float, str] | None:
        """The least wall time a measurement of ``config`` needs — its preparation unless
        ``prepared``, the FP32 reference if ``needs_reference``, opening, the first step and
        the protocol's minimum iterations — from what earlier measurements of the same
        configuration (else the same precision, resolution and task) cost per sample, scaled
        to its batch; and what it is made of, in words. None when nothing comparable ran."""
        figures = self.by_config.get(replace(config, batch_size=1))
        if figures is None:
            similar = [cost for key, cost in self.by_config.items()
                       if (key.task, key.precision, key.resolution) == (config.task, config.precision,
                                                                        config.resolution)]
            # The cheapest: an estimate too high would skip what fits without trying it, while
            # one too low costs an opening and a step (the check after the first step decides).
            figures = min(similar, key=lambda cost: cost[1], default=None)
        if figures is None:
            return None
        overhead_s, step_per_sample_s = figures
        step_s = step_per_sample_s * config.batch_size
        needed_s = overhead_s + (1 + minimum_iterations()) * step_s
        parts = [protocol_words(step_s, "about ") + " as measured before", "opening a session"]
        if not prepared and self.quickest_preparation_s:
            needed_s += self.quickest_preparation_s
            parts.append("preparing the model")
        if needs_reference:
            needed_s += self.reference_estimate_s(overhead_s, fp32_prepared)
            parts.append("the FP32 reference")
        return needed_s, ", ".join(parts)
