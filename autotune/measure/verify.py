"""Verification: apply the recommendation with each backend and let measurement decide.

For every backend asked for: search the largest batch on a GPU, measure the recommended
configuration (through the OOM ladder, with the FP32 accuracy check), then explore within
the time budget — batch up while a doubling still gains more than the S001-4 knee's 5 %,
or down when the rules' batch is past the peak; the alternative precision over its own batch
range; then every option the backend marks explorable (and the thread count on a CPU) —
and keep the fastest configuration that passes the accuracy budget. The recommendation
is made again with the measured choices and ``measured: true``.

The budget covers everything a backend does: loading its runner, preparing the model (a
build, an export), the batch search, every measurement and accuracy check. The rules'
configuration may run to the end of the budget; exploration plans to end earlier (a
share of it, ``budget_plan_share``), stopping when the next measurement's estimated
minimum exceeds the time left. When the budget cannot cover even the recommended
configuration once, the backend is skipped and says how much it needs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autotune.backend_api import BackendUnavailable, RunConfig
from autotune.errors import Interrupted, UserError, one_line
from autotune.measure import run_config as runs
from autotune.measure.batch_search import SearchResult, search_largest_batch
from autotune.measure.measurer import Measurement, Measurer, Outcome
from autotune.measure.protocol import protocol
from autotune.model import memory as memory_model
from autotune.model.stats import ModelStats
from autotune.types import Backend, Recommendation

GIB = 2**30


@dataclass
class BackendReport:
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

    @property
    def over_budget(self) -> bool:
        """Skipped because the time budget could not cover the rules' configuration once."""
        return self.status == "skipped" and any(m.outcome is Outcome.OVER_BUDGET for m in self.measurements)

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

    @property
    def measurements(self) -> list[Measurement]:
        return [m for report in self.reports for m in report.measurements]


def select_backends(names: str | Sequence[str] | None, registered: dict[str, tuple[str, Backend]],
                    recommended: list[str]) -> list[tuple[str, Backend]]:
    """``None``: the recommendation's order; ``all``: every registered backend; else a list."""
    if names is None:
        chosen = [n for n in recommended if n in registered]
    elif names == "all" or (not isinstance(names, str) and list(names) == ["all"]):
        chosen = [*[n for n in recommended if n in registered],
                  *sorted(n for n in registered if n not in recommended)]
    else:
        chosen = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
        unknown = [n for n in chosen if n not in registered]
        if unknown:
            raise UserError(f"unknown backend {unknown[0]!r}; registered: {', '.join(sorted(registered))} "
                            "(or all)")
    return [(n, registered[n][1]) for n in chosen]


@dataclass
class VerifyContext:
    """Everything one backend's verification needs besides the backend itself."""

    recommendation: Recommendation
    model: Any  # ModelSource
    stats: ModelStats
    facts: dict[str, Any]
    budget_s: float
    optimizer: str = "adam"
    latency_budget_ms: float = 30.0
    inputs_path: Path | None = None
    accuracy_budget: float = 0.03
    memory_budget_bytes: float | None = None
    user_fixed: frozenset[str] = frozenset()
    #: backend name -> option name -> value, as the user set them
    user_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    on_iteration: Callable[[], None] | None = None
    on_measurement: Callable[[Measurement], None] | None = None


def load_runner(backend: Backend) -> tuple[Any, str | None]:
    """(runner, None), or (None, why it cannot measure here)."""
    if backend.runner is None:
        return None, "this plugin declares the backend but no runner to measure it"
    if backend.installed_version() is None:
        return None, backend.not_installed()
    try:
        return backend.load_runner(), None
    except ImportError as error:
        # Installed, yet the runner does not import: a missing native library or module.
        return None, f"its runner does not import ({one_line(str(error), 200)})"
    except BackendUnavailable as error:
        return None, str(error)


