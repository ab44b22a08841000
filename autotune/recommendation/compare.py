"""``autotune compare``: one model on several GPUs, by the rules only (nothing is measured).

For each GPU of the spec database and each precision it runs: the largest batch that fits
(the memory model, on the memory ``recommend`` counts usable), the batch ``recommend``
would choose there, and for each runtime the calibrated predicted samples/s at that batch
and latency at batch 1 (:mod:`autotune.model.throughput`), or why published figures cannot
calibrate one. Then each GPU's best configuration, per watt (the database's TDP) and per
dollar (the user's prices), best first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autotune.errors import UserError
from autotune.hardware import gpu_database as gpudb
from autotune.hardware.gpu_database import GpuSpec
from autotune.model import memory as memory_model
from autotune.model import throughput
from autotune.model.oom_ladder import TRAINABLE
from autotune.model.stats import ModelStats
from autotune.types import PRECISIONS

GIB = 2**30
#: The runtimes compared: the built-in backends. Training runs in PyTorch only.
RUNTIMES = ("torch", "onnxruntime", "tensorrt")
TRAIN_RUNTIMES = ("torch",)


@dataclass(frozen=True)
class CompareRequest:
    """What to compare, as the command's flags give it."""

    task: str = "infer"
    precisions: tuple[str, ...] = ()  # () = every precision each GPU runs
    batch_size: int | None = None  # None = the batch recommend would choose
    resolution: int | None = None  # None = the model's own
    optimizer: str = "adam"
    headroom: float = 0.9
    runtimes: tuple[str, ...] = ()  # () = RUNTIMES (TRAIN_RUNTIMES for training)
    prices: Mapping[str, float] = field(default_factory=dict)  # spec name -> $/hour


@dataclass(frozen=True)
class RuntimeFigure:
    """One runtime's predicted speed in one precision, or why there is none."""

    runtime: str
    samples_s: float | None = None
    samples_s_range: tuple[float, float] | None = None
    latency_ms: float | None = None
    latency_ms_range: tuple[float, float] | None = None
    not_predicted: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime,
                "samples_s": _round(self.samples_s, 1), "samples_s_range": _pair(self.samples_s_range, 1),
                "latency_ms": _round(self.latency_ms, 3), "latency_ms_range": _pair(self.latency_ms_range, 3),
                "not_predicted": self.not_predicted}


@dataclass(frozen=True)
class PrecisionRow:
    """One precision on one GPU: what fits, the batch predicted at, each runtime's figures."""

    precision: str
    largest_batch: int
    batch: int | None  # the throughput batch; None when the precision does not run or fit
    batch_bound: str | None  # knee | memory | user | fixed (what chose the batch)
    latency_batch: int
    runtimes: tuple[RuntimeFigure, ...] = ()
    not_run: str | None = None  # why the precision has no figures here

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "largest_batch": self.largest_batch, "batch": self.batch,
                "batch_bound": self.batch_bound, "latency_batch": self.latency_batch,
                "not_run": self.not_run, "runtimes": [figure.to_dict() for figure in self.runtimes]}


@dataclass(frozen=True)
class GpuComparison:
    """One GPU: every precision row, and its best predicted configuration."""

    spec: GpuSpec
    usable_bytes: float
    rows: tuple[PrecisionRow, ...]
    price_per_hour: float | None = None

    @property
    def best(self) -> tuple[PrecisionRow, RuntimeFigure] | None:
        """The precision and runtime with the most predicted samples/s, or None."""
        predicted = [(row, figure) for row in self.rows for figure in row.runtimes
                     if figure.samples_s is not None]
        return max(predicted, key=lambda pair: pair[1].samples_s or 0.0) if predicted else None

    def per_watt(self) -> tuple[float, tuple[float, float]] | None:
        """Best samples/s per watt of board power (TDP), with its interval."""
        return self._per(self.spec.tdp_w, 1.0)

    def per_dollar(self) -> tuple[float, tuple[float, float]] | None:
        """Samples per dollar at the best configuration: samples/s x 3600 / ($/hour)."""
        return self._per(self.price_per_hour, 3600.0)

    def _per(self, cost: float | None, scale: float) -> tuple[float, tuple[float, float]] | None:
        best = self.best
        if best is None or cost is None or best[1].samples_s is None or best[1].samples_s_range is None:
            return None
        low, high = best[1].samples_s_range
        return best[1].samples_s * scale / cost, (low * scale / cost, high * scale / cost)

    def notes(self, prices_given: bool) -> list[str]:
        notes = []
        if self.best is None:
            notes.append("no configuration predicted (see each precision's reason)")
        if self.spec.tdp_w is None:
            notes.append("no TDP in the database: no samples/s per watt")
        if prices_given and self.price_per_hour is None:
            notes.append("no price in the prices file: no samples per dollar")
        return notes

    def to_dict(self, prices_given: bool) -> dict[str, Any]:
        best, per_watt, per_dollar = self.best, self.per_watt(), self.per_dollar()
        return {
            "gpu": self.spec.name, "architecture": self.spec.architecture, "vram_gb": self.spec.vram_gb,
            "usable_gb": round(self.usable_bytes / GIB, 2), "tdp_w": self.spec.tdp_w,
            "price_per_hour": self.price_per_hour,
            "best": None if best is None else {"precision": best[0].precision, "batch": best[0].batch,
                                               "largest_batch": best[0].largest_batch,
                                               "latency_batch": best[0].latency_batch} | best[1].to_dict(),
            "samples_s_per_watt": _round(per_watt and per_watt[0], 3),
            "samples_s_per_watt_range": _pair(per_watt and per_watt[1], 3),
            "samples_per_dollar": per_dollar and round(per_dollar[0]),
            "samples_per_dollar_range": per_dollar and [round(value) for value in per_dollar[1]],
            "notes": self.notes(prices_given),
            "precisions": [row.to_dict() for row in self.rows],
        }


