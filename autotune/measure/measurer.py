"""Measure one configuration with any backend: ladder, memory budget, timing, accuracy.

A :class:`Measurer` prepares the model once per :class:`~autotune.backend_api.Preparation`
and opens a session per batch size from it, so the OOM ladder, the batch search and
exploration never rebuild what a compiled runtime built once.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.backend_api import (
    BackendUnavailable,
    BudgetCheck,
    MemoryFigure,
    ModelFile,
    OutOfMemory,
    RunConfig,
    Runner,
    Session,
    UnsupportedConfig,
)
from autotune.errors import UserError
from autotune.measure.accuracy import AccuracyReport, compare
from autotune.measure.accuracy_batch import load_inputs
from autotune.measure.batch_search import Trial
from autotune.measure.costs import CostBook, protocol_words
from autotune.measure.protocol import Timing, minimum_iterations, protocol, time_session
from autotune.model import oom_ladder as ladder
from autotune.model.stats import ModelStats

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
    accuracy: AccuracyReport | None = None
    steps: tuple[str, ...] = field(default_factory=tuple)
    #: Option names (and ``cpu_threads``) worth showing in the label: the explored ones.
    shown: tuple[str, ...] = ()
    #: OVER_BUDGET: the seconds this configuration still needed when it was skipped.
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
        if self.outcome is Outcome.OVER_BUDGET:
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


class RunFailed(Exception):
    """The model raised something other than out-of-memory in this configuration."""


def first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"


class NothingFits(Exception):
    """Every rung of the OOM ladder ran out of memory or could not run."""

    def __init__(self, steps: list[str], outcome: Outcome):
        super().__init__("; ".join(steps))
        self.steps = steps
        self.outcome = outcome


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
    accuracy_budget: float = 0.03
    memory_budget_bytes: float | None = None
    predict_peak: Callable[[RunConfig], float] | None = None
    roofline: Callable[[RunConfig], float | None] | None = None
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

    def _open(self, config: RunConfig) -> Session:
        self._check_budget(config, None)
        return self.runner.open(self._prepare(config), config, self.memory_budget_bytes)

    def _is_out_of_memory(self, error: BaseException) -> bool:
        return isinstance(error, OutOfMemory) or self.runner.is_out_of_memory(error)

    def inputs(self, resolution: int | None):
        return load_inputs(self.inputs_path, self.stats.inputs.at(resolution), protocol()["accuracy_samples"])

    def reference(self, config: RunConfig):
        """FP32 outputs on the accuracy inputs at this resolution (computed once), with
        every backend option at its default: the plain FP32 model."""
        if config.resolution not in self._references:
            fp32 = self._reference_config(config)
            session = self.runner.open(self._prepare(fp32), fp32, None)
            try:
                self._references[config.resolution] = session.outputs(self.inputs(config.resolution))
            finally:
                session.close()
        return self._references[config.resolution]

    def _first_step(self, session: Session, config: RunConfig) -> int | None:
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
            session = self._open(config)
            return Trial(True, self._first_step(session, config))
        except Exception:  # noqa: BLE001 - out of memory, unsupported or failing: it did not fit
            return Trial(False)
        finally:
            if session is not None:
                session.close()

    def open_with_ladder(self, config: RunConfig, with_outputs: bool = False
                         ) -> tuple[Session, RunConfig, list[str], Any, float]:
        """The first rung of the S000-7 ladder that opens and runs a step, and that step's
        wall time (a cold step: compilation and caches land there).

        With ``with_outputs``, also the outputs on the accuracy inputs, taken before the
        first step: a training step changes the weights the reference was made with.
        """
        steps: list[str] = []
        unsupported: set[str] = set()
        ran_out = False
        for rung in ladder.rungs(config, self.precisions, self.stats.fixed_resolution,
                                 self.stats.native_resolution):
            if rung.precision in unsupported:
                continue
            session = None
            try:
                session = self._open(rung)
                outputs = session.outputs(self.inputs(rung.resolution)) if with_outputs else None
                stepped = time.monotonic()
                self._first_step(session, rung)
                return session, rung, steps, outputs, time.monotonic() - stepped
            except (UserError, BackendUnavailable):
                # Bad input (a corrupt file, a calibration batch of the wrong shape) or a
                # provider that cannot load: no rung further down would fare better.
                if session is not None:
                    session.close()
                raise
            except UnsupportedConfig as error:
                unsupported.add(rung.precision)
                steps.append(f"{rung.precision}: not supported by the {self.backend} backend ({error})")
                if not ran_out:
                    # The precision asked for does not run here. A lower one is the ladder's
                    # remedy for memory, not a stand-in for it (verify tries its alternatives).
                    if session is not None:
                        session.close()
                    raise NothingFits(steps, Outcome.UNSUPPORTED) from None
            except Exception as error:  # the model's own code runs here
                if not self._is_out_of_memory(error):
                    if session is not None:
                        session.close()
                    raise RunFailed(f"{rung.label()}: {first_line(error)}") from error
                ran_out = True
                steps.append(ladder.describe_step(rung, "out of memory"))
            if session is not None:
                session.close()
        raise NothingFits(steps, Outcome.OUT_OF_MEMORY if ran_out else Outcome.UNSUPPORTED)

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
        return check_accuracy and config.precision != "fp32" and config.resolution not in self._references

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
    def _reference_config(config: RunConfig) -> RunConfig:
        """The plain FP32 configuration the accuracy reference runs at ``config``'s resolution."""
        return RunConfig(task="infer", precision="fp32", batch_size=protocol()["accuracy_samples"],
                         resolution=config.resolution)

    def _timed_reference(self, config: RunConfig):
        if config.resolution in self._references:
            return self._references[config.resolution]
        started = time.monotonic()
        reference = self.reference(config)
        self._costs.reference_s = time.monotonic() - started
        return reference

    def _over_budget(self, config: RunConfig, needed_s: float, what: str, left_s: float,
                     steps: list[str] | tuple[str, ...] = ()) -> Measurement:
        return Measurement(self.backend, self.device, config, Outcome.OVER_BUDGET,
                           f"needs about {needed_s:.1f} s ({what}); {max(left_s, 0.0):.1f} s left",
                           steps=tuple(steps), shown=self._shown(config), needed_s=needed_s)

    def _probe(self, session: Session, config: RunConfig, step_s: float, after_s: float,
               deadline: float) -> tuple[float, float]:
        """(the latest step's wall time, the seconds left): more steps while the latest says
        the protocol's minimum does not fit, one more step still does, and steps still get
        faster. First steps are cold (allocation, caches, compilation, autotuning) and can
        be many times the steady figure; a step no faster than the one before ends it."""
        left_s = deadline - time.monotonic()
        previous_s = float("inf")
        for _ in range(protocol()["warmup_min_iterations"]):
            if minimum_iterations() * step_s + after_s <= left_s or step_s >= left_s \
                    or step_s > 0.9 * previous_s:
                break
            stepped = time.monotonic()
            self._first_step(session, config)
            previous_s, step_s = step_s, time.monotonic() - stepped
            left_s = deadline - time.monotonic()
        return step_s, left_s

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
        def result(ran: RunConfig, outcome: Outcome, reason: str = "", **fields: Any) -> Measurement:
            return Measurement(self.backend, fields.pop("device", self.device), ran, outcome, reason,
                               shown=self._shown(ran), **fields)

        check_accuracy = check_accuracy and config.precision != "fp32"
        estimate = self._estimate(config, check_accuracy) if deadline is not None else None
        if estimate is not None and deadline is not None and time.monotonic() + estimate[0] > deadline:
            return self._over_budget(config, *estimate, deadline - time.monotonic())
        opening, preparing_before = time.monotonic(), self.preparing_s
        try:
            session, ran, steps, outputs, step_s = self.open_with_ladder(config, check_accuracy)
        except NothingFits as error:
            return result(config, error.outcome, "; ".join(error.steps), steps=tuple(error.steps))
        except BackendUnavailable as error:
            return result(config, Outcome.UNSUPPORTED, str(error), unavailable=True)
        except RunFailed as error:
            return result(config, Outcome.FAILED, str(error))
        preparation_s = self.preparing_s - preparing_before
        self._costs.record_preparation(preparation_s)
        overhead_s = time.monotonic() - opening - step_s - preparation_s
        try:
            timing_budget_s = protocol()["config_budget_s"] if budget_s is None else budget_s
            if deadline is not None:
                # The FP32 reference comes after the timing, once the session is closed (two
                # sessions at once may not fit where one does).
                after_s = (self._reference_estimate_s(ran, overhead_s)
                           if self._needs_reference(ran, check_accuracy) else 0.0)
                step_s, left_s = self._probe(session, ran, step_s, after_s, deadline)
                needed_s = minimum_iterations() * step_s + after_s
                if needed_s > left_s:
                    what = protocol_words(step_s) + (" and the FP32 reference" if after_s else "")
                    return self._over_budget(ran, needed_s, what, left_s, steps)
                timing_budget_s = max(0.0, min(timing_budget_s, left_s - after_s))
            timing_started = time.monotonic()
            timing = time_session(session, ran.batch_size, timing_budget_s, on_iteration)
            iterations = timing.warmup_iterations + len(timing.iterations_ms)
            step_per_sample_s = (time.monotonic() - timing_started) / iterations / ran.batch_size
            peak = session.peak_memory_bytes()
            # Checked again on the figure the row shows: the first step's may be lower.
            budget_check = self._check_budget(ran, peak, session)
            device_name = session.device_name
            figure = getattr(session, "peak_memory_figure", None) if peak is not None else None
            host_nodes = tuple(getattr(session, "host_nodes", ()))
            # Optional on a session (see backend_api.Session): a runtime whose "fp32" could be
            # either IEEE FP32 or TF32 says which it ran.
            math = getattr(session, "math", "")
        except KeyboardInterrupt:
            raise
        except OutOfMemory as error:  # the peak over the whole timing passed the budget
            return result(ran, Outcome.OUT_OF_MEMORY, str(error), steps=tuple(steps))
        except Exception as error:  # noqa: BLE001 - the model failed mid-measurement
            return result(ran, Outcome.FAILED, first_line(error), steps=tuple(steps))
        finally:
            closing = time.monotonic()
            session.close()
            overhead_s += time.monotonic() - closing
        self._costs.record(ran, overhead_s, step_per_sample_s)
        accuracy = None
        if check_accuracy and ran.precision != "fp32":
            try:
                reference = self._timed_reference(ran)
            except Exception as error:  # noqa: BLE001 - the model's own code, in FP32
                return result(ran, Outcome.FAILED, f"the FP32 reference failed: {first_line(error)}",
                              timing=timing)
            accuracy = compare(reference, outputs, self.accuracy_budget)
        outcome = Outcome.REJECTED if accuracy is not None and not accuracy.passed else Outcome.OK
        reason = accuracy.reason if accuracy is not None else ""
        if steps:
            reason = (reason + "; " if reason else "") + f"fit after {len(steps)} step(s) down: {ran.label()}"
        held = self._prepared.get(self._preparation(ran))
        return result(
            ran, outcome, reason, device=device_name, timing=timing, peak_memory_bytes=peak, math=math,
            model_file=getattr(held[0], "model_file", None) if held is not None else None,
            predicted_peak_bytes=self.predict_peak(ran) if self.predict_peak else None,
            roofline_samples_s=self.roofline(ran) if self.roofline else None,
            accuracy=accuracy, steps=tuple(steps), peak_memory_figure=figure,
            memory_budget_check=budget_check, host_nodes=host_nodes,
        )

    def close(self) -> None:
        """Release every prepared model."""
        for prepared, _ in self._prepared.values():
            prepared.close()
        self._prepared.clear()
