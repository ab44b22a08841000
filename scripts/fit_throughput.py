"""Fit the throughput prediction (autotune/model/throughput.py) to the published measurements
and write profiles/throughput_model.yaml (`make calibrate`).

Every usable throughput and latency row of profiles/published_measurements.yaml whose GPU is
in the spec database becomes one observation: the seconds one batch took. The model of
autotune/model/throughput.py is fitted to them in log space (scipy's least_squares, soft-L1
loss, each source weighted as one voice so 86 rows of one table do not outvote 6 of another;
a ridge on every offset so a level seen once stays near the average). Its error is then
measured leave-one-source-out: for each source file, fit on all the others and predict its
rows. Those held-out ratios give the interval and the figures the README states.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from autotune.hardware.gpu_database import spec_named
from autotune.model.stats import ModelStats
from autotune.model.throughput import FACTORS, Workload, batch_seconds, workload
from autotune.shipped_data import dump_yaml, load_profile

#: Which factors each fitted term depends on (the rest cannot be told apart in the table).
#: The launch time depends on the runtime's precision too: autocast adds a cast kernel before
#: many operators (DLE's PyTorch ResNet-50 at batch 1 on a V100: 78 img/s in AMP, 96 in FP32),
#: a TensorRT engine has none. Chosen among nine forms by the held-out error
#: (docs/predictions.md).
TERMS: dict[str, tuple[str, ...]] = {
    "compute_efficiency": FACTORS,
    "memory_efficiency": ("runtime", "architecture"),
    "launch_s": ("runtime", "task", "runtime_precision"),
}
#: Where each term starts: the roofline's efficiencies at 1/2, 20 us a kernel launch.
START = {"compute_efficiency": math.log(0.5), "memory_efficiency": math.log(0.5), "launch_s": math.log(20e-6)}
#: The factors a prediction needs published rows of two sources for (the others fall back to
#: the average of the levels seen: leave-one-source-out measures how well).
GATED = ("runtime", "precision", "task")
RIDGE = 0.5  # the weight of each offset's pull towards 0 (an offset of 1 = a factor e)
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Observation:
    row: dict[str, Any]
    source: str  # the source file: what leave-one-source-out leaves out
    load: Workload
    seconds: float  # one batch, as published


#: An MLPerf round's results of one submitter are one source, though each system has its log.
_MLPERF_SUBMISSION = re.compile(r"^(github:mlcommons/inference_results_v[\d.]+ \w+/\w+)/")


def source_file(source: str) -> str:
    """What leave-one-source-out leaves out together: ``github:owner/repo path @ commit,
    section`` -> ``github:owner/repo path``; an MLPerf submission -> its round and submitter."""
    path = source.split(" @")[0].split(",")[0].split("#")[0].strip()
    submission = _MLPERF_SUBMISSION.match(path)
    return submission.group(1) if submission else path


def runtime_level(row: dict[str, Any]) -> str:
    """The runtime as the fit tells them apart: ONNX Runtime with its TensorRT accelerator runs
    TensorRT engines (Triton's BERT table: 265 against TensorRT's own 275 sequences/s on an
    A100 at batch 1), and torch.compile is not eager PyTorch, which autotune's torch backend runs."""
    if row.get("accelerator") == "tensorrt":
        return "tensorrt"
    if row.get("compiler") == "torch.compile":
        return "pytorch_compiled"
    return row["runtime"]


def observations() -> list[Observation]:
    stats = load_profile("published_models.yaml")["models"]
    found = []
    for row in load_profile("published_measurements.yaml")["measurements"]:
        spec = spec_named(row["gpu"])
        # A served figure times a server (client, protocol, copies): not what a runtime does
        # in the user's process, which is what the prediction is for.
        if (not row["usable_for_fit"] or row["metric"] not in ("samples_s", "latency_ms")
                or row.get("served_by") or spec is None or row["model"] not in stats):
            continue
        model = ModelStats.from_dict(stats[row["model"]][str(row["input"])])
        resolution = int(row["input"]) if str(row["input"]).isdigit() else None
        load = workload(model, spec, precision=row["precision"], batch=row["batch"],
                        runtime=runtime_level(row), resolution=resolution, task=row["task"])
        seconds = row["batch"] / row["value"] if row["metric"] == "samples_s" else row["value"] / 1e3
        found.append(Observation(row, source_file(row["source"]), load, seconds))
    return found


