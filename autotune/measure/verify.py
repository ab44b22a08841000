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
minimum exceeds the time left. When the budget cannot cover the recommended configuration
once, a smaller batch is measured instead (the OOM ladder's halvings, down to 1); when it
cannot cover even batch 1, the backend is skipped and says how much it needs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from autotune.backend_api import BackendUnavailable, RunConfig
from autotune.errors import Interrupted, UserError
from autotune.measure import run_config as runs
from autotune.measure import winner
from autotune.measure.batch_search import search_largest_batch
from autotune.measure.measurement import Measurement, Outcome
from autotune.measure.measurer import Measurer
from autotune.measure.plan import MeasurementPlan
from autotune.measure.protocol import protocol
from autotune.measure.verify_report import BackendReport
from autotune.model import memory as memory_model
from autotune.model import oom_ladder as ladder
from autotune.types import Backend


def select_backends(names: str | Sequence[str] | None, registered: dict[str, tuple[str, Backend]],
                    recommended: list[str], model_kind: str | None = None) -> list[tuple[str, Backend]]:
    """``None``: the recommendation's order; ``all``: every registered backend; else a list.
    Of the first two, only those that take a ``model_kind`` model (see ``Backend.model_kinds``);
    one named is kept, and :func:`verify_backend` says why it does not run."""
    def takes(name: str) -> bool:
        return model_kind is None or takes_model(registered[name][1], model_kind)

    if names is None:
        chosen = [n for n in recommended if n in registered and takes(n)]
    elif names == "all" or (not isinstance(names, str) and list(names) == ["all"]):
        chosen = [*[n for n in recommended if n in registered and takes(n)],
                  *sorted(n for n in registered if n not in recommended and takes(n))]
    else:
        chosen = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
        unknown = [n for n in chosen if n not in registered]
        if unknown:
            raise UserError(f"unknown backend {unknown[0]!r}; registered: {', '.join(sorted(registered))} "
                            "(or all)")
    return [(n, registered[n][1]) for n in chosen]


def takes_model(backend: Backend, model_kind: str) -> bool:
    """Whether ``backend``'s runner takes a model of ``model_kind`` (``onnx``, ``callable``, ...)."""
    return not backend.model_kinds or model_kind in backend.model_kinds


def verify_backend(name: str, backend: Backend, plan: MeasurementPlan) -> BackendReport:
    """Measure ``backend`` as :mod:`autotune.measure.verify` says, within the plan's
    ``budget.backend_s`` of wall time from its start."""
    started = time.monotonic()
    if not takes_model(backend, plan.model.kind):
        return BackendReport(name, "skipped", f"it runs {' and '.join(backend.model_kinds)} models, not "
                             f"{plan.model.kind} ones", registration=backend)
    try:
        runner, device = runs.runner_on(backend, plan.proposed.settings["device"])
    except BackendUnavailable as error:
        return BackendReport(name, "skipped", str(error), registration=backend)
    verification = BackendVerification.start(name, backend, runner, device, plan, started)
    try:
        verification.run()
        return verification.report
    except KeyboardInterrupt:
        raise Interrupted(verification.report.measurements) from None
    finally:
        verification.measurer.close()


@dataclass
class BackendVerification:
    """One backend's verification under way: its measurer, the report it fills, and the
    clock. No measurement runs past ``deadline``; exploration plans to end by
    ``planned_end``, a share of the budget, as its stopping rules go by estimates."""

    plan: MeasurementPlan
    report: BackendReport
    measurer: Measurer
    #: The configuration exploration starts from: the rules', then the one that measured.
    config: RunConfig
    knobs: list[runs.Explorable]
    #: The precisions measurement decides between besides the rules' own (see :meth:`start`).
    alternatives: list[str]
    #: The memory model's largest batch for the rules' configuration.
    memory_batch: int
    #: When the backend's verification started (:func:`time.monotonic`), and when its budget
    #: and the share exploration plans with end.
    started: float
    deadline: float
    planned_end: float
    #: The batch search's largest batch (GPU only), once searched.
    largest: int | None = None
    #: What one more measurement costs once the model is prepared, once the first one ran.
    cost_s: float = 0.0

    @classmethod
    def start(cls, name: str, backend: Backend, runner: Any, device: str, plan: MeasurementPlan,
              started: float) -> BackendVerification:
        """The rules' configuration as ``backend`` runs it on ``device``, what may be explored
        besides, and the measurer for it; the clock runs from ``started``."""
        settings = plan.proposed.settings
        report = BackendReport(name, "measured", registration=backend, device=device)
        if settings["device"] == "cuda" and device != "cuda":
            report.reason = f"{backend.framework} cannot use the GPU here; measured on the CPU"
        user_options = plan.options_for(name)
        config = runs.run_config(backend, settings, plan.stats, plan.task, device, plan.optimizer,
                                 user_options)
        fixed = plan.user_fixed | set(user_options)
        config = runs.for_the_load(config, device, plan.cpu_load, fixed)
        knobs = runs.explorables(backend, config, device, plan.facts, fixed, plan.cpu_load)
        report.explored = tuple(knob.name for knob in knobs)
        memory_batch = plan.largest_batch(config)
        measurer = runs.build_measurer(name, runner, plan, device, backend, shown=report.explored,
                                       max_batch_size=max(memory_batch, config.batch_size))
        report.precisions = measurer.precisions
        # The precisions measurement decides between: the rules' own, the alternative they
        # propose, and the quantised one (ONNX Runtime's INT8 on a CPU) — those this runner runs.
        proposed = dict.fromkeys([settings["alternative_precision"], settings["quantization"]])
        alternatives = [precision for precision in proposed
                        if precision not in ("none", config.precision) and precision in measurer.precisions]
        budget_s = plan.budget.backend_s
        return cls(plan, report, measurer, config, knobs, alternatives, memory_batch, started,
                   deadline=started + budget_s,
                   planned_end=started + budget_s * protocol()["budget_plan_share"])

    def run(self) -> None:
        """Search the batch, measure the rules' configuration, explore, and pick the best."""
        if self.measurer.device == "cuda" and "batch_size" not in self.plan.user_fixed:
            self._search_batch()
        current = self._measure_rules_config()
        if current is not None:
            self._explore(current)
            self._pick_best()

    def remaining(self) -> float:
        """Seconds left of the time exploration plans with."""
        return self.planned_end - time.monotonic()

    def measure(self, candidate: RunConfig, until: float | None = None) -> Measurement:
        """Measure ``candidate`` by ``until`` (else by the planned end), and report it."""
        per_config_s = min(protocol()["config_budget_s"], max(0.3, self.remaining() / 8))
        measurement = self.measurer.measure(candidate, per_config_s, on_iteration=self.plan.on_iteration,
                                            deadline=until or self.planned_end)
        self.report.measurements.append(measurement)
        if self.plan.on_measurement:
            self.plan.on_measurement(measurement)
        return measurement

    def affordable(self, left: Callable[[], float]) -> Callable[[RunConfig], bool]:
        """Whether the time ``left`` covers a candidate's minimum, by the measurer's estimate
        (else by what the first measurement cost); the measurement checks again after its
        first step."""
        def fits(candidate: RunConfig) -> bool:
            needed = self.measurer.estimate_s(candidate)
            return left() > (self.cost_s if needed is None else needed)
        return fits

    def passed(self) -> list[Measurement]:
        """The measurements so far that ran and passed the accuracy check."""
        return [m for m in self.report.measurements if m.ok]

    def _search_batch(self) -> None:
        """Confirm the memory model's largest batch on the real device (GPU only), and start
        no higher than it."""
        config, stats, optimizer = self.config, self.plan.stats, self.plan.optimizer
        predict_peak = runs.peak_predictor(stats, optimizer)
        self.report.search = search_largest_batch(
            lambda batch: self.measurer.fits(replace(config, batch_size=batch)), max(1, self.memory_batch),
            memory_model.static_bytes(stats, config.precision, config.task, optimizer),
            self.plan.usable_bytes,
            lambda batch: predict_peak(replace(config, batch_size=batch)))
        self.largest = self.report.search.batch_size
        self.config = replace(config, batch_size=min(config.batch_size, self.largest))

    def _measure_rules_config(self) -> Measurement | None:
        """Measure the rules' configuration (or, where its precision does not run, the first
        alternative), by the hard deadline. None when that ends the report: the backend is
        unavailable, over the budget, or failed."""
        report, first, preparing = self.report, time.monotonic(), self.measurer.preparing_s
        current = self.measure(self.config, self.deadline)
        if current.outcome is Outcome.UNSUPPORTED and not current.unavailable and self.alternatives:
            self.config = self.config.with_precision(self.alternatives.pop(0))
            current = self.measure(self.config, self.deadline)
        if current.unavailable:
            report.status, report.reason = "skipped", current.reason
            return None
        over = (Outcome.OVER_BUDGET, Outcome.CUT_SHORT)
        if current.outcome in over and "batch_size" not in self.plan.user_fixed:
            current = self._smaller_batch_within_budget(current)
        if current.outcome in over:
            # What was spent before it (the runner, the build, opening) plus what it still
            # needed, with the margin verify plans with.
            spent_s = time.monotonic() - self.started
            report.budget_needed_s = math.ceil((spent_s + (current.needed_s or 0.0))
                                               / protocol()["budget_plan_share"])
            report.status = "skipped"
            budget_s = self.plan.budget.backend_s
            report.reason = (f"{current.label} {current.reason} of the {budget_s:g} s budget; "
                             f"pass a larger --budget-s (about {report.budget_needed_s} s)")
            return None
        if not current.ok and current.outcome is not Outcome.REJECTED:
            report.status, report.reason = "failed", current.reason
            return None
        # What one more measurement costs once the model is prepared (an export or an engine
        # build is paid once per preparation, not per batch).
        self.cost_s = time.monotonic() - first - (self.measurer.preparing_s - preparing)
        if current.config.batch_size < self.config.batch_size and not report.reason:
            report.reason = (f"the rules' batch {self.config.batch_size} does not fit the "
                             f"{self.plan.budget.backend_s:g} s budget here; measured from batch "
                             f"{current.config.batch_size}")
        self.config = current.config
        return current

    def _smaller_batch_within_budget(self, over: Measurement) -> Measurement:
        """The first batch down the ladder's halvings from ``over``'s whose minimum protocol
        fits the time left (batch 1 is always tried); the last over-budget measurement when
        none does. A batch the last figure says cannot fit is passed over without opening."""
        for batch in ladder.halvings(over.config.batch_size)[1:]:
            # Seconds per sample the last over-budget measurement needed: an upper bound, as
            # what a step costs beside its samples (and the FP32 reference) does not shrink.
            per_sample_s = (over.needed_s or 0.0) / over.config.batch_size
            if batch > 1 and per_sample_s * batch > self.deadline - time.monotonic():
                continue
            candidate = self.measure(replace(over.config, batch_size=batch), self.deadline)
            if candidate.outcome not in (Outcome.OVER_BUDGET, Outcome.CUT_SHORT):
                return candidate
            over = candidate
        return over

    def _explore(self, current: Measurement) -> None:
        """Batch, then the alternative precisions, then the options, each within the time left;
        the batch again where an option changed the best configuration."""
        config, plan = self.config, self.plan
        # Batch and precision leave time for one measurement per knob value.
        reserved = self.cost_s * sum(len(knob.alternatives) for knob in self.knobs)
        before_knobs = self.affordable(lambda: self.remaining() - reserved)
        explore = "batch_size" not in plan.user_fixed
        if explore:
            self._explore_batch(config, current, before_knobs)
        for alternative in self.alternatives if "precision" not in plan.user_fixed else ():
            if alternative == config.precision:
                continue
            # Measurement decides between the rules' precision and the alternatives: each
            # starts at the best batch so far and explores its own batch range.
            passed = self.passed()
            batch = _choose(passed, plan).config.batch_size if passed else config.batch_size
            candidate = replace(config.with_precision(alternative), batch_size=batch)
            if before_knobs(candidate):
                other = self.measure(candidate)
                if other.ok and explore:
                    self._explore_batch(other.config, other, before_knobs)
        before = _choose(self.passed() or [current], plan)
        self._explore_knobs(self.affordable(self.remaining))
        passed = self.passed()
        after = _choose(passed, plan) if passed else before
        if explore and after is not before:
            # A knob changed the best configuration (channels_last, say): its batch range
            # may differ too, and the time left is spent finding out.
            self._explore_batch(after.config, after, self.affordable(self.remaining))

    def _pick_best(self) -> None:
        """The best configuration that passed, or failed when none did."""
        passed = self.passed()
        if not passed:
            self.report.status = "failed"
            rejected = [m for m in self.report.measurements if m.outcome is Outcome.REJECTED]
            self.report.reason = "no configuration passed the accuracy check: " + rejected[-1].reason
            return
        self.report.best = _choose(passed, self.plan)

    def _explore_batch(self, config: RunConfig, current: Measurement,
                       affordable: Callable[[RunConfig], bool]) -> None:
        """Up while a doubling gains more than the knee's 5 % (S001-4); if the first step up did
        not pay, down while it rises (the rules' batch may be past this device's peak). Bounded
        by memory and by ``affordable``, which says whether the time left covers a candidate."""
        plan = self.plan
        if plan.proposed.inputs["objective"] == "latency":
            batch = config.batch_size
            while current.ok and current.timed.p50_ms > plan.latency_budget_ms and batch > 1 \
                    and affordable(replace(config, batch_size=batch // 2)):
                batch //= 2
                current = self.measure(replace(config, batch_size=batch))
            return
        best, batch = current, config.batch_size
        limit = self.largest or self.plan.largest_batch(config) or 2 * batch
        knee = protocol()["knee_fraction"]
        while batch * 2 <= limit and affordable(replace(config, batch_size=batch * 2)):
            candidate = self.measure(replace(config, batch_size=batch * 2))
            if not candidate.ok or not winner.clearly_faster(candidate, best):
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
            candidate = self.measure(replace(config, batch_size=batch // 2))
            if not candidate.ok or not winner.clearly_faster(candidate, best):
                break
            best, batch = candidate, batch // 2

    def _explore_knobs(self, affordable: Callable[[RunConfig], bool]) -> None:
        """Each explorable option (and the CPU's thread count) on top of the best so far: the
        rules' value is a proposal, and the faster value measured here wins."""
        for knob in self.knobs:
            for value in knob.alternatives:
                passed = self.passed()
                if not passed:
                    return
                best = _choose(passed, self.plan).config
                if not knob.applies(best.precision):
                    break  # an INT8 method, say, when FP32 is the best so far
                candidate = (replace(best, cpu_threads=value) if knob.name == "cpu_threads"
                             else best.with_options(**{knob.name: value}))
                if affordable(candidate):
                    self.measure(candidate)



def _choose(measurements: list[Measurement], plan: MeasurementPlan) -> Measurement:
    """Latency: the largest batch within the budget (else the fastest). Throughput: the
    highest measured throughput (the batch climb stops past the S001-4 knee). Faster wins
    only by more than the measurements' spread, else the simpler stays (:mod:`winner`);
    simpler is measured from the rules' configuration, the first measured."""
    objective = plan.proposed.inputs["objective"]
    if objective == "latency":
        within = [m for m in measurements if m.timed.p50_ms <= plan.latency_budget_ms]
        if within:
            return max(within, key=lambda m: m.config.batch_size)
    return winner.choose(measurements, objective, measurements[0].config)
