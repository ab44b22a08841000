"""Peak memory as a function of batch, resolution and precision; the batch it allows.

    peak = weights (+ gradients + optimizer states [+ AMP's FP16 weight copies] in training)
         + per-sample activations x batch            (activations scale with resolution²)
         + workspace

In training, what must fit is the caching allocator's reserve over the training loop's peak:
the loop's extras (an EMA copy, a detector's loss, validation at a larger batch) come from
:mod:`autotune.model.training_loop`, and a model whose loop is not known keeps a margin free.

The usable memory is a headroom fraction of the GPU's *free* memory, less the CUDA
context. The batch is the largest whose peak fits, capped at the throughput knee
(S001-4) or the latency budget (S002-4), both scaled from the S001-3 measurements by
the roofline. When nothing fits, resolution steps down the tiers, then precision
(S000-7). Constants live in ``profiles/memory_model.yaml``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from autotune.errors import DoesNotFit, UserError
from autotune.hardware.gpu_database import GpuSpec, resolve
from autotune.model import oom_ladder as ladder
from autotune.model import training_loop as loops
from autotune.model.stats import ModelStats, memory_constants, reference_models
from autotune.types import Decision

GIB = 2**30


def training_state_bytes(stats: ModelStats, optimizer: str, amp: bool) -> dict[str, float]:
    """What training keeps per parameter besides activations: FP32 master weights, one FP32
    gradient, the optimizer's FP32 states, and under AMP autocast's half-precision copy of
    each weight it casts."""
    states = memory_constants()["optimizer_states"][optimizer]
    return {
        "weights": stats.parameters * 4,
        "gradients": stats.parameters * 4,
        "optimizer_states": stats.parameters * 4 * states,
        "amp_weight_copies": stats.parameters * 2 if amp else 0,
    }


def static_bytes(stats: ModelStats, precision: str, task: str, optimizer: str) -> float:
    """Memory that does not grow with the batch: weights, training state, workspace."""
    workspace = memory_constants()["workspace_gb"] * GIB
    if task != "train":
        return stats.weight_bytes(precision) + workspace
    amp = precision in ("fp16", "bf16")
    return sum(training_state_bytes(stats, optimizer, amp).values()) + workspace


def per_sample_bytes(stats: ModelStats, resolution: int | None, precision: str, task: str) -> float:
    dtype = memory_constants()["activation_dtype"][precision]
    at = stats.at(resolution)
    activations = at.train_activation_bytes if task == "train" else at.infer_activation_bytes
    return activations[dtype]


def predict_peak_bytes(stats: ModelStats, batch: int, resolution: int | None, precision: str,
                       task: str, optimizer: str = "adam") -> float:
    """The peak ``torch.cuda.max_memory_allocated`` this configuration should reach."""
    return (static_bytes(stats, precision, task, optimizer)
            + batch * per_sample_bytes(stats, resolution, precision, task))


def usable_bytes(free_vram_bytes: float, headroom: float) -> float:
    return free_vram_bytes * headroom - memory_constants()["cuda_context_gb"] * GIB


def _fit_lines(stats: ModelStats, resolution: int | None, precision: str, task: str,
               optimizer: str) -> list[tuple[float, float]]:
    """What must fit, as lines ``fixed + batch x per_sample`` whose maximum is the figure.

    Inference: the peak of live tensors. Training: the training loop's peak (its EMA copies
    fixed, its loss's tensors with the step) and its validation at a larger batch, each times
    the allocator's reserve over what is allocated."""
    if task != "train":
        return [(static_bytes(stats, precision, task, optimizer),
                 per_sample_bytes(stats, resolution, precision, task))]
    loop = loops.loop_named(stats.training_loop)
    reserve = loops.reserve_factor()
    fixed = static_bytes(stats, precision, task, optimizer)
    step = per_sample_bytes(stats, resolution, precision, task)
    lines = [(fixed, step)]
    if loop is not None:
        fixed += loop.ema_weight_copies * stats.parameters * 4
        pixels = (resolution or 0) ** 2
        lines = [(fixed, step + loop.extra_bytes_per_pixel * pixels)]
        if loop.validation_batch_factor > 1:
            lines.append((fixed, loop.validation_batch_factor
                          * per_sample_bytes(stats, resolution, precision, "infer")))
    return [(reserve * fixed, reserve * per_sample) for fixed, per_sample in lines]


