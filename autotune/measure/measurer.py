"""Measure one configuration with any backend: preparations, the memory budget, the FP32
reference, the deadline, timing and the accuracy check.

A :class:`Measurer` prepares the model once per :class:`~autotune.backend_api.Preparation`
and opens a session per batch size from it, so the OOM ladder
(:mod:`autotune.measure.step_down`), the batch search and exploration never rebuild what a
compiled runtime built once. What it returns is a
:class:`~autotune.measure.measurement.Measurement`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autotune.backend_api import (
    BackendUnavailable,
    BudgetCheck,
    MemoryFigure,
    OutOfMemory,
    RunConfig,
    Runner,
    Session,
)
from autotune.measure.accuracy import compare, compared, unchecked
from autotune.measure.accuracy_batch import load_inputs
from autotune.measure.batch_search import Trial
from autotune.measure.costs import CostBook, cut_short_words, protocol_words
from autotune.measure.measurement import GIB, Measurement, Outcome
from autotune.measure.protocol import Timing, minimum_iterations, probe, protocol, time_session
from autotune.measure.step_down import NothingFits, Opened, RunFailed, first_line, open_first_fitting
from autotune.model.stats import ModelStats


@dataclass
class _Readings:
    """What a timed session reported, named as :class:`Measurement`'s fields."""

    device: str
    timing: Timing
    peak_memory_bytes: int | None
    memory_budget_check: BudgetCheck | None
    peak_memory_figure: MemoryFigure | None
    host_nodes: tuple[str, ...]
    math: str


