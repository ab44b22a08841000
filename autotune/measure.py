"""Measure one configuration with any backend: ladder, timing, memory, accuracy, roofline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune import ladder
from autotune.accuracy import AccuracyReport, compare
from autotune.backend_api import RunConfig, Runner, Session, UnsupportedConfig
from autotune.errors import UserError
from autotune.harness import Timing, protocol, time_session
from autotune.model_stats import ModelStats


@dataclass(frozen=True)
class Measurement:
    """What one configuration did on the metal."""

    backend: str
    device: str
    config: RunConfig
    status: str  # ok | rejected | failed
    reason: str = ""
    timing: Timing | None = None
    peak_memory_bytes: int | None = None
    predicted_peak_bytes: float | None = None
    roofline_samples_s: float | None = None
    accuracy: AccuracyReport | None = None
    steps: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

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
            "config": self.config.label(), "batch_size": self.config.batch_size,
            "precision": self.config.precision,
        }
        if self.config.resolution:
            data["resolution"] = self.config.resolution
        if self.reason:
            data["reason"] = self.reason
        if self.timing is not None:
            data |= self.timing.summary()
        if self.peak_memory_bytes is not None:
            data["peak_memory_gb"] = round(self.peak_memory_bytes / 2**30, 3)
        if self.predicted_peak_bytes is not None:
            data["predicted_peak_gb"] = round(self.predicted_peak_bytes / 2**30, 3)
        if self.roofline_percent is not None:
            data["roofline_percent"] = round(self.roofline_percent, 1)
        if self.accuracy is not None:
            data["accuracy"] = self.accuracy.to_dict()
        if self.steps:
            data["oom_steps"] = list(self.steps)
        return data


class RunFailed(Exception):
    """The model raised something other than out-of-memory in this configuration."""


def _first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"


class NothingFits(Exception):
    """Every rung of the OOM ladder ran out of memory or could not run."""

    def __init__(self, steps: list[str]):
        super().__init__("; ".join(steps))
        self.steps = steps


def load_inputs(path: Path | None, shape: tuple[int, ...], count: int):
    """The accuracy batch: a user ``.npy``/``.pt`` file, or seeded synthetic inputs."""
    import numpy as np  # noqa: PLC0415

    if path is None:
        return np.random.default_rng(0).standard_normal((count, *shape), dtype=np.float32)
    try:
        if path.suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        elif path.suffix == ".pt":
            import torch  # noqa: PLC0415

            data = torch.load(path, map_location="cpu", weights_only=True).float().numpy()
        else:
            raise UserError(f"inputs {path} must be a .npy or .pt file holding one batch")
    except (OSError, ValueError, RuntimeError) as error:
        raise UserError(f"cannot read inputs {path}: {error}; save one batch with numpy.save "
                        "or torch.save") from None
    if tuple(data.shape[1:]) != tuple(shape):
        raise UserError(f"inputs {path} hold shape {tuple(data.shape)}; the model takes "
                        f"(batch, {', '.join(map(str, shape))}); pass matching --input-shape")
    return data.astype("float32")


def sample_shape(stats: ModelStats, resolution: int | None) -> tuple[int, ...]:
    if resolution is None or len(stats.input_shape) != 3:
        return stats.input_shape
    channels, height, width = stats.input_shape
    return (channels, resolution, max(1, round(width * resolution / height)))


@dataclass
class Measurer:
    """Measures configurations of one model on one backend, sharing the FP32 reference."""

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
    _references: dict = field(default_factory=dict)

    def _open(self, config: RunConfig) -> Session:
        predicted = self.predict_peak(config) if self.predict_peak else None
        return self.runner.open(self.model, config, self.device, self.memory_budget_bytes, predicted)

    def inputs(self, resolution: int | None):
        return load_inputs(self.inputs_path, sample_shape(self.stats, resolution),
                           protocol()["accuracy_samples"])

    def reference(self, config: RunConfig):
        """FP32 outputs on the accuracy inputs at this resolution (computed once)."""
        if config.resolution not in self._references:
            fp32 = RunConfig(task="infer", precision="fp32", batch_size=protocol()["accuracy_samples"],
                             resolution=config.resolution)
            session = self._open(fp32)
            try:
                self._references[config.resolution] = session.outputs(self.inputs(config.resolution))
            finally:
                session.close()
        return self._references[config.resolution]

    def open_with_ladder(self, config: RunConfig, with_outputs: bool = False
                         ) -> tuple[Session, RunConfig, list[str], Any]:
        """The first rung of the S000-7 ladder that opens and runs a step.

        With ``with_outputs``, also the outputs on the accuracy inputs, taken before the
        first step: a training step changes the weights the reference was made with.
        """
        steps: list[str] = []
        unsupported: set[str] = set()
        for rung in ladder.rungs(config, self.precisions, self.stats.fixed_resolution):
            if rung.precision in unsupported:
                continue
            session = None
            try:
                session = self._open(rung)
                outputs = session.outputs(self.inputs(rung.resolution)) if with_outputs else None
                session.step()
                clock = session.clock()
                clock.start()
                clock.stop()  # waits for the first step's device work: a late OOM surfaces here
                return session, rung, steps, outputs
            except UnsupportedConfig as error:
                unsupported.add(rung.precision)
                steps.append(f"{rung.precision}: not supported by the {self.backend} backend ({error})")
            except Exception as error:  # the model's own code runs here
                if not self.runner.is_out_of_memory(error):
                    if session is not None:
                        session.close()
                    raise RunFailed(f"{rung.label()}: {_first_line(error)}") from error
                steps.append(ladder.describe_step(rung, "out of memory"))
            if session is not None:
                session.close()
        raise NothingFits(steps)

    def measure(self, config: RunConfig, budget_s: float | None = None, check_accuracy: bool = True,
                on_iteration: Callable[[], None] | None = None) -> Measurement:
        check_accuracy = check_accuracy and config.precision != "fp32"
        try:
            session, ran, steps, outputs = self.open_with_ladder(config, check_accuracy)
        except NothingFits as error:
            return Measurement(self.backend, self.device, config, "failed", "; ".join(error.steps),
                               steps=tuple(error.steps))
        except RunFailed as error:
            return Measurement(self.backend, self.device, config, "failed", str(error))
        try:
            timing = time_session(session, ran.batch_size, budget_s, on_iteration)
            peak = session.peak_memory_bytes()
            device_name = session.device_name
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - the model failed mid-measurement
            return Measurement(self.backend, self.device, ran, "failed", _first_line(error),
                               steps=tuple(steps))
        finally:
            session.close()
        accuracy = None
        if check_accuracy and ran.precision != "fp32":
            try:
                reference = self.reference(ran)
            except Exception as error:  # noqa: BLE001 - the model's own code, in FP32
                return Measurement(self.backend, self.device, ran, "failed",
                                   f"the FP32 reference failed: {_first_line(error)}", timing=timing)
            accuracy = compare(reference, outputs, self.accuracy_budget)
        status = "rejected" if accuracy is not None and not accuracy.passed else "ok"
        reason = accuracy.reason if accuracy is not None else ""
        if steps:
            reason = (reason + "; " if reason else "") + f"fit after {len(steps)} step(s) down: {ran.label()}"
        return Measurement(
            backend=self.backend, device=device_name, config=ran, status=status, reason=reason,
            timing=timing, peak_memory_bytes=peak,
            predicted_peak_bytes=self.predict_peak(ran) if self.predict_peak else None,
            roofline_samples_s=self.roofline(ran) if self.roofline else None,
            accuracy=accuracy, steps=tuple(steps),
        )
