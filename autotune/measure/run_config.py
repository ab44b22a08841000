"""From a recommendation to what one backend runs: its runner on this device, the run
configuration (what every runtime shares, plus the backend's own options) and the measurer
that runs it.

``verify`` and ``bench`` both start here, so they agree on the resolution a model runs
at, on which options apply on which device, and on the memory model's figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from autotune.backend_api import BackendUnavailable, RunConfig
from autotune.errors import one_line
from autotune.hardware import gpu_database as gpudb
from autotune.hardware.cpu_load import CpuLoad
from autotune.measure.measurer import Measurer
from autotune.measure.plan import MeasurementPlan
from autotune.model import memory as memory_model
from autotune.model import throughput
from autotune.model.stats import ModelStats
from autotune.recommendation.conditions import Expression
from autotune.recommendation.rules import known_facts
from autotune.types import Backend, BackendOption

GIB = 2**30


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


def runner_on(backend: Backend, wanted_device: str) -> tuple[Any, str]:
    """The backend's runner and the device it runs ``wanted_device``'s work on (a backend
    without the GPU here may measure on the CPU).

    :raises BackendUnavailable: why it cannot measure here at all."""
    runner, why_not = load_runner(backend)
    if why_not is not None:  # (None, why) or (runner, None)
        raise BackendUnavailable(why_not)
    return runner, runner.device(wanted_device)


def run_resolution(stats: ModelStats, settings: Mapping[str, Any]) -> int | None:
    """The resolution to run: the recommendation's, except that a model fixed to its
    native size runs at that size and a model without an image input has none."""
    if not stats.native_resolution:
        return None
    if stats.fixed_resolution:
        return stats.native_resolution
    return settings["resolution"]


def option_values(backend: Backend, settings: Mapping[str, Any], device: str,
                  user_options: Mapping[str, Any]) -> dict[str, Any]:
    """Each of the backend's options: the user's value, else the decision it follows,
    else its default; on a device where it has no effect, its default."""
    values = {}
    for option in backend.options:
        if device not in option.devices:
            value = option.default
        elif option.name in user_options:
            value = user_options[option.name]
        elif option.decision is not None and option.decision in settings:
            value = settings[option.decision]
        else:
            value = option.default
        values[option.name] = value
    return values


def run_config(backend: Backend, settings: Mapping[str, Any], stats: ModelStats, task: str, device: str,
               optimizer: str = "adam", user_options: Mapping[str, Any] | None = None) -> RunConfig:
    """The recommendation as ``backend`` runs it on ``device``."""
    config = RunConfig(task=task, precision=settings["precision"], batch_size=settings["batch_size"],
                       resolution=run_resolution(stats, settings), cpu_threads=settings.get("cpu_threads"),
                       optimizer=optimizer)
    return config.with_options(**option_values(backend, settings, device, user_options or {}))


@dataclass(frozen=True)
class Explorable:
    """What ``verify`` may measure besides batch and precision on this device."""

    name: str  # an option name, or "cpu_threads"
    alternatives: tuple[Any, ...]
    #: The precisions it means something for (empty: all).
    precisions: tuple[str, ...] = ()

    def applies(self, precision: str) -> bool:
        return not self.precisions or precision in self.precisions


def explorables(backend: Backend, config: RunConfig, device: str, facts: Mapping[str, Any],
                fixed: frozenset[str], cpu_load: CpuLoad | None = None) -> list[Explorable]:
    """The backend's explorable options (unless the user set them or the decision they
    follow), and on the CPU the thread count (unless the user set ``cpu_threads``)."""
    found = []
    for option in backend.options:
        if option.explore and device in option.devices and option.name not in fixed \
                and (option.decision is None or option.decision not in fixed) \
                and (not option.model_kinds or facts["model.kind"] in option.model_kinds):
            current = config.option(option.name, option.default)
            found.append(Explorable(option.name, option.alternatives(current, explored_also(option, facts)),
                                    option.precisions))
    if device == "cpu" and "cpu_threads" not in fixed and config.cpu_threads:
        # The rules give one thread per physical core; all usable cores may be faster or slower;
        # on a busy machine, one thread may beat the free cores' count.
        every_core = int(facts["host.cpu_cores"])
        others = [every_core, 1] if cpu_load is not None and cpu_load.busy else [every_core]
        alternatives = tuple(dict.fromkeys(n for n in others if n != config.cpu_threads))
        if alternatives:
            found.append(Explorable("cpu_threads", alternatives))
    return found


def for_the_load(config: RunConfig, device: str, cpu_load: CpuLoad | None,
                 fixed: frozenset[str]) -> RunConfig:
    """``config`` with one thread per free core where other processes keep this machine's
    CPUs busy (unless the user set ``cpu_threads``): threads beyond the free cores wait on
    the other processes' and slow every step."""
    if device != "cpu" or cpu_load is None or not cpu_load.busy or "cpu_threads" in fixed \
            or not config.cpu_threads:
        return config
    return replace(config, cpu_threads=min(config.cpu_threads, cpu_load.free_cores))


