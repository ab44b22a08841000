"""``autotune bench``: the S001-3 table for this machine — latency, throughput and memory
per batch — with the knee marked (the smallest batch within 5 % of the best throughput,
S001-4), and a plot of throughput and latency against batch.

:func:`bench` measures one backend at every point of a sweep (batch x resolution x
precision), each timed for the protocol's window (or ``--budget-s`` per point); a point whose
minimum protocol needs longer may run on while the sweep's backend budget (60 s) lasts,
unless ``--budget-s`` was given. A model build or export is paid once, before the point's
clock starts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from autotune.backend_api import BackendUnavailable, RunConfig
from autotune.errors import Interrupted, NoBackend, UserError
from autotune.hardware.cpu_load import CpuLoad
from autotune.measure import run_config as runs
from autotune.measure import winner
from autotune.measure.measurement import Measurement, Outcome
from autotune.measure.measurer import Measurer
from autotune.measure.plan import MeasurementPlan
from autotune.measure.protocol import protocol
from autotune.measure.verify import takes_model
from autotune.model.stats import ModelStats
from autotune.recommendation.formats import atomic_file
from autotune.recommendation.rules import decision_specs
from autotune.types import Backend

#: The batches a sweep measures when it names none (and the model's batch is not fixed).
DEFAULT_BATCHES = (1, 2, 4, 8, 16, 32)

SWEEP_KEYS = ("batch", "resolution")


def parse_sweep(texts: Iterable[str]) -> dict[str, list[int]]:
    """``["batch=1,2,4", "resolution=160,224"]`` -> ``{"batch": [1, 2, 4], "resolution": [160, 224]}``."""
    sweep: dict[str, list[int]] = {}
    for text in texts:
        key, separator, values = text.partition("=")
        key = key.strip()
        if not separator or key not in SWEEP_KEYS:
            raise UserError(f"--sweep {text!r} must be KEY=V1,V2,... with KEY one of "
                            f"{', '.join(SWEEP_KEYS)}, e.g. batch=1,2,4,8")
        try:
            numbers = [int(v) for v in values.split(",") if v.strip()]
        except ValueError:
            numbers = []
        if not numbers or min(numbers) < 1:
            raise UserError(f"--sweep {text!r} needs positive whole numbers, e.g. batch=1,2,4,8")
        sweep[key] = sorted(set(numbers))
    return sweep


def knees(measurements: list[Measurement]) -> set[int]:
    """ids of the knee measurement of each (precision, resolution) series."""
    series: dict[tuple[str, int | None], list[Measurement]] = {}
    for measurement in measurements:
        if measurement.ok:
            key = (measurement.config.precision, measurement.config.resolution)
            series.setdefault(key, []).append(measurement)
    marked = set()
    for members in series.values():
        best = max(m.throughput for m in members)
        within = [m for m in members if m.throughput >= protocol()["knee_fraction"] * best]
        marked.add(id(min(within, key=lambda m: m.config.batch_size)))
    return marked


def table_rows(measurements: list[Measurement]) -> list[dict]:
    marked = knees(measurements)
    rows = []
    for measurement in measurements:
        row = measurement.to_dict()
        row["knee"] = id(measurement) in marked
        rows.append(row)
    return rows


def plot(measurements: list[Measurement], path: Path, title: str) -> None:
    """Throughput and p50 latency against batch, one line per precision and resolution."""
    import matplotlib  # noqa: PLC0415 - only bench pays for matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (throughput_axis, latency_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    marked = knees(measurements)
    series: dict[str, list[Measurement]] = {}
    for measurement in measurements:
        if measurement.ok:
            resolution = f" {measurement.config.resolution}px" if measurement.config.resolution else ""
            series.setdefault(f"{measurement.config.precision}{resolution}", []).append(measurement)
    for label, members in series.items():
        members.sort(key=lambda m: m.config.batch_size)
        batches = [m.config.batch_size for m in members]
        throughput_axis.plot(batches, [m.throughput for m in members], marker="o", label=label)
        latency_axis.plot(batches, [m.timed.p50_ms for m in members], marker="o", label=label)
        for m in members:
            if id(m) in marked:
                throughput_axis.annotate("knee", (m.config.batch_size, m.throughput),
                                         textcoords="offset points", xytext=(0, 8), ha="center")
    batches = sorted({m.config.batch_size for m in measurements})
    for axis, ylabel in ((throughput_axis, "throughput (samples/s)"), (latency_axis, "p50 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(batches, [str(batch) for batch in batches])
        axis.set_xlabel("batch size")
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    try:
        with atomic_file(path, suffix=".png") as temporary:
            figure.savefig(temporary, dpi=110, format="png")
    finally:
        plt.close(figure)


@dataclass(frozen=True)
class BenchResult:
    """The S001-3 table for this machine: one measurement per point, the knees marked."""

    model: str
    task: str
    backend: str
    device: str
    measurements: tuple[Measurement, ...]
    plot: Path | None
    #: How busy this process's CPUs were before measuring (a CPU measurement only).
    cpu_load: CpuLoad | None = None

    @property
    def knees(self) -> set[int]:
        return knees(list(self.measurements))

    def rows(self) -> list[dict[str, Any]]:
        return table_rows(list(self.measurements))


@dataclass(frozen=True)
class BenchSweep:
    """What one ``autotune bench`` measures: a backend and the points to sweep, under the
    plan (the recommendation for this machine, the model, the budgets)."""

    backend_name: str
    backend: Backend
    plan: MeasurementPlan
    #: Precision names as given (empty: FP32, the recommended one, its alternative and the
    #: quantised one, those the backend runs).
    precisions: Sequence[str] = ()
    #: Empty: :data:`DEFAULT_BATCHES`, or the model's fixed batch.
    batches: Sequence[int] = ()
    #: Empty: the resolution the recommendation runs at.
    resolutions: Sequence[int] = ()
    plot: Path | None = None

    @property
    def recommended(self) -> Mapping[str, Any]:
        """The recommendation's settings: the device, precision, quantisation, tf32 and the rest."""
        return self.plan.proposed.settings


