"""How fast a model will run on a GPU: the roofline's work, timed by efficiencies fitted on
published measurements (profiles/published_measurements.yaml) by scripts/fit_throughput.py.

One batch takes ``launches x launch time + weight bytes / bandwidth`` (what a batch costs
whatever its size) plus ``batch x (FLOPs / (peak x compute efficiency) + bytes moved /
(bandwidth x memory efficiency))``. Each efficiency and the launch time is ``exp`` of a sum
of fitted offsets: one per runtime, architecture generation, precision, model family and
task (the launch time by runtime and precision together), each level missing from the fit
counting 0 (the average). The fitted coefficients,
the levels the published figures cover, and the interval (the spread of measured /
predicted on figures the fit never saw, leave-one-source-out) are
profiles/throughput_model.yaml. Pure Python: ``autotune recommend`` imports it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autotune.hardware.gpu_database import GpuSpec
from autotune.model.memory import peak_tflops, traffic_bytes
from autotune.model.stats import ModelStats, memory_constants
from autotune.shipped_data import load_profile

__all__ = ["FACTORS", "Prediction", "Workload", "assess", "batch_seconds", "coefficients", "figures",
           "predict", "precision_class", "runtime_name", "uncovered", "workload"]

#: The categorical factors each efficiency and the launch time depend on.
FACTORS = ("runtime", "architecture", "precision", "family", "task")

#: Backend names (autotune's plugins) -> the runtime the published tables name.
_RUNTIMES = {"torch": "pytorch", "pytorch": "pytorch", "onnxruntime": "onnxruntime",
             "tensorrt": "tensorrt", "tensorflow": "tensorflow"}


def coefficients() -> dict[str, Any]:
    return load_profile("throughput_model.yaml")


def runtime_name(backend: str) -> str:
    """``torch`` (the backend) and ``pytorch`` (the tables) are one runtime."""
    return _RUNTIMES.get(backend, backend)


def precision_class(precision: str, tf32: bool = False) -> str:
    """The precision the hardware computes in: AMP runs FP16 Tensor Cores; FP32 with TF32
    allowed runs TF32 on GPUs that have it (the caller knows whether it does)."""
    if precision == "amp":
        return "fp16"
    if precision == "fp32" and tf32:
        return "tf32"
    return precision


@dataclass(frozen=True)
class Workload:
    """What one batch asks of the GPU, and the levels its efficiencies are looked up by."""

    batch: int
    flops: float  # per sample
    bytes_moved: float  # per sample, unfused
    launches: float  # kernels per batch
    weight_bytes: float  # read (and for training written) once per batch
    peak_flops: float  # FLOP/s of the precision on this GPU
    bandwidth: float  # bytes/s
    levels: Mapping[str, str]  # factor -> level: FACTORS and runtime_precision


def workload(stats: ModelStats, spec: GpuSpec, *, precision: str, batch: int, runtime: str,
             resolution: int | None = None, task: str = "infer", tf32: bool = False) -> Workload:
    """The workload of ``batch`` samples of ``stats`` at ``resolution`` on ``spec``."""
    computes_in = precision_class(precision, tf32 and "tf32" in spec.tensor_tflops)
    at = stats.at(resolution)
    constants = memory_constants()
    train = task == "train"
    factor = constants["train_cost_factor"] if train else 1
    element = constants["traffic_element_bytes"][computes_in]
    weight_bytes = stats.parameters * (constants["train_weight_traffic_bytes"] if train else element)
    return Workload(
        batch=batch,
        flops=max(at.flops_per_sample, 1) * factor,
        bytes_moved=max(traffic_bytes(at.traffic_bytes, computes_in), 1) * factor,
        launches=stats.kernel_launches * factor,
        weight_bytes=weight_bytes,
        peak_flops=peak_tflops(spec, computes_in) * 1e12,
        bandwidth=spec.memory_bandwidth_gb_s * 1e9,
        levels={"runtime": runtime_name(runtime), "architecture": spec.architecture,
                "precision": computes_in, "family": stats.family, "task": task,
                # The launch time's: autocast's cast kernels are PyTorch's, not TensorRT's.
                "runtime_precision": f"{runtime_name(runtime)}/{computes_in}"},
    )


def batch_seconds(batch, flops, bytes_moved, launches, weight_bytes, peak_flops, bandwidth,
                  compute_efficiency, memory_efficiency, launch_s):
    """Seconds one batch takes. Arithmetic only, so the fit passes arrays through it."""
    per_sample = flops / (peak_flops * compute_efficiency) + bytes_moved / (bandwidth * memory_efficiency)
    fixed = launches * launch_s + weight_bytes / (bandwidth * memory_efficiency)
    return fixed + batch * per_sample


def _term(fitted: Mapping[str, Any], levels: Mapping[str, str]) -> float:
    """``exp(base + the offset of each level)``; a level the fit never saw adds 0."""
    offsets = fitted.get("offsets", {})
    return math.exp(fitted["base"] + sum(offsets.get(factor, {}).get(level, 0.0)
                                         for factor, level in levels.items()))


@dataclass(frozen=True)
class Prediction:
    """Predicted speed of one configuration, with the interval published figures of its
    runtime that the fit never saw fell in (10th to 90th percentile of measured / predicted)."""

    samples_s: float
    latency_ms: float  # one batch
    samples_s_range: tuple[float, float]
    latency_ms_range: tuple[float, float]
    batch: int
    runtime: str
    precision: str

    def to_dict(self) -> dict[str, Any]:
        return {"predicted_samples_s": round(self.samples_s, 1),
                "predicted_samples_s_range": [round(value, 1) for value in self.samples_s_range],
                "predicted_latency_ms": round(self.latency_ms, 3),
                "predicted_latency_ms_range": [round(value, 3) for value in self.latency_ms_range],
                "predicted_for": {"batch": self.batch, "runtime": self.runtime, "precision": self.precision}}


def uncovered(levels: Mapping[str, str]) -> str | None:
    """Why no prediction is made for these levels (a runtime, precision or task that usable
    published figures of fewer than two sources have, or a runtime in a precision they have
    so: no held-out check of it), or None."""
    covered = coefficients()["covered"]
    for factor in ("runtime", "precision", "task"):
        if levels[factor] not in covered[factor]:
            return (f"published {levels[factor]} figures come from fewer than two sources: no "
                    f"checked {factor} prediction")
    if levels["runtime_precision"] not in covered["runtime_precision"]:
        return (f"published figures of {levels['runtime']} in {levels['precision']} come from fewer "
                "than two sources: no checked prediction")
    return None


def assess(stats: ModelStats, spec: GpuSpec, *, precision: str, batch: int, runtime: str = "pytorch",
           resolution: int | None = None, task: str = "infer", tf32: bool = False) -> Prediction | str:
    """The calibrated speed of ``batch`` samples, or why there is none (:func:`uncovered`)."""
    load = workload(stats, spec, precision=precision, batch=batch, runtime=runtime,
                    resolution=resolution, task=task, tf32=tf32)
    reason = uncovered(load.levels)
    if reason is not None:
        return reason
    fitted = coefficients()
    seconds = batch_seconds(load.batch, load.flops, load.bytes_moved, load.launches, load.weight_bytes,
                            load.peak_flops, load.bandwidth, _term(fitted["compute_efficiency"], load.levels),
                            _term(fitted["memory_efficiency"], load.levels),
                            _term(fitted["launch_s"], load.levels))
    spread = fitted["interval"].get(load.levels["runtime"], fitted["interval"]["all"])
    low, high = spread["low"], spread["high"]  # measured / predicted, on held-out rows
    samples_s = batch / seconds
    return Prediction(samples_s=samples_s, latency_ms=seconds * 1e3,
                      samples_s_range=(samples_s * low, samples_s * high),
                      latency_ms_range=(seconds * 1e3 / high, seconds * 1e3 / low),
                      batch=batch, runtime=load.levels["runtime"], precision=load.levels["precision"])


def predict(stats: ModelStats, spec: GpuSpec, *, precision: str, batch: int, runtime: str = "pytorch",
            resolution: int | None = None, task: str = "infer", tf32: bool = False) -> Prediction | None:
    """The calibrated speed of ``batch`` samples, or None where :func:`uncovered` says why not."""
    found = assess(stats, spec, precision=precision, batch=batch, runtime=runtime, resolution=resolution,
                   task=task, tf32=tf32)
    return found if isinstance(found, Prediction) else None


def figures(stats: ModelStats, spec: GpuSpec, *, precision: str, batch: int, backends: Sequence[str],
            resolution: int | None = None, task: str = "infer", tf32: bool = False) -> dict[str, Any]:
    """The prediction for the first of ``backends`` that published figures cover, as plain
    values (``predicted_samples_s``, ``predicted_latency_ms``, their ranges, what they are
    for), each covered backend's samples/s, and why the others have none (``not_predicted``)."""
    by_backend, not_predicted = {}, {}
    for backend in backends:
        found = assess(stats, spec, precision=precision, batch=batch, runtime=backend,
                       resolution=resolution, task=task, tf32=tf32)
        if isinstance(found, Prediction):
            by_backend[backend] = found
        else:
            not_predicted[backend] = found
    result: dict[str, Any] = next(iter(by_backend.values())).to_dict() if by_backend else {}
    if len(by_backend) > 1:
        result["predicted_samples_s_by_backend"] = {backend: round(prediction.samples_s, 1)
                                                    for backend, prediction in by_backend.items()}
    if not_predicted:
        result["not_predicted"] = not_predicted
    return result