@dataclass(frozen=True)
class Comparison:
    """Every GPU compared, best first (by samples per dollar when prices are given, else by
    the best predicted samples/s); a GPU without the figure goes last, in the order given."""

    model: str
    source: str
    task: str
    resolution: int | None
    runtimes: tuple[str, ...]
    gpus: tuple[GpuComparison, ...]
    prices_given: bool = False
    notes: tuple[str, ...] = ()

    @property
    def order_by(self) -> str:
        return "samples_per_dollar" if self.prices_given else "samples_s"

    def to_dict(self) -> dict[str, Any]:
        interval = throughput.coefficients()["interval"]
        return {"model": self.model, "source": self.source, "task": self.task,
                "resolution": self.resolution, "runtimes": list(self.runtimes), "order_by": self.order_by,
                "interval": {"by_runtime": {runtime: dict(spread) for runtime, spread in interval.items()},
                             "meaning": "10th-90th percentile of measured / predicted on published "
                                        "figures the fit never saw, per runtime (all: every runtime)"},
                "notes": list(self.notes),
                "gpus": [gpu.to_dict(self.prices_given) for gpu in self.gpus]}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _pair(values: tuple[float, float] | None, digits: int) -> list[float] | None:
    return None if values is None else [round(value, digits) for value in values]


def check_request(stats: ModelStats, request: CompareRequest) -> int | None:
    """Refuse what no GPU could answer; the resolution to compare at."""
    if request.task not in ("infer", "train"):
        raise UserError(f"task must be infer or train, got {request.task!r}")
    unknown = [p for p in request.precisions if p not in PRECISIONS]
    if unknown:
        raise UserError(f"unknown precision {', '.join(unknown)}; choose from {', '.join(PRECISIONS)}")
    if request.task == "train":
        if not stats.trainable:
            raise UserError(f"{stats.name} is an ONNX inference graph; training needs the PyTorch "
                            "model (--model package.module:callable)")
        untrainable = [p for p in request.precisions if p not in TRAINABLE]
        if untrainable:
            raise UserError(f"{', '.join(untrainable)} does not train; training precisions: "
                            f"{', '.join(TRAINABLE)}")
    fixed = stats.inputs.fixed_batch
    if fixed is not None and request.batch_size not in (None, fixed):
        raise UserError(f"{stats.name} is exported with its batch fixed at {fixed}, so batch "
                        f"{request.batch_size} cannot run; drop --batch-size")
    if request.batch_size is not None and request.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {request.batch_size}")
    if not stats.native_resolution:
        if request.resolution is not None:
            raise UserError(f"{stats.name} takes no image input, so --resolution does not apply; drop it")
        return None
    if stats.fixed_resolution and request.resolution not in (None, stats.native_resolution):
        raise UserError(f"{stats.name} takes only {stats.native_resolution} px inputs, not "
                        f"{request.resolution}; drop --resolution")
    return request.resolution or stats.native_resolution


def compare(stats: ModelStats, specs: Sequence[GpuSpec], request: CompareRequest) -> Comparison:
    """``stats`` on every GPU of ``specs``, best first."""
    if not specs:
        raise UserError("compare needs GPUs; add --gpu NAME for each (autotune gpus lists them)")
    resolution = check_request(stats, request)
    runtimes = request.runtimes or (TRAIN_RUNTIMES if request.task == "train" else RUNTIMES)
    named = {spec.name: spec for spec in specs}  # a board named twice is compared once
    gpus = [_compare_gpu(stats, spec, resolution, runtimes, request) for spec in named.values()]
    prices_given = bool(request.prices)

    def merit(gpu: GpuComparison) -> float:
        """What orders the GPUs, higher first; 0 for a GPU without the figure."""
        if prices_given:
            per_dollar = gpu.per_dollar()
            return per_dollar[0] if per_dollar else 0.0
        best = gpu.best
        return best[1].samples_s or 0.0 if best else 0.0

    gpus.sort(key=merit, reverse=True)  # stable: GPUs of equal merit keep the order given
    return Comparison(model=stats.name, source=stats.source, task=request.task, resolution=resolution,
                      runtimes=tuple(runtimes), gpus=tuple(gpus), prices_given=prices_given,
                      notes=_notes(stats))