def default_backend(registered: Mapping[str, tuple[str, Backend]], plan: MeasurementPlan) -> str:
    """The backend ``bench`` runs when none is named: ``torch`` where it takes the model, else
    the first backend the recommendation lists that does (ONNX Runtime for an ``.onnx`` file),
    else the first registered one that does; ``torch`` when none does (it then says why)."""
    kind = plan.model.kind
    candidates = ["torch", *plan.proposed.settings["backends"], *sorted(registered)]
    runs_it = [name for name in candidates if name in registered and takes_model(registered[name][1], kind)]
    return runs_it[0] if runs_it else "torch"


def bench(sweep: BenchSweep) -> BenchResult:
    """Measure ``sweep``'s backend at every point, each within the budget per point, and plot
    them where asked.

    :raises NoBackend: the backend cannot run here, or no point ran (with the budget to ask for).
    :raises UserError: a precision that is not one, or batches a fixed-batch model cannot run.
    :raises Interrupted: Ctrl-C, with what was measured before it.
    """
    try:
        runner, device = runs.runner_on(sweep.backend, sweep.recommended["device"])
    except BackendUnavailable as error:
        raise NoBackend(f"backend {sweep.backend_name} cannot run here: {error}") from None
    plan = sweep.plan
    precisions = _precisions(sweep, runner, device)
    base = runs.run_config(sweep.backend, sweep.recommended, plan.stats, plan.task, device, plan.optimizer,
                           plan.options_for(sweep.backend_name))
    fixed = plan.user_fixed | set(plan.options_for(sweep.backend_name))
    base = runs.for_the_load(base, device, plan.cpu_load, fixed)
    batches = _batches(plan.stats, sweep.batches)
    measurer = runs.build_measurer(sweep.backend_name, runner, plan, device, sweep.backend,
                                   max_batch_size=max(batches))
    point_budget_s = protocol()["config_budget_s"] if plan.budget.point_s is None else plan.budget.point_s
    # Without --budget-s, a point whose minimum protocol outlasts its window may still run
    # while the sweep's backend budget lasts: a slow model (a CPU training step of a
    # ConvNeXt, 0.3 s a sample) measures instead of skipping every point.
    sweep_s = plan.budget.backend_s if plan.budget.point_s is None else None
    knobs = runs.explorables(sweep.backend, base, device, plan.facts, fixed, plan.cpu_load)
    base = _threads_for_the_load(measurer, replace(base, batch_size=batches[0]), point_budget_s, knobs)
    points = [replace(base.with_precision(precision), batch_size=batch, resolution=resolution)
              for precision in precisions for resolution in (sweep.resolutions or [base.resolution])
              for batch in batches]
    measurements = _measure_points(measurer, points, point_budget_s, sweep_s, plan.on_measurement)
    result = BenchResult(plan.stats.name, plan.task, sweep.backend_name, measurements[0].device,
                         tuple(measurements), sweep.plot, plan.cpu_load)
    if sweep.plot is not None:
        plot(measurements, sweep.plot, f"{result.model} {result.task} on {result.device} ({result.backend})")
    return result


