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

from autotune import ladder
from autotune.accuracy import AccuracyReport, compare
from autotune.backend_api import OutOfMemory, RunConfig, Runner, Session, UnsupportedConfig
from autotune.batch_search import Trial
from autotune.harness import Timing, protocol, time_session
from autotune.inputs import load_inputs
from autotune.model_source import shape_at_resolution
from autotune.model_stats import ModelStats

GIB = 2**30


class Outcome(enum.Enum):
    """What a measured configuration did: a field the core decides on, never a phrase."""

    OK = "ok"
    OUT_OF_MEMORY = "out_of_memory"  # every rung of the ladder ran out of memory
    UNSUPPORTED = "unsupported"  # the backend cannot run this precision here
    FAILED = "failed"  # the model raised something else (the error is in ``reason``)
    REJECTED = "rejected"  # ran, but the accuracy check against FP32 failed


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

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def status(self) -> str:
        """ok, rejected or failed: the coarse word tables show (``outcome`` says why)."""
        return self.outcome.value if self.outcome in (Outcome.OK, Outcome.REJECTED) else "failed"

    @property
    def label(self) -> str:
        return self.config.label(self.shown)

    @property
    def throughput(self) -> float:
        return self.timing.throughput_samples_s if self.timing else 0.0

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
        if self.timing is not None:
            data |= self.timing.summary()
        if self.peak_memory_bytes is not None:
            data["peak_memory_gb"] = round(self.peak_memory_bytes / GIB, 3)
        if self.predicted_peak_bytes is not None:
            data["predicted_peak_gb"] = round(self.predicted_peak_bytes / GIB, 3)
        if self.roofline_percent is not None:
            data["roofline_percent"] = round(self.roofline_percent, 1)
        if self.accuracy is not None:
            data["accuracy"] = self.accuracy.to_dict()
        if self.steps:
            data["oom_steps"] = list(self.steps)
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
    _prepared: dict = field(default_factory=dict)
    _references: dict = field(default_factory=dict)

    def _prepare(self, config: RunConfig):
        key = config.preparation(shape_at_resolution(self.stats.input_shape, config.resolution))
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

    def _check_budget(self, config: RunConfig, peak_bytes: float | None) -> None:
        """The memory budget for runners that cannot hold a device to it (a CPU has no
        allocator limit): enforced here, for every runner, on the measured peak where
        there is one, else on the memory model's prediction."""
        if self.memory_budget_bytes is None or self.runner.enforces_memory_budget(self.device):
            return
        what = "measured" if peak_bytes is not None else "predicted"
        if peak_bytes is None and self.predict_peak is not None:
            peak_bytes = self.predict_peak(config)
        if peak_bytes is not None and peak_bytes > self.memory_budget_bytes:
            raise OutOfMemory(f"{what} {peak_bytes / GIB:.2f} GB exceeds the memory budget of "
                              f"{self.memory_budget_bytes / GIB:.2f} GB")

    def _open(self, config: RunConfig) -> Session:
        self._check_budget(config, None)
        return self.runner.open(self._prepare(config), config, self.memory_budget_bytes)

    def _is_out_of_memory(self, error: BaseException) -> bool:
        return isinstance(error, OutOfMemory) or self.runner.is_out_of_memory(error)

    def inputs(self, resolution: int | None):
        return load_inputs(self.inputs_path, shape_at_resolution(self.stats.input_shape, resolution),
                           protocol()["accuracy_samples"])

    def reference(self, config: RunConfig):
        """FP32 outputs on the accuracy inputs at this resolution (computed once), with
        every backend option at its default: the plain FP32 model."""
        if config.resolution not in self._references:
            fp32 = RunConfig(task="infer", precision="fp32", batch_size=protocol()["accuracy_samples"],
                             resolution=config.resolution)
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
        self._check_budget(config, peak)
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
                         ) -> tuple[Session, RunConfig, list[str], Any]:
        """The first rung of the S000-7 ladder that opens and runs a step.

        With ``with_outputs``, also the outputs on the accuracy inputs, taken before the
        first step: a training step changes the weights the reference was made with.
        """
        steps: list[str] = []
        unsupported: set[str] = set()
        ran_out = False
        for rung in ladder.rungs(config, self.precisions, self.stats.fixed_resolution):
            if rung.precision in unsupported:
                continue
            session = None
            try:
                session = self._open(rung)
                outputs = session.outputs(self.inputs(rung.resolution)) if with_outputs else None
                self._first_step(session, rung)
                return session, rung, steps, outputs
            except UnsupportedConfig as error:
                unsupported.add(rung.precision)
                steps.append(f"{rung.precision}: not supported by the {self.backend} backend ({error})")
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

    def measure(self, config: RunConfig, budget_s: float | None = None, check_accuracy: bool = True,
                on_iteration: Callable[[], None] | None = None) -> Measurement:
        def result(ran: RunConfig, outcome: Outcome, reason: str = "", **fields: Any) -> Measurement:
            return Measurement(self.backend, fields.pop("device", self.device), ran, outcome, reason,
                               shown=self.shown, **fields)

        check_accuracy = check_accuracy and config.precision != "fp32"
        try:
            session, ran, steps, outputs = self.open_with_ladder(config, check_accuracy)
        except NothingFits as error:
            return result(config, error.outcome, "; ".join(error.steps), steps=tuple(error.steps))
        except RunFailed as error:
            return result(config, Outcome.FAILED, str(error))
        try:
            timing = time_session(session, ran.batch_size, budget_s, on_iteration)
            peak = session.peak_memory_bytes()
            device_name = session.device_name
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - the model failed mid-measurement
            return result(ran, Outcome.FAILED, first_line(error), steps=tuple(steps))
        finally:
            session.close()
        accuracy = None
        if check_accuracy and ran.precision != "fp32":
            try:
                reference = self.reference(ran)
            except Exception as error:  # noqa: BLE001 - the model's own code, in FP32
                return result(ran, Outcome.FAILED, f"the FP32 reference failed: {first_line(error)}",
                              timing=timing)
            accuracy = compare(reference, outputs, self.accuracy_budget)
        outcome = Outcome.REJECTED if accuracy is not None and not accuracy.passed else Outcome.OK
        reason = accuracy.reason if accuracy is not None else ""
        if steps:
            reason = (reason + "; " if reason else "") + f"fit after {len(steps)} step(s) down: {ran.label()}"
        return result(
            ran, outcome, reason, device=device_name, timing=timing, peak_memory_bytes=peak,
            predicted_peak_bytes=self.predict_peak(ran) if self.predict_peak else None,
            roofline_samples_s=self.roofline(ran) if self.roofline else None,
            accuracy=accuracy, steps=tuple(steps),
        )

    def close(self) -> None:
        """Release every prepared model."""
        for prepared, _ in self._prepared.values():
            prepared.close()
        self._prepared.clear()