def verify_backend(name: str, backend: Backend, context: VerifyContext) -> BackendReport:
    """Measure ``backend`` as :mod:`autotune.measure.verify` says, within ``context.budget_s``
    of wall time from its start."""
    started = time.monotonic()
    # No measurement runs past the budget; exploration plans to end by a share of it, as
    # its stopping rules go by estimates.
    deadline = started + context.budget_s
    planned_end = started + context.budget_s * protocol()["budget_plan_share"]
    runner, why_not = load_runner(backend)
    if why_not is not None:  # (None, why) or (runner, None)
        return BackendReport(name, "skipped", why_not, registration=backend)
    settings = context.recommendation.settings
    task = context.recommendation.inputs["task"]
    try:
        device = runner.device(settings["device"])
    except BackendUnavailable as error:
        return BackendReport(name, "skipped", str(error), registration=backend)
    report = BackendReport(name, "measured", registration=backend)
    if settings["device"] == "cuda" and device != "cuda":
        report.reason = f"{backend.framework} cannot use the GPU here; measured on the CPU"
    user_options = context.user_options.get(name, {})
    config = runs.run_config(backend, settings, context.stats, task, device, context.optimizer, user_options)
    knobs = runs.explorables(backend, config, device, context.facts, context.user_fixed | set(user_options))
    report.explored = tuple(knob.name for knob in knobs)
    usable = runs.usable_bytes(context.facts)
    planned = memory_model.max_batch(context.stats, usable, config.resolution, config.precision, task,
                                     context.optimizer)
    measurer = runs.build_measurer(name, runner, context.model, context.stats, context.facts, device,
                                   context.optimizer, context.inputs_path, context.accuracy_budget,
                                   context.memory_budget_bytes, shown=report.explored, tf32=settings["tf32"],
                                   max_batch_size=max(planned, config.batch_size), backend=backend)
    # The precisions measurement decides between: the rules' own, the alternative they
    # propose, and the quantised one (ONNX Runtime's INT8 on a CPU) — those this runner runs.
    alternatives = [p for p in dict.fromkeys([settings["alternative_precision"], settings["quantization"]])
                    if p not in ("none", config.precision) and p in measurer.precisions]

    def remaining() -> float:
        return planned_end - time.monotonic()

    def per_config() -> float:
        return min(protocol()["config_budget_s"], max(0.3, remaining() / 8))

    def measure(candidate: RunConfig, until: float | None = None) -> Measurement:
        measurement = measurer.measure(candidate, per_config(), on_iteration=context.on_iteration,
                                       deadline=until or planned_end)
        report.measurements.append(measurement)
        if context.on_measurement:
            context.on_measurement(measurement)
        return measurement

    largest = None
    try:
        if device == "cuda" and "batch_size" not in context.user_fixed:
            report.search = _search(measurer, config, context, usable)
            largest = report.search.batch_size
            config = replace(config, batch_size=min(config.batch_size, largest))
        first, preparing = time.monotonic(), measurer.preparing_s
        current = measure(config, deadline)
        if current.outcome is Outcome.UNSUPPORTED and not current.unavailable and alternatives:
            config = config.with_precision(alternatives.pop(0))
            current = measure(config, deadline)
        if current.unavailable:
            report.status, report.reason = "skipped", current.reason
            return report
        if current.outcome is Outcome.OVER_BUDGET:
            # What was spent before it (the runner, the build, opening) plus what it still
            # needed, with the margin verify plans with.
            spent_s = time.monotonic() - started
            report.budget_needed_s = math.ceil((spent_s + (current.needed_s or 0.0))
                                               / protocol()["budget_plan_share"])
            report.status = "skipped"
            report.reason = (f"{current.label} {current.reason} of the {context.budget_s:g} s budget; pass a "
                             f"larger --budget-s (about {report.budget_needed_s} s)")
            return report
        if not current.ok and current.outcome is not Outcome.REJECTED:
            report.status, report.reason = "failed", current.reason
            return report
        # What one more measurement costs once the model is prepared (an export or an engine
        # build is paid once per preparation, not per batch).
        cost = time.monotonic() - first - (measurer.preparing_s - preparing)
        config = current.config
        # Batch and precision leave time for one measurement per knob value.
        reserved = cost * sum(len(knob.alternatives) for knob in knobs)

        def affordable(left: Callable[[], float]) -> Callable[[RunConfig], bool]:
            """Whether the time ``left`` covers a candidate's minimum, by the measurer's
            estimate (else by what the first measurement cost); the measurement checks
            again after its first step."""
            def fits(candidate: RunConfig) -> bool:
                needed = measurer.estimate_s(candidate)
                return left() > (cost if needed is None else needed)
            return fits

        before_knobs = affordable(lambda: remaining() - reserved)
        explore = "batch_size" not in context.user_fixed
        if explore:
            _explore_batch(context, config, current, measure, before_knobs, largest, usable)
        for alternative in alternatives if "precision" not in context.user_fixed else ():
            if alternative == config.precision:
                continue
            # Measurement decides between the rules' precision and the alternatives: each
            # starts at the best batch so far and explores its own batch range.
            passed = [m for m in report.measurements if m.ok]
            batch = _choose(passed, context).config.batch_size if passed else config.batch_size
            candidate = replace(config.with_precision(alternative), batch_size=batch)
            if before_knobs(candidate):
                other = measure(candidate)
                if other.ok and explore:
                    _explore_batch(context, other.config, other, measure, before_knobs, largest, usable)
        before = _choose([m for m in report.measurements if m.ok] or [current], context)
        _explore_knobs(context, knobs, report, measure, affordable(remaining))
        passed = [m for m in report.measurements if m.ok]
        after = _choose(passed, context) if passed else before
        if explore and after is not before:
            # A knob changed the best configuration (channels_last, say): its batch range
            # may differ too, and the time left is spent finding out.
            _explore_batch(context, after.config, after, measure, affordable(remaining), largest, usable)
            passed = [m for m in report.measurements if m.ok]
        if not passed:
            report.status = "failed"
            rejected = [m for m in report.measurements if m.outcome is Outcome.REJECTED]
            report.reason = "no configuration passed the accuracy check: " + rejected[-1].reason
            return report
        report.best = _choose(passed, context)
        return report
    except KeyboardInterrupt:
        raise Interrupted(report.measurements) from None
    finally:
        measurer.close()