def _threads_for_the_load(measurer: Measurer, first: RunConfig, budget_s: float,
                          knobs: list[runs.Explorable]) -> RunConfig:
    """On a busy CPU, the thread count the sweep runs: the first point measured quickly at the
    free cores' count and at each alternative (every usable core, one), the faster kept by
    :func:`winner.choose` (the free cores' count unless another beats it by more than the
    spread). Elsewhere, or with threads fixed, ``first`` as it is."""
    threads = next((knob for knob in knobs if knob.name == "cpu_threads"), None)
    if threads is None or measurer.device != "cpu" or len(threads.alternatives) < 2:
        return first  # a quiet machine: the rules' count, as every point runs it
    trials = []
    for count in (first.cpu_threads, *threads.alternatives):
        trial = measurer.measure(replace(first, cpu_threads=count), budget_s / 2, check_accuracy=False,
                                     deadline=time.monotonic() + budget_s)
        if trial.ok:
            trials.append(trial)
    return winner.choose(trials, "throughput", first).config if trials else first


def _precisions(sweep: BenchSweep, runner, device: str) -> list[str]:
    """The precisions asked for; by default FP32, the recommended precision, and the
    alternative and quantised ones the recommendation proposes where this backend runs them
    (verify measures the same ones: BF16 beside FP32 on a CPU that computes it natively)."""
    if sweep.precisions:
        return [decision_specs()["precision"].coerce(p.strip(), "in --precision") for p in sweep.precisions]
    runs_here = runs.runner_precisions(runner, sweep.plan.facts, device)
    proposed = [sweep.recommended["alternative_precision"], sweep.recommended["quantization"]]
    return list(dict.fromkeys(["fp32", sweep.recommended["precision"],
                               *(precision for precision in proposed if precision in runs_here)]))


def _batches(stats: ModelStats, asked: Sequence[int]) -> list[int]:
    """The batches asked for, else the default ones; a model exported with a fixed batch runs
    at that batch only."""
    fixed_batch = stats.inputs.fixed_batch
    if fixed_batch is not None and asked and set(asked) != {fixed_batch}:
        raise UserError(f"{stats.name} is exported with its batch fixed at {fixed_batch}; sweep "
                        f"batch={fixed_batch} only, or re-export it with a dynamic batch axis")
    return list(asked or ([fixed_batch] if fixed_batch is not None else DEFAULT_BATCHES))


def _measure_points(measurer: Measurer, points: list[RunConfig], point_budget_s: float,
                    sweep_s: float | None,
                    on_measurement: Callable[[Measurement], None] | None) -> list[Measurement]:
    """Each point timed for ``point_budget_s`` of wall time, its one-time preparation before
    its clock starts; the measurer is closed after. Without ``sweep_s`` that is also the
    point's limit. With it, a point whose minimum protocol needs longer may run to its share
    of the sweep's time left (what is left over the points left, so a cheap point leaves
    more to the next). Raises :class:`NoBackend` when none ran."""
    measurements = []
    wanted_budget_s = []  # per point over the budget: what it spent plus what it still needed
    sweep_end = None if sweep_s is None else time.monotonic() + sweep_s
    try:
        for index, point in enumerate(points):
            measurer.prepare(point)  # a build or an export is paid once, not charged to a point
            started = time.monotonic()
            allowed_s = point_budget_s if sweep_end is None else \
                max(point_budget_s, (sweep_end - started) / (len(points) - index))
            measurement = measurer.measure(point, point_budget_s, check_accuracy=False,
                                           deadline=started + allowed_s)
            if measurement.outcome in (Outcome.OVER_BUDGET, Outcome.CUT_SHORT):
                wanted_budget_s.append(time.monotonic() - started + (measurement.needed_s or 0.0))
            measurements.append(measurement)
            if on_measurement:
                on_measurement(measurement)
    except KeyboardInterrupt:
        raise Interrupted(measurements) from None
    finally:
        measurer.close()
    if not any(m.ok for m in measurements):
        if wanted_budget_s:
            within = (f"the {point_budget_s:g} s budget per point" if sweep_s is None
                      else f"the sweep's {sweep_s:g} s")
            raise NoBackend(f"no configuration ran within {within} (see above); pass a larger --budget-s "
                            f"per point (about {math.ceil(min(wanted_budget_s))} s for the quickest)",
                            tuple(measurements))
        raise NoBackend("no configuration could run; see the reasons above", tuple(measurements))
    return measurements