def fit_bytes(stats: ModelStats, batch: int, resolution: int | None, precision: str, task: str,
              optimizer: str = "adam") -> float:
    """What must fit in the usable memory at ``batch``: the inference peak of live tensors
    (:func:`predict_peak_bytes`), or in training ``torch.cuda.memory_reserved`` at the training
    loop's peak (see :mod:`autotune.model.training_loop`)."""
    return max(fixed + batch * per_sample
               for fixed, per_sample in _fit_lines(stats, resolution, precision, task, optimizer))


def room_bytes(stats: ModelStats, usable: float, task: str) -> float:
    """The usable memory a plan may fill: in training a model whose loop is not known keeps
    ``unknown_loop_margin`` of it free."""
    if task == "train" and loops.loop_named(stats.training_loop) is None:
        return usable * (1 - loops.unknown_loop_margin())
    return usable


def max_batch(stats: ModelStats, usable: float, resolution: int | None, precision: str,
              task: str, optimizer: str) -> int:
    room = room_bytes(stats, usable, task)
    batches = [math.floor((room - fixed) / per_sample) if per_sample > 0 else 0
               for fixed, per_sample in _fit_lines(stats, resolution, precision, task, optimizer)]
    return max(0, min(batches))


# ---- roofline and speed estimates --------------------------------------------------------

def peak_tflops(spec: GpuSpec, precision: str, tf32: bool = False) -> float:
    """The precision's dense peak: Tensor Cores where it runs on them, FP32 cores else; a
    weight-only precision at the rate it computes in (``weight_only_computes_in``)."""
    precision = memory_constants()["weight_only_computes_in"].get(precision, precision)
    if precision in ("fp32", "tf32"):
        use_tf32 = (precision == "tf32" or tf32) and "tf32" in spec.tensor_tflops
        return spec.tensor_tflops["tf32"] if use_tf32 else spec.fp32_tflops
    return spec.tensor_tflops.get(precision, spec.fp32_tflops)


@dataclass(frozen=True)
class Roofline:
    """The physical upper bound on samples/s for a model on a GPU in a precision, and what
    the bytes its operators move would allow if none of them were fused."""

    compute_samples_s: float  # peak FLOP/s / FLOPs per sample
    memory_samples_s: float  # bandwidth / bytes moved per sample, every operator on its own
    precision: str

    @property
    def ceiling_samples_s(self) -> float:
        """The bound: peak FLOPs. The unfused bytes are no bound: a fused engine whose
        activations stay in L2 moves less (TensorRT INT8 ResNet-50 on an L4, in MLPerf
        Inference v3.0, ran at 1.98x what its unfused bytes allow)."""
        return self.compute_samples_s

    @property
    def unfused_samples_s(self) -> float:
        """The lower of the two limits: the estimate for a runtime that fuses nothing."""
        return min(self.compute_samples_s, self.memory_samples_s)

    @property
    def bound(self) -> str:
        """Which limit binds an unfused run."""
        return "compute" if self.compute_samples_s <= self.memory_samples_s else "memory"


def traffic_bytes(measured: Mapping[str, int], precision: str) -> float:
    """Bytes a sample moves in ``precision``: the inspector's figure for FP32 and FP16 (both
    measured or scaled by element size), and for other element sizes FP16's scaled to them
    (``traffic_element_bytes``: one byte for INT8 and FP8)."""
    element_bytes = memory_constants()["traffic_element_bytes"][precision]
    exact = {4: "fp32", 2: "fp16"}.get(element_bytes)
    if exact is not None and exact in measured:
        return measured[exact]
    return measured.get("fp16", measured.get("fp32", 0) / 2) * element_bytes / 2


def roofline(stats: ModelStats, spec: GpuSpec, resolution: int | None, precision: str,
             tf32: bool = False, task: str = "infer") -> Roofline:
    at = stats.at(resolution)
    factor = memory_constants()["train_cost_factor"] if task == "train" else 1
    flops = max(at.flops_per_sample, 1) * factor
    traffic = max(traffic_bytes(at.traffic_bytes, precision), 1) * factor
    return Roofline(
        compute_samples_s=peak_tflops(spec, precision, tf32) * 1e12 / flops,
        memory_samples_s=spec.memory_bandwidth_gb_s * 1e9 / traffic,
        precision=precision,
    )


@dataclass(frozen=True)
class SpeedModel:
    """Latency ``overhead + per_sample x batch`` in ms, scaled from the S001-3 anchor:
    the overhead by kernel launches, the per-sample cost by the roofline ceiling."""

    overhead_ms: float
    per_sample_ms: float

    def latency_ms(self, batch: int) -> float:
        return self.overhead_ms + self.per_sample_ms * batch

    def knee(self) -> int:
        """The S001-4 knee scales with overhead / per-sample cost; a power of two."""
        anchor = _anchor_speed()
        ratio = (self.overhead_ms / self.per_sample_ms) / (anchor.overhead_ms / anchor.per_sample_ms)
        knee = memory_constants()["anchor"]["knee_batch"] * ratio
        return 2 ** max(0, round(math.log2(max(knee, 1))))