def _choose(measurements: list[Measurement], context: VerifyContext) -> Measurement:
    """Latency: the largest batch within the budget (else the fastest). Throughput: the
    highest measured throughput (the batch climb stops past the S001-4 knee)."""
    if context.recommendation.inputs["objective"] == "latency":
        within = [m for m in measurements if m.timed.p50_ms <= context.latency_budget_ms]
        if within:
            return max(within, key=lambda m: m.config.batch_size)
        return min(measurements, key=lambda m: m.timed.p50_ms)
    return max(measurements, key=lambda m: m.throughput)


def _explore_batch(context: VerifyContext, config: RunConfig, current: Measurement, measure,
                   affordable: Callable[[RunConfig], bool], largest: int | None, usable: float) -> None:
    """Up while a doubling gains more than the knee's 5 % (S001-4); if the first step up did
    not pay, down while it rises (the rules' batch may be past this device's peak). Bounded by memory and by
    ``affordable``, which says whether the time left covers a candidate."""
    if context.recommendation.inputs["objective"] == "latency":
        batch = config.batch_size
        while current.ok and current.timed.p50_ms > context.latency_budget_ms and batch > 1 \
                and affordable(replace(config, batch_size=batch // 2)):
            batch //= 2
            current = measure(replace(config, batch_size=batch))
        return
    best, batch = current, config.batch_size
    limit = largest or memory_model.max_batch(context.stats, usable, config.resolution, config.precision,
                                              config.task, context.optimizer) or 2 * batch
    knee = protocol()["knee_fraction"]
    while batch * 2 <= limit and affordable(replace(config, batch_size=batch * 2)):
        candidate = measure(replace(config, batch_size=batch * 2))
        if not candidate.ok or candidate.throughput <= best.throughput:
            break
        # Past the S001-4 knee (the smaller batch within 5 % of the larger) a doubling buys
        # less than the machine's noise: the time left is worth more to another precision.
        past_knee = best.throughput >= knee * candidate.throughput
        best, batch = candidate, batch * 2
        if past_knee:
            break
    if best is not current:
        return
    batch = config.batch_size
    while batch > 1 and affordable(replace(config, batch_size=batch // 2)):
        candidate = measure(replace(config, batch_size=batch // 2))
        if not candidate.ok or candidate.throughput <= best.throughput:
            break
        best, batch = candidate, batch // 2


def _explore_knobs(context: VerifyContext, knobs: list[runs.Explorable], report: BackendReport, measure,
                   affordable: Callable[[RunConfig], bool]) -> None:
    """Each explorable option (and the CPU's thread count) on top of the best so far: the
    rules' value is a proposal, and the faster value measured here wins."""
    for knob in knobs:
        for value in knob.alternatives:
            passed = [m for m in report.measurements if m.ok]
            if not passed:
                return
            best = _choose(passed, context).config
            if not knob.applies(best.precision):
                break  # an INT8 method, say, when FP32 is the best so far
            candidate = (replace(best, cpu_threads=value) if knob.name == "cpu_threads"
                         else best.with_options(**{knob.name: value}))
            if affordable(candidate):
                measure(candidate)


def _search(measurer: Measurer, config: RunConfig, context: VerifyContext, usable: float) -> SearchResult:
    """Confirm the memory model's largest batch on the real device (GPU only)."""
    stats, optimizer = context.stats, context.optimizer
    predicted = memory_model.max_batch(stats, usable, config.resolution, config.precision, config.task,
                                       optimizer)
    return search_largest_batch(
        lambda batch: measurer.fits(replace(config, batch_size=batch)), max(1, predicted),
        memory_model.static_bytes(stats, config.precision, config.task, optimizer), usable,
        lambda batch: memory_model.predict_peak_bytes(stats, batch, config.resolution, config.precision,
                                                      config.task, optimizer))