def _notes(stats: ModelStats) -> tuple[str, ...]:
    """What the output says about the model itself: each guess about its inputs, a fixed batch."""
    notes = [f"{stats.name}: {guess}" for guess in stats.inputs.guesses]
    if stats.inputs.fixed_batch is not None:
        notes.append(f"{stats.name} runs at batch {stats.inputs.fixed_batch} only (its graph fixes it); "
                     "re-export it with a dynamic batch axis to compare larger batches")
    return tuple(notes)


def _compare_gpu(stats: ModelStats, spec: GpuSpec, resolution: int | None, runtimes: Sequence[str],
                 request: CompareRequest) -> GpuComparison:
    usable = _usable_bytes(spec, request.headroom)
    rows = tuple(_precision_row(stats, spec, usable, precision, resolution, runtimes, request)
                 for precision in _precisions(spec, request))
    return GpuComparison(spec, usable, rows, request.prices.get(spec.name))


def _usable_bytes(spec: GpuSpec, headroom: float) -> float:
    """What recommend counts usable on this board simulated: its free memory as the facts
    give it (GiB, two decimals), times the headroom, less the CUDA context."""
    free_bytes = gpudb.simulated_gpu(spec, 0).vram_free_bytes
    return memory_model.usable_bytes(round(free_bytes / GIB, 2) * GIB, headroom)


def _precisions(spec: GpuSpec, request: CompareRequest) -> list[str]:
    """The precisions asked for (each, run here or not), else every one the GPU runs."""
    if request.precisions:
        return list(dict.fromkeys(request.precisions))
    return [p for p in spec.precisions if request.task != "train" or p in TRAINABLE]


def _precision_row(stats: ModelStats, spec: GpuSpec, usable: float, precision: str, resolution: int | None,
                   runtimes: Sequence[str], request: CompareRequest) -> PrecisionRow:
    fixed_batch = stats.inputs.fixed_batch
    latency_batch = fixed_batch or 1
    if precision not in spec.precisions:
        runs = ", ".join(spec.precisions)
        return PrecisionRow(precision, 0, None, None, latency_batch,
                            not_run=f"{spec.name} does not run {precision} (it runs {runs})")
    largest = memory_model.max_batch(stats, usable, resolution, precision, request.task, request.optimizer)
    needed = request.batch_size or fixed_batch or 1
    if largest < needed:
        peak = memory_model.predict_peak_bytes(stats, needed, resolution, precision, request.task,
                                               request.optimizer)
        return PrecisionRow(precision, largest, None, None, latency_batch,
                            not_run=f"batch {needed} does not fit: it needs {peak / GIB:.2f} GB of "
                                    f"{usable / GIB:.2f} GB usable")
    if fixed_batch is not None:  # the graph runs at its own batch or not at all
        largest, batch, bound = fixed_batch, fixed_batch, "fixed"
    else:
        plan = memory_model.plan(stats, memory_model.PlanRequest(
            task=request.task, objective="throughput", precision=precision, resolution=resolution,
            usable_bytes=usable, gpu_name=spec.name, gpu_precisions=spec.precisions, spec=spec,
            optimizer=request.optimizer, fixed=frozenset({"precision", "resolution"}),
            user_batch=request.batch_size))
        batch, bound = plan.batch_size, plan.bound
    figures = tuple(_runtime_figure(stats, spec, precision, batch, latency_batch, runtime, resolution,
                                    request.task) for runtime in runtimes)
    return PrecisionRow(precision, largest, batch, bound, latency_batch, figures)


def _runtime_figure(stats: ModelStats, spec: GpuSpec, precision: str, batch: int, latency_batch: int,
                    runtime: str, resolution: int | None, task: str) -> RuntimeFigure:
    """The calibrated prediction, never an uncalibrated figure: where published figures do
    not cover the runtime, precision or task, the reason instead."""
    at_batch = throughput.assess(stats, spec, precision=precision, batch=batch, runtime=runtime,
                                 resolution=resolution, task=task)
    if isinstance(at_batch, str):  # coverage does not depend on the batch: the latency's is the same
        return RuntimeFigure(runtime, not_predicted=at_batch)
    single = throughput.assess(stats, spec, precision=precision, batch=latency_batch, runtime=runtime,
                               resolution=resolution, task=task)
    assert isinstance(single, throughput.Prediction)
    return RuntimeFigure(runtime, samples_s=at_batch.samples_s, samples_s_range=at_batch.samples_s_range,
                         latency_ms=single.latency_ms, latency_ms_range=single.latency_ms_range)