def _fit(points: dict[int, float]) -> tuple[float, float]:
    """Least-squares line through (batch, ms): (intercept, slope)."""
    xs, ys = list(points), list(points.values())
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = covariance / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - slope * mean_x, slope


def _anchor_speed() -> SpeedModel:
    latencies = memory_constants()["anchor"]["latency_ms"]
    overhead, per_sample = _fit({int(k): float(v) for k, v in latencies.items()})
    return SpeedModel(overhead, per_sample)


def _anchor_spec() -> GpuSpec:
    return resolve(memory_constants()["anchor"]["gpu"])


def speed_model(stats: ModelStats, spec: GpuSpec, resolution: int | None, precision: str,
                tf32: bool = False) -> SpeedModel:
    anchor = memory_constants()["anchor"]
    anchor_stats = reference_models()[anchor["model"]]
    anchor_ceiling = roofline(anchor_stats, _anchor_spec(), anchor["resolution"],
                              anchor["precision"]).unfused_samples_s
    ceiling = roofline(stats, spec, resolution, precision, tf32).unfused_samples_s
    base = _anchor_speed()
    return SpeedModel(
        overhead_ms=base.overhead_ms * stats.kernel_launches / anchor_stats.kernel_launches,
        per_sample_ms=base.per_sample_ms * anchor_ceiling / ceiling,
    )


# ---- the plan ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PlanRequest:
    """What the memory model plans for, and what the user fixed."""

    task: str
    objective: str
    precision: str
    resolution: int | None
    usable_bytes: float
    gpu_name: str
    gpu_precisions: tuple[str, ...]
    spec: GpuSpec | None
    tf32: bool = False
    optimizer: str = "adam"
    latency_budget_ms: float = 30.0
    fixed: frozenset[str] = field(default_factory=frozenset)  # decisions set by the user
    user_batch: int | None = None


@dataclass(frozen=True)
class MemoryPlan:
    precision: str
    resolution: int | None
    batch_size: int
    memory_batch: int  # the largest batch memory allows
    predicted_bytes: float
    usable_bytes: float
    bound: str  # memory | knee | latency | user
    steps: tuple[str, ...]
    knee: int | None = None
    latency_ms: float | None = None
    fp32_memory_batch: int | None = None
    training_loop: str = ""  # in training: what the loop adds, or the margin kept for an unknown one

    def decisions(self, request: PlanRequest) -> dict[str, Decision]:
        """The decisions the plan makes, with reasons that show the numbers.

        ``request`` is the one given to :func:`plan` (the rules' resolution and precision).
        """
        gb = GIB
        memory = (f"memory model: {self.predicted_bytes / gb:.2f} GB predicted at batch "
                  f"{self.batch_size} of {self.usable_bytes / gb:.2f} GB usable on {request.gpu_name}")
        if self.bound == "knee":
            reason = (f"{memory} (up to batch {self.memory_batch} fits); capped at the estimated "
                      f"throughput knee {self.knee}, S001-4 scaled by the roofline")
            source = "S001-4"
        elif self.bound == "latency":
            reason = (f"{memory} (up to batch {self.memory_batch} fits); predicted "
                      f"{self.latency_ms:.1f} ms per batch within the {request.latency_budget_ms:g} ms "
                      "budget, S001-3 scaled by the roofline")
            source = "S002-4"
        else:
            reason = f"{memory}: the largest batch that fits"
            source = "S003-4"
        if self.training_loop:
            reason += f"; {self.training_loop}"
        if self.fp32_memory_batch is not None and self.precision in ("fp16", "bf16"):
            reason += (f"; {self.precision.upper()} halves activations: up to batch "
                       f"{self.memory_batch} fits against {self.fp32_memory_batch} in FP32")
        decisions = {}
        if "batch_size" not in request.fixed:
            decisions["batch_size"] = Decision("batch_size", self.batch_size, "memory-model", source, reason)
        if self.resolution != request.resolution and "resolution" not in request.fixed:
            decisions["resolution"] = Decision("resolution", self.resolution, "memory-model", "S000-7",
                                               "; ".join(self.steps))
        if self.precision != request.precision and "precision" not in request.fixed:
            decisions["precision"] = Decision("precision", self.precision, "memory-model", "S000-7",
                                              "; ".join(self.steps))
        return decisions