class Design:
    """The parameter vector's layout: per term a base, then one offset per factor level."""

    def __init__(self, data: list[Observation]):
        self.slots: list[tuple[str, str | None, str | None]] = []
        for term, factors in TERMS.items():
            self.slots.append((term, None, None))
            for factor in factors:
                for level in sorted({o.load.levels[factor] for o in data}):
                    self.slots.append((term, factor, level))
        self.index = {slot: i for i, slot in enumerate(self.slots)}

    def start(self) -> np.ndarray:
        return np.array([START[term] if factor is None else 0.0 for term, factor, _ in self.slots])

    def matrices(self, data: list[Observation]) -> dict[str, np.ndarray]:
        """term -> (rows x parameters) 0/1 matrix: which parameters add up to its log."""
        out = {}
        for term, factors in TERMS.items():
            matrix = np.zeros((len(data), len(self.slots)))
            for i, o in enumerate(data):
                matrix[i, self.index[(term, None, None)]] = 1
                for factor in factors:
                    slot = (term, factor, o.load.levels[factor])
                    if slot in self.index:
                        matrix[i, self.index[slot]] = 1
            out[term] = matrix
        return out

    def to_yaml(self, theta: np.ndarray) -> dict[str, Any]:
        fitted: dict[str, Any] = {}
        for (term, factor, level), value in zip(self.slots, theta, strict=True):
            entry = fitted.setdefault(term, {"base": 0.0, "offsets": {}})
            if factor is None:
                entry["base"] = round(float(value), 4)
            else:
                entry["offsets"].setdefault(factor, {})[level] = round(float(value), 4)
        return fitted


#: The workload's figures batch_seconds takes, in its order.
_FIGURES = ("batch", "flops", "bytes_moved", "launches", "weight_bytes", "peak_flops", "bandwidth")


def _columns(data: list[Observation]) -> list[np.ndarray]:
    """Each of :data:`_FIGURES` over the rows, made once per fit, not per evaluation."""
    return [np.array([getattr(o.load, name) for o in data], dtype=float) for name in _FIGURES]


def _predicted_seconds(theta: np.ndarray, columns: list[np.ndarray],
                       matrices: dict[str, np.ndarray]) -> np.ndarray:
    terms = {term: np.exp(matrix @ theta) for term, matrix in matrices.items()}
    return batch_seconds(*columns, terms["compute_efficiency"], terms["memory_efficiency"], terms["launch_s"])


def fit(data: list[Observation]) -> tuple[Design, np.ndarray]:
    design = Design(data)
    matrices, columns = design.matrices(data), _columns(data)
    measured = np.log([o.seconds for o in data])
    per_source = Counter(o.source for o in data)
    weights = np.array([1 / math.sqrt(per_source[o.source]) for o in data])
    offsets = np.array([factor is not None for _, factor, _ in design.slots], dtype=float)

    def residuals(theta: np.ndarray) -> np.ndarray:
        predicted = np.log(_predicted_seconds(theta, columns, matrices))
        return np.concatenate([weights * (predicted - measured), math.sqrt(RIDGE) * offsets * theta])

    result = least_squares(residuals, design.start(), loss="soft_l1", f_scale=0.2, max_nfev=4000)
    return design, result.x


def predict_with(design: Design, theta: np.ndarray, data: list[Observation]) -> np.ndarray:
    return _predicted_seconds(theta, _columns(data), design.matrices(data))


def covered(data: list[Observation], sources: int = 2) -> dict[str, list[str]]:
    """The runtimes, precisions and tasks a prediction is made for: those that published rows
    of at least ``sources`` sources have, so that every kind predicted is one whose error
    leave-one-source-out could measure; and the runtime-precision pairs some published row
    has (eager PyTorch has no INT8 path: no table has it). throughput.uncovered reads this."""
    seen: dict[tuple[str, str], set[str]] = {}
    for o in data:
        for factor in (*GATED, "runtime_precision"):
            seen.setdefault((factor, o.load.levels[factor]), set()).add(o.source)
    needed = {factor: sources for factor in (*GATED, "runtime_precision")}
    return {factor: sorted(level for (name, level), found in seen.items()
                           if name == factor and len(found) >= least)
            for factor, least in needed.items()}


HeldOut = tuple[list[tuple[Observation, float]], list[Observation]]