def explored_also(option: BackendOption, facts: Mapping[str, Any]) -> tuple[Any, ...]:
    """The values of the option's ``explore_also`` whose condition holds for these facts."""
    values: list[Any] = []
    for condition, also in option.explore_also:
        if Expression(condition, known_facts()).evaluate(facts):
            values += [value for value in also if value not in values]
    return tuple(values)


def runner_precisions(runner, facts: Mapping[str, Any], device: str) -> tuple[str, ...]:
    """The precisions ``runner`` can run on ``device`` here: the device's (a GPU's from the
    facts; a CPU's FP32 and BF16) narrowed, or widened, by what the runner says it runs
    (the optional ``Runner.precisions``: ONNX Runtime runs INT8 on a CPU, torch does not)."""
    device_precisions = tuple(facts["gpu.precisions"]) if device == "cuda" else ("fp32", "bf16")
    own = getattr(runner, "precisions", None)
    return device_precisions if own is None else tuple(own(device, device_precisions))


def peak_predictor(stats: ModelStats, optimizer: str) -> Callable[[RunConfig], float]:
    """The memory model's predicted peak for any configuration of this model."""
    def predict(config: RunConfig) -> float:
        return memory_model.predict_peak_bytes(stats, config.batch_size, config.resolution,
                                               config.precision, config.task, optimizer)
    return predict


def build_measurer(name: str, runner, plan: MeasurementPlan, device: str, backend: Backend, *,
                   max_batch_size: int = 1, shown: tuple[str, ...] = ()) -> Measurer:
    """A measurer for ``backend`` on ``device`` under ``plan``, that knows the memory model's
    prediction and the roofline for this GPU (FP32's by the recommendation's tf32 decision)."""
    stats, facts = plan.stats, plan.facts
    spec = gpudb.spec_named(facts["gpu.name"]) if device == "cuda" else None
    precisions = runner_precisions(runner, facts, device)
    tf32 = bool(plan.proposed.settings["tf32"])

    def ceiling(config: RunConfig) -> float | None:
        if spec is None:
            return None
        return memory_model.roofline(stats, spec, config.resolution, config.precision, tf32,
                                     config.task).ceiling_samples_s

    def predicted(config: RunConfig) -> float | None:
        if spec is None:
            return None
        prediction = throughput.predict(stats, spec, precision=config.precision, batch=config.batch_size,
                                        runtime=name, resolution=config.resolution, task=config.task,
                                        tf32=tf32)
        return prediction.samples_s if prediction is not None else None

    budget = plan.budget
    return Measurer(name, runner, plan.model, stats, device, precisions, plan.inputs_path,
                    budget.accuracy_loss, budget.memory_bytes, peak_predictor(stats, plan.optimizer),
                    ceiling, predicted, max_batch_size=max_batch_size, shown=shown, options=backend.options)