@dataclass
class Measurer:
    """Measures configurations of one model on one backend, sharing the prepared models
    and the FP32 reference. Call :meth:`close` when done (prepared models hold memory)."""

    backend: str
    runner: Runner
    model: Any  # ModelSource
    stats: ModelStats
    device: str
    precisions: tuple[str, ...]
    inputs_path: Path | None = None
    #: The accuracy loss allowed against FP32 (None: the protocol's, S002-6).
    accuracy_budget: float | None = None
    memory_budget_bytes: float | None = None
    predict_peak: Callable[[RunConfig], float] | None = None
    roofline: Callable[[RunConfig], float | None] | None = None
    #: The calibrated prediction's samples/s for a configuration (autotune/model/throughput.py).
    predict_speed: Callable[[RunConfig], float | None] | None = None
    #: The largest batch a prepared model should cover (the memory model's figure).
    max_batch_size: int = 1
    shown: tuple[str, ...] = ()
    #: Seconds spent preparing so far (exports, engine builds): paid once per preparation.
    preparing_s: float = 0.0
    #: The backend's options (:class:`autotune.types.BackendOption`): one that means nothing
    #: for a configuration's precision is left out of its preparation and label (see
    #: :meth:`applicable`), and kept in the configuration for the precision it serves.
    options: tuple = ()
    _prepared: dict = field(default_factory=dict)
    _references: dict = field(default_factory=dict)
    #: What earlier measurements cost, for the time budget.
    _costs: CostBook = field(default_factory=CostBook)

    def applicable(self, config: RunConfig) -> RunConfig:
        """``config`` with every option that means nothing for its precision set to None: what
        a runner prepares, so an FP32 run neither prepares separately for an INT8 method nor
        shows it."""
        unused = {option.name: None for option in self.options
                  if not option.applies_to(config.precision) and config.option(option.name) is not None}
        return config.with_options(**unused) if unused else config

    def _preparation(self, config: RunConfig):
        return self.applicable(config).preparation(self.stats.inputs.at(config.resolution), self.inputs_path)

    def _shown(self, config: RunConfig) -> tuple[str, ...]:
        """The explored names worth showing in ``config``'s label: those that apply to its precision."""
        unused = {option.name for option in self.options if not option.applies_to(config.precision)}
        return tuple(name for name in self.shown if name not in unused)

    def _prepare(self, config: RunConfig):
        key = self._preparation(config)
        held = self._prepared.get(key)
        if held is not None and held[1] >= config.batch_size:
            return held[0]
        if held is not None:  # a larger batch than it was built for: prepare again
            held[0].close()
        max_batch = max(config.batch_size, self.max_batch_size)
        started = time.monotonic()
        try:
            prepared = self.runner.prepare(self.model, key, self.device, max_batch)
        finally:
            self.preparing_s += time.monotonic() - started
        self._prepared[key] = (prepared, max_batch)
        return prepared

    def _enforced_by_runtime(self, session: Session | None) -> bool:
        """Whether the runtime holds the device to the budget: the session's own answer
        where it has one (it knows e.g. which provider runs), else the runner's."""
        answer = getattr(session, "enforces_memory_budget", None) if session is not None else None
        return self.runner.enforces_memory_budget(self.device) if answer is None else bool(answer)

    def _check_budget(self, config: RunConfig, peak_bytes: float | None,
                      session: Session | None = None) -> BudgetCheck | None:
        """The memory budget for runtimes that cannot hold a device to it (a CPU has no
        allocator limit): enforced here, for every runner, on the measured peak where
        there is one, else on the memory model's prediction. Returns how it was held
        (None: no budget)."""
        if self.memory_budget_bytes is None:
            return None
        if self._enforced_by_runtime(session):
            return BudgetCheck.RUNTIME_LIMIT
        check = BudgetCheck.MEASURED_PEAK if peak_bytes is not None else BudgetCheck.PREDICTED_PEAK
        if peak_bytes is None and self.predict_peak is not None:
            peak_bytes = self.predict_peak(config)
        what = "measured" if check is BudgetCheck.MEASURED_PEAK else "predicted"
        if peak_bytes is not None and peak_bytes > self.memory_budget_bytes:
            raise OutOfMemory(f"{what} {peak_bytes / GIB:.2f} GB exceeds the memory budget of "
                              f"{self.memory_budget_bytes / GIB:.2f} GB")
        return check

    def open_session(self, config: RunConfig) -> Session:
        """A session for ``config`` (no ladder), its predicted peak checked against the budget first."""
        self._check_budget(config, None)
        return self.runner.open(self._prepare(config), config, self.memory_budget_bytes)

    def is_out_of_memory(self, error: BaseException) -> bool:
        """Whether ``error`` is running out of memory: the budget's, or the runtime's own."""
        return isinstance(error, OutOfMemory) or self.runner.is_out_of_memory(error)

    def inputs(self, resolution: int | None):
        """The accuracy inputs at ``resolution``: the user's file, else synthetic ones."""
        return load_inputs(self.inputs_path, self.stats.inputs.at(resolution), protocol()["accuracy_samples"])

    def reference(self, config: RunConfig, batch_size: int | None = None):
        """FP32 outputs on the accuracy inputs at this resolution (computed once), with every
        backend option at its default: the plain FP32 model; run in batches of ``batch_size``
        where given (see :meth:`_judge`)."""
        fp32 = self._reference_config(config, batch_size)
        if fp32 not in self._references:
            session = self.runner.open(self._prepare(fp32), fp32, None)
            try:
                self._references[fp32] = session.outputs(self.inputs(config.resolution))
            finally:
                session.close()
        return self._references[fp32]

    def first_step(self, session: Session, config: RunConfig) -> int | None:
        """One step, waited for (a late OOM surfaces here), then the budget checked against
        its peak; returns the peak."""
        session.step()
        clock = session.clock()
        clock.start()
        clock.stop()  # waits for the step's device work
        peak = session.peak_memory_bytes()
        self._check_budget(config, peak, session)
        return peak

    def fits(self, config: RunConfig) -> Trial:
        """One batch-search trial: open ``config`` (no ladder), run a step, read the peak."""
        session = None
        try:
            session = self.open_session(config)
            return Trial(True, self.first_step(session, config))
        except Exception:  # noqa: BLE001 - out of memory, unsupported or failing: it did not fit
            return Trial(False)
        finally:
            if session is not None:
                session.close()

    def prepare(self, config: RunConfig) -> None:
        """Prepare ``config``'s model now (a build, an export, an engine), so a caller can
        keep that one-time cost off a measurement's clock. What it raises is left for
        :meth:`measure` to report, through the ladder."""
        try:
            self._prepare(config)
        except Exception:  # noqa: BLE001 - measure prepares again and reports it
            pass

    def _is_prepared(self, config: RunConfig) -> bool:
        held = self._prepared.get(self._preparation(config))
        return held is not None and held[1] >= config.batch_size

    def _needs_reference(self, config: RunConfig, check_accuracy: bool) -> bool:
        fp32 = self._reference_config(config)
        return check_accuracy and config.precision != "fp32" and fp32 not in self._references

    def estimate_s(self, config: RunConfig, check_accuracy: bool = True) -> float | None:
        """The least wall time a measurement of ``config`` needs (see :meth:`_estimate`), or
        None when nothing comparable was measured yet."""
        estimate = self._estimate(config, check_accuracy)
        return estimate[0] if estimate is not None else None

    def _estimate(self, config: RunConfig, check_accuracy: bool) -> tuple[float, str] | None:
        """(seconds, what they are made of) the least a measurement of ``config`` needs."""
        return self._costs.estimate(config, self._is_prepared(config),
                                    self._needs_reference(config, check_accuracy),
                                    self._is_prepared(self._reference_config(config)))

    def _reference_estimate_s(self, config: RunConfig, opening_s: float) -> float:
        return self._costs.reference_estimate_s(opening_s, self._is_prepared(self._reference_config(config)))

    @staticmethod
    def _reference_config(config: RunConfig, batch_size: int | None = None) -> RunConfig:
        """The plain FP32 configuration the accuracy reference runs at ``config``'s resolution."""
        batch = batch_size or int(protocol()["accuracy_samples"])
        return RunConfig(task="infer", precision="fp32", batch_size=batch, resolution=config.resolution)

    def _timed_reference(self, config: RunConfig):
        held = self._references.get(self._reference_config(config))
        if held is not None:
            return held
        started = time.monotonic()
        reference = self.reference(config)
        self._costs.reference_s = time.monotonic() - started
        return reference

    def _record(self, ran: RunConfig, outcome: Outcome, reason: str = "", **fields: Any) -> Measurement:
        """A measurement of ``ran`` on this measurer's backend (and device, unless ``fields`` say)."""
        return Measurement(self.backend, fields.pop("device", self.device), ran, outcome, reason,
                           shown=self._shown(ran), **fields)

    def _over_budget(self, config: RunConfig, needed_s: float, what: str, left_s: float,
                     steps: list[str] | tuple[str, ...] = ()) -> Measurement:
        return self._record(config, Outcome.OVER_BUDGET,
                            f"needs about {needed_s:.1f} s ({what}); {max(left_s, 0.0):.1f} s left",
                            steps=tuple(steps), needed_s=needed_s)

    def measure(self, config: RunConfig, budget_s: float | None = None, check_accuracy: bool = True,
                on_iteration: Callable[[], None] | None = None, deadline: float | None = None) -> Measurement:
        """Measure ``config`` through the OOM ladder: time it for ``budget_s`` (the protocol's
        default when None) and check its accuracy against FP32.

        ``deadline`` (a :func:`time.monotonic` value) is when the whole measurement must be
        done: preparation, the FP32 reference, opening and timing. A configuration whose
        minimum protocol cannot end by then is not run past it: it is an OVER_BUDGET
        measurement that says what it needed — decided before opening from earlier
        measurements' figures, else after its first step.
        """
        check_accuracy = check_accuracy and compared(config.precision, self.stats.inputs)
        skipped = self._skipped_by_estimate(config, check_accuracy, deadline)
        if skipped is not None:
            return skipped
        opening, preparing_before = time.monotonic(), self.preparing_s
        try:
            opened = open_first_fitting(self, config, check_accuracy)
        except NothingFits as error:
            return self._record(config, error.outcome, "; ".join(error.steps), steps=tuple(error.steps))
        except BackendUnavailable as error:
            return self._record(config, Outcome.UNSUPPORTED, str(error), unavailable=True)
        except RunFailed as error:
            return self._record(config, Outcome.FAILED, str(error))
        preparation_s = self.preparing_s - preparing_before
        self._costs.record_preparation(preparation_s)
        overhead_s = time.monotonic() - opening - opened.first_step_s - preparation_s
        readings = self._time(opened, overhead_s, budget_s, check_accuracy, on_iteration, deadline)
        if isinstance(readings, Measurement):
            return readings
        return self._judge(opened, readings, check_accuracy)

    def _skipped_by_estimate(self, config: RunConfig, check_accuracy: bool,
                             deadline: float | None) -> Measurement | None:
        """OVER_BUDGET before opening, where earlier measurements' figures say ``config``'s
        minimum cannot end by ``deadline``; else None."""
        if deadline is None:
            return None
        estimate = self._estimate(config, check_accuracy)
        if estimate is not None and time.monotonic() + estimate[0] > deadline:
            return self._over_budget(config, *estimate, deadline - time.monotonic())
        return None

    def _time(self, opened: Opened, overhead_s: float, budget_s: float | None, check_accuracy: bool,
              on_iteration: Callable[[], None] | None, deadline: float | None) -> _Readings | Measurement:
        """Time the open session for ``budget_s`` (at most what ``deadline`` leaves), read what
        it ran, close it and book what it cost; or the measurement that says why not."""
        ran, session = opened.config, opened.session
        try:
            timing_budget_s = protocol()["config_budget_s"] if budget_s is None else budget_s
            hard_deadline = None
            if deadline is not None:
                window_s = self._timing_window_s(opened, overhead_s, check_accuracy, deadline)
                if isinstance(window_s, Measurement):
                    return window_s
                timing_budget_s = max(0.0, min(timing_budget_s, window_s))
                hard_deadline = time.monotonic() + window_s
            timing_started = time.monotonic()
            timing = time_session(session, ran.batch_size, timing_budget_s, on_iteration, hard_deadline)
            iterations = timing.warmup_iterations + len(timing.iterations_ms)
            step_per_sample_s = (time.monotonic() - timing_started) / max(iterations, 1) / ran.batch_size
            if timing.cut_short:  # outside load slowed the steps past what the probe said
                reason, needed_s = cut_short_words(timing, step_per_sample_s * ran.batch_size)
                self._costs.record(ran, overhead_s, step_per_sample_s)  # as an over-budget one is
                return self._record(ran, Outcome.CUT_SHORT, reason, steps=tuple(opened.steps),
                                    timing=timing if timing.iterations_ms else None, needed_s=needed_s)
            readings = self._read(session, ran, timing)
        except OutOfMemory as error:  # the peak over the whole timing passed the budget
            return self._record(ran, Outcome.OUT_OF_MEMORY, str(error), steps=tuple(opened.steps))
        except Exception as error:  # noqa: BLE001 - the model failed mid-measurement
            return self._record(ran, Outcome.FAILED, first_line(error), steps=tuple(opened.steps))
        finally:
            closing = time.monotonic()
            session.close()
            overhead_s += time.monotonic() - closing
        self._costs.record(ran, overhead_s, step_per_sample_s)
        return readings

    def _timing_window_s(self, opened: Opened, overhead_s: float, check_accuracy: bool,
                         deadline: float) -> float | Measurement:
        """The seconds the timing may take so that it, and the FP32 reference after it, end by
        ``deadline``; OVER_BUDGET where the protocol's minimum cannot (see :func:`probe`)."""
        ran = opened.config
        # The FP32 reference comes after the timing, once the session is closed (two
        # sessions at once may not fit where one does).
        after_s = self._reference_estimate_s(ran, overhead_s) if self._needs_reference(ran, check_accuracy) \
            else 0.0
        step_s, left_s = probe(lambda: self.first_step(opened.session, ran), opened.first_step_s, after_s,
                               deadline)
        needed_s = minimum_iterations() * step_s + after_s
        if needed_s > left_s:
            # Booked, so that a larger batch is skipped on this figure instead of a cold step.
            self._costs.record(ran, overhead_s, step_s / ran.batch_size)
            what = protocol_words(step_s) + (" and the FP32 reference" if after_s else "")
            return self._over_budget(ran, needed_s, what, left_s, opened.steps)
        return left_s - after_s

    def _read(self, session: Session, ran: RunConfig, timing: Timing) -> _Readings:
        """What a timed session reports: its peak, checked against the budget again (the first
        step's may be lower), and what ran where."""
        peak = session.peak_memory_bytes()
        return _Readings(
            device=session.device_name, timing=timing, peak_memory_bytes=peak,
            memory_budget_check=self._check_budget(ran, peak, session),
            peak_memory_figure=getattr(session, "peak_memory_figure", None) if peak is not None else None,
            host_nodes=tuple(getattr(session, "host_nodes", ())),
            # Optional on a session (see backend_api.Session): a runtime whose "fp32" could be
            # either IEEE FP32 or TF32 says which it ran.
            math=getattr(session, "math", ""))

    def _judge(self, opened: Opened, readings: _Readings, check_accuracy: bool) -> Measurement:
        """The timed configuration's measurement: its accuracy against the FP32 reference where
        it is checked (REJECTED past the budget), with what the session reported."""
        ran = opened.config
        accuracy = None
        if check_accuracy and ran.precision != "fp32":
            try:
                reference = self._timed_reference(ran)
                if np.shape(reference)[1:] != np.shape(opened.outputs)[1:]:
                    # The output couples a batch's samples (CLIP's image-text logits are batch x
                    # batch): only a reference run in batches of the same size compares.
                    reference = self.reference(ran, ran.batch_size)
            except Exception as error:  # noqa: BLE001 - the model's own code, in FP32
                return self._record(ran, Outcome.FAILED, f"the FP32 reference failed: {first_line(error)}",
                                    timing=readings.timing)
            allowed = protocol()["accuracy_budget"] if self.accuracy_budget is None else self.accuracy_budget
            try:
                accuracy = compare(reference, opened.outputs, allowed)
            except ValueError as error:  # shapes that no chunking reconciles
                return self._record(ran, Outcome.FAILED, f"the accuracy check cannot compare: {error}",
                                    timing=readings.timing)
        outcome = Outcome.REJECTED if accuracy is not None and not accuracy.passed else Outcome.OK
        reason = accuracy.reason if accuracy is not None else unchecked(ran.precision, self.stats.inputs)
        if opened.steps:
            stepped_down = f"fit after {len(opened.steps)} step(s) down: {ran.label()}"
            reason = (reason + "; " if reason else "") + stepped_down
        held = self._prepared.get(self._preparation(ran))
        return self._record(
            ran, outcome, reason, **vars(readings), accuracy=accuracy, steps=tuple(opened.steps),
            model_file=getattr(held[0], "model_file", None) if held is not None else None,
            predicted_peak_bytes=self.predict_peak(ran) if self.predict_peak else None,
            roofline_samples_s=self.roofline(ran) if self.roofline else None,
            predicted_samples_s=self.predict_speed(ran) if self.predict_speed else None,
        )

    def close(self) -> None:
        """Release every prepared model."""
        for prepared, _ in self._prepared.values():
            prepared.close()
        self._prepared.clear()