def plan(stats: ModelStats, request: PlanRequest) -> MemoryPlan:
    """The configuration to run: raises :class:`UserError` when nothing fits."""
    if request.task == "train" and not stats.trainable:
        raise UserError(f"{stats.name} is an ONNX inference graph; training needs the PyTorch "
                        "model (--model package.module:callable)")
    steps: list[str] = []
    if stats.fixed_resolution and request.resolution != stats.native_resolution:
        if "resolution" in request.fixed:
            raise UserError(f"{stats.name} takes only {stats.native_resolution} px inputs, not "
                            f"{request.resolution}; drop the resolution override")
        steps.append(f"{stats.name} takes only {stats.native_resolution} px inputs")
        request = replace(request, resolution=stats.native_resolution)
    # The same step-down as the measurement's OOM ladder (S000-7), minus what the user fixed.
    resolutions = ladder.lower_resolutions(request.resolution, stats.fixed_resolution
                                           or "resolution" in request.fixed)
    precisions = ([request.precision] if "precision" in request.fixed else
                  ladder.lower_precisions(request.precision, request.task, request.gpu_precisions))
    needed = request.user_batch or 1
    smallest: tuple[float, str, int | None] | None = None
    for precision in precisions:
        for resolution in resolutions:
            fits = max_batch(stats, request.usable_bytes, resolution, precision, request.task,
                             request.optimizer)
            if fits >= needed:
                return _finish(stats, request, precision, resolution, fits, steps)
            need = fit_bytes(stats, needed, resolution, precision, request.task,
                             request.optimizer)
            smallest = (need, precision, resolution)
            steps.append(f"{precision} at {resolution or 'its'} px needs {need / GIB:.2f} GB at batch "
                         f"{needed}, more than {request.usable_bytes / GIB:.2f} GB usable")
    need, precision, resolution = smallest  # type: ignore[misc]
    shortfall = need - request.usable_bytes
    where = f"{resolution} px, " if resolution else ""
    raise DoesNotFit(
        f"{stats.name} does not fit on {request.gpu_name}: it needs {need / GIB:.2f} GB at batch "
        f"{needed} ({where}{precision}, {request.task}) but {max(request.usable_bytes, 0) / GIB:.2f} GB "
        f"is usable, {shortfall / GIB:.2f} GB short; free GPU memory, or use a smaller model"
    )


def _finish(stats: ModelStats, request: PlanRequest, precision: str, resolution: int | None,
            memory_batch: int, steps: list[str]) -> MemoryPlan:
    if steps:
        steps = [*steps, f"stepped down to {precision} at {resolution} px (S000-7: lower "
                 "resolution first, then precision)"]
    batch, bound, knee, latency = memory_batch, "memory", None, None
    if request.user_batch is not None:
        batch, bound = request.user_batch, "user"
    elif request.spec is not None:
        speed = speed_model(stats, request.spec, resolution, precision, request.tf32)
        if request.objective == "latency":
            within = max(1, math.floor((request.latency_budget_ms - speed.overhead_ms) / speed.per_sample_ms))
            if within < batch:
                batch, bound = within, "latency"
            latency = speed.latency_ms(batch)
        else:
            knee = speed.knee()
            if knee < batch:
                batch, bound = knee, "knee"
    fp32_batch = None
    if precision in ("fp16", "bf16"):
        fp32_batch = max_batch(stats, request.usable_bytes, resolution, "fp32", request.task,
                               request.optimizer)
    return MemoryPlan(
        precision=precision,
        resolution=resolution,
        batch_size=batch,
        memory_batch=memory_batch,
        predicted_bytes=fit_bytes(stats, batch, resolution, precision, request.task,
                                  request.optimizer),
        usable_bytes=request.usable_bytes,
        bound=bound,
        steps=tuple(steps),
        knee=knee,
        latency_ms=latency,
        fp32_memory_batch=fp32_batch,
        training_loop=training_loop_reason(stats) if request.task == "train" else "",
    )


def training_loop_reason(stats: ModelStats) -> str:
    """What the training prediction holds for this model's loop, for the batch decision."""
    loop = loops.loop_named(stats.training_loop)
    if loop is None:
        return (f"training loop not known: {loops.unknown_loop_margin():.0%} of the usable memory "
                "kept free for what it adds (EMA, validation, its loss), with the allocator's reserve "
                f"(x{loops.reserve_factor():g})")
    return f"reserved memory of the {loop.name}: with {loop.extras()}"