def leave_one_source_out(data: list[Observation]) -> HeldOut:
    """(observation, measured / predicted speed) for every row a fit that never saw its source
    predicts, and the rows it does not: those whose runtime, precision or task no other
    source has (the product makes no prediction for them either)."""
    ratios, unpredicted = [], []
    for source in sorted({o.source for o in data}):
        rest = [o for o in data if o.source != source]
        known = covered(rest, sources=1)
        held_out = []
        for o in data:
            if o.source == source:
                (held_out if all(o.load.levels[f] in known[f] for f in known) else unpredicted).append(o)
        if held_out:
            design, theta = fit(rest)
            predicted = predict_with(design, theta, held_out)
            ratios += [(o, float(p / o.seconds)) for o, p in zip(held_out, predicted, strict=True)]
    return ratios, unpredicted


def summary(ratios: list[float]) -> dict[str, Any]:
    """Error figures of measured / predicted ratios: |ratio - 1| median and 90th percentile,
    how many are off by 2x or more, the extremes."""
    values = np.array(ratios)
    if not len(values):
        return {"rows": 0}
    errors = np.abs(values - 1)
    return {"rows": len(values), "median_error": round(float(np.median(errors)), 3),
            "p90_error": round(float(np.quantile(errors, 0.9)), 3),
            "off_by_2x": int(np.sum((values >= 2) | (values <= 0.5))),
            "ratio_min": round(float(values.min()), 3), "ratio_max": round(float(values.max()), 3)}


def interval(ratios: list[float]) -> dict[str, float]:
    """The 10th to 90th percentile of held-out measured / predicted ratios."""
    low, high = np.quantile(ratios, [0.1, 0.9])
    return {"low": round(float(low), 3), "high": round(float(high), 3)}


def calibrate() -> dict[str, Any]:
    data = observations()
    design, theta = fit(data)
    held_out, unpredicted = leave_one_source_out(data)
    ratios = [ratio for _, ratio in held_out]
    in_sample = predict_with(design, theta, data)
    by_source = {source: {**summary([r for o, r in held_out if o.source == source]),
                          "not_predicted": sum(o.source == source for o in unpredicted)}
                 for source in sorted({o.source for o in data})}
    runtimes = sorted({o.load.levels["runtime"] for o, _ in held_out})
    by_runtime = {runtime: [r for o, r in held_out if o.load.levels["runtime"] == runtime]
                  for runtime in runtimes}
    return {
        **design.to_yaml(theta),
        "covered": covered(data),
        # Each runtime's own: TensorRT's sources disagree far more than PyTorch's do.
        "interval": {"all": interval(ratios),
                     **{runtime: interval(values) for runtime, values in by_runtime.items()}},
        "error": {"leave_one_source_out": {**summary(ratios), "not_predicted": len(unpredicted)},
                  "by_runtime": {runtime: summary(values) for runtime, values in by_runtime.items()},
                  "in_sample": summary([float(p / o.seconds) for o, p in zip(data, in_sample, strict=True)]),
                  "by_source": by_source},
    }


HEADER = """\
# Generated by `make calibrate` (scripts/fit_throughput.py): do not edit. The throughput
# prediction of autotune/model/throughput.py fitted to profiles/published_measurements.yaml.
# Each term is exp(base + an offset per level); a level missing here counts 0. `covered`: the
# runtimes, precisions and tasks usable published figures of two sources or more have, and the
# runtime/precision pairs of one or more (no prediction for the others); `interval`: the 10th
# and 90th percentile of measured / predicted speed on rows whose source the fit never saw
# (leave-one-source-out), overall and per runtime; `error`: those held-out figures
# (|measured / predicted - 1|), overall, by runtime and by source, and how many held-out rows
# had a runtime, precision or task no other source has (`not_predicted`).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="print the held-out rows worst first instead of writing the file")
    arguments = parser.parse_args()
    if arguments.check:
        predicted, _ = leave_one_source_out(observations())
        for o, ratio in sorted(predicted, key=lambda pair: abs(math.log(pair[1])), reverse=True)[:40]:
            r = o.row
            print(f"{ratio:6.2f}  {r['model']:<18} {r['gpu']:<16} {r['runtime']:<11} {r['precision']:<5} "
                  f"{r['task']:<5} b{r['batch']:<4} {r['metric']:<10} {o.source[-60:]}")
        return
    target = REPO / "profiles" / "throughput_model.yaml"
    fitted = calibrate()
    target.write_text(HEADER + dump_yaml(fitted), "utf-8")
    print(f"wrote {target}: leave-one-source-out {fitted['error']['leave_one_source_out']}", file=sys.stderr)


if __name__ == "__main__":
    main()
