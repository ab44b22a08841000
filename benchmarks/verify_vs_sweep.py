"""Does `autotune verify` pick (nearly) the best configuration on this CPU? Compare it with an
exhaustive sweep over both backends, measured in one run.

For each model (resnet18 at 224 px; the small BERT-like classifier of ``bert_like.py`` at
sequence 128):

1. `autotune verify --model M --backend all --json` in a fresh process, with verify's
   default budget (timed): the configuration it picks — backend, precision, batch,
   channels_last, thread count, INT8 method.
2. The exhaustive sweep, one measurer per backend, `--passes` times, interleaved (each pass
   visits every point once, in a shuffled order, so a machine whose speed drifts moves
   every point alike):
   - torch: FP32 and BF16 (where the CPU has it) x batch 1..32 x channels_last off/on
     (image models only) x threads;
   - onnxruntime: FP32 and INT8 made by qdq, qoperator, qdq_s8 and dynamic x batch 1..32
     x threads.
   Threads are 1 and every core. Each point runs the harness protocol with `--point-budget-s`
   (default: the harness's). A prepared model (an export, a quantised variant) is made once
   and reused by its measurer. Pass 1 also checks each point's accuracy against FP32 as
   verify does; a point that fails it cannot be the best. A pick off the grid (batch 64,
   say) is measured in the same passes as an extra point. After pass 1, points under
   `--prune-below` (default half) of pass 1's best are not measured again: no swing of this
   CPU makes them the best, and the slowest (INT8 dynamic on a convolutional net, one
   thread at batch 32: a minute a point) would otherwise take most of the run.

The bar (issue): the pick reaches >= 90 % of the sweep's best median throughput on a CPU
(>= 95 % on a GPU, which this CPU grid does not cover), and is of the same backend and
precision family (FP32, BF16, INT8) as the best.

    python benchmarks/verify_vs_sweep.py [--models resnet18,small_bert] [--passes 3]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
# The torch runner imports ``benchmarks.bert_like`` by name, as the CLI does from the working folder.
sys.path.insert(0, str(REPO_ROOT))

from autotune import api, plugins  # noqa: E402
from autotune.backend_api import RunConfig  # noqa: E402
from autotune.hardware.host import probe_host  # noqa: E402
from autotune.measure import run_config as runs  # noqa: E402
from autotune.measure.measurement import Measurement, Outcome  # noqa: E402
from autotune.measure.measurer import Measurer  # noqa: E402
from autotune.measure.plan import MeasurementPlan  # noqa: E402
from autotune.measure.protocol import protocol  # noqa: E402

BAR_CPU = 0.90
BATCHES = (1, 2, 4, 8, 16, 32)
INT8_METHODS = ("qdq", "qoperator", "qdq_s8", "dynamic")
BERT_INPUT_SPEC = "input_ids:int64[S=128]:tokens<30522; attention_mask:int64[S=128]:ones"


@dataclass(frozen=True)
class Model:
    name: str
    spec: str  # what --model takes
    input_spec: str | None = None
    #: The batches swept (a slow model may sweep fewer).
    batches: tuple[int, ...] = BATCHES

    def cli_arguments(self) -> list[str]:
        return ["--model", self.spec] + (["--input-spec", self.input_spec] if self.input_spec else [])

    def settings(self) -> dict[str, Any]:
        return {"model": self.spec} | ({"input_spec": self.input_spec} if self.input_spec else {})


MODELS = {
    "resnet18": Model("resnet18", "resnet18"),
    "small_bert": Model("small_bert", "benchmarks.bert_like:small_bert", BERT_INPUT_SPEC),
}


@dataclass(frozen=True, order=True)
class Point:
    """One configuration of the sweep; ``channels_last`` only for torch on an image model,
    ``int8_method`` only for onnxruntime's INT8."""

    backend: str
    precision: str
    batch_size: int
    cpu_threads: int
    channels_last: bool | None = None
    int8_method: str | None = None

    @property
    def label(self) -> str:
        extra = " channels_last" if self.channels_last else ""
        extra += f" {self.int8_method}" if self.int8_method else ""
        return f"{self.backend} {self.precision}{extra} batch {self.batch_size} {self.cpu_threads} threads"

    def run_config(self, base: RunConfig) -> RunConfig:
        config = replace(base, precision=self.precision, batch_size=self.batch_size,
                         cpu_threads=self.cpu_threads)
        if self.channels_last is not None:
            config = config.with_options(channels_last=self.channels_last)
        if self.int8_method is not None:
            config = config.with_options(int8_method=self.int8_method)
        return config


@dataclass
class Results:
    """Throughput per point across passes, and what pass 1's accuracy check said."""

    throughput: dict[Point, list[float]] = field(default_factory=dict)
    rejected: dict[Point, str] = field(default_factory=dict)
    failed: dict[Point, str] = field(default_factory=dict)
    #: Measured in pass 1 only (see :func:`sweep`).
    pruned: set[Point] = field(default_factory=set)

    def record(self, point: Point, measurement: Measurement) -> None:
        if measurement.timing is None:
            self.failed[point] = f"{measurement.outcome.value}: {measurement.reason}"[:120]
            return
        self.throughput.setdefault(point, []).append(measurement.throughput)
        if measurement.outcome is Outcome.REJECTED:
            self.rejected[point] = measurement.reason

    def medians(self) -> dict[Point, float]:
        return {point: statistics.median(values) for point, values in self.throughput.items()}


def run_verify(model: Model) -> tuple[dict[str, Any], float]:
    """verify's final recommendation (its ``--json``) and the process's wall seconds."""
    autotune = shutil.which("autotune", path=str(Path(sys.executable).parent)) or "autotune"
    started = time.monotonic()
    result = subprocess.run([autotune, "verify", *model.cli_arguments(), "--backend", "all", "--json"],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    wall_s = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"verify failed for {model.name} (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout), wall_s


def picked_point(report: dict[str, Any], image_model: bool) -> Point:
    """verify's winner as a sweep point. An INT8 winner at the default method carries no
    ``int8_method`` in ``backend_options``: the registration's default is what ran."""
    settings = report["settings"]
    backend = settings["backends"][0]
    method = None
    if backend == "onnxruntime" and settings["precision"] == "int8":
        default = plugins.backends()["onnxruntime"][1].option("int8_method").default
        method = report.get("backend_options", {}).get(backend, {}).get("int8_method") or default
    return Point(backend, settings["precision"], settings["batch_size"], settings["cpu_threads"],
                 bool(settings["channels_last"]) if backend == "torch" and image_model else None, method)


def verify_measured(report: dict[str, Any], backend: str) -> float | None:
    """The throughput verify itself measured for its winning configuration."""
    for backend_report in report["measurements"]:
        if backend_report["backend"] == backend and "best" in backend_report:
            return max((m.get("throughput_samples_s", 0.0) for m in backend_report["measurements"]
                        if m["config"] == backend_report["best"]), default=None)
    return None


def grid(model: Model, image_model: bool, thread_counts: tuple[int, ...]) -> list[Point]:
    torch_precisions = ("fp32", "bf16") if probe_host().bf16 else ("fp32",)
    layouts: tuple[bool | None, ...] = (False, True) if image_model else (None,)
    points = [Point("torch", precision, batch, threads, layout)
              for precision in torch_precisions for layout in layouts
              for threads in thread_counts for batch in model.batches]
    variants = [("fp32", None)] + [("int8", method) for method in INT8_METHODS]
    points += [Point("onnxruntime", precision, batch, threads, int8_method=method)
               for precision, method in variants for threads in thread_counts for batch in model.batches]
    return points


@dataclass
class Loaded:
    """The model as autotune reads it, in the plan verify measures by on this machine."""

    plan: MeasurementPlan

    @property
    def image_model(self) -> bool:
        return self.plan.stats.native_resolution is not None


def load(model: Model) -> Loaded:
    return Loaded(api.measurement_plan(**model.settings()))


def build_measurers(loaded: Loaded, settings: dict[str, Any], max_batch: int
                    ) -> tuple[dict[str, Measurer], dict[str, RunConfig]]:
    """One measurer per backend and the configuration each starts from: verify's final
    ``settings`` as that backend runs them (its options at their defaults or decisions)."""
    registered = plugins.backends()
    measurers, bases = {}, {}
    for name in ("torch", "onnxruntime"):
        registration = registered[name][1]
        runner, why_not = runs.load_runner(registration)
        if runner is None:
            sys.exit(f"backend {name} cannot run here: {why_not}")
        measurers[name] = runs.build_measurer(name, runner, loaded.plan, "cpu", registration,
                                              max_batch_size=max_batch)
        bases[name] = runs.run_config(registration, settings, loaded.plan.stats, "infer", "cpu")
    return measurers, bases


def sweep(points: list[Point], picked: Point, measurers: dict[str, Measurer], bases: dict[str, RunConfig],
          passes: int, point_budget_s: float, prune_below: float) -> Results:
    """Every point once per pass, in a new (seeded) order each pass; after pass 1, only the
    pick and the points at least ``prune_below`` of pass 1's best (see the module's doc)."""
    results = Results()
    for index in range(passes):
        order = list(points)
        random.Random(index).shuffle(order)
        started = time.monotonic()
        for point in order:
            measurement = measurers[point.backend].measure(point.run_config(bases[point.backend]),
                                                           point_budget_s, check_accuracy=index == 0)
            results.record(point, measurement)
        print(f"  pass {index + 1}/{passes}: {len(order)} points, {time.monotonic() - started:.0f} s",
              flush=True)
        if index == 0 and prune_below > 0:
            first = {point: values[0] for point, values in results.throughput.items()
                     if point not in results.rejected}
            floor = prune_below * max(first.values(), default=0.0)
            points = [point for point in points if point == picked or first.get(point, 0.0) >= floor]
            results.pruned = {point for point in results.throughput if point not in points}
    return results


def family(point: Point) -> tuple[str, str]:
    return point.backend, point.precision


def report_model(model: Model, picked: Point, on_grid: bool, results: Results, passes: int,
                 verify_wall_s: float, verify_samples_s: float | None) -> None:
    medians = results.medians()
    eligible = {point: value for point, value in medians.items() if point not in results.rejected}
    best = max(eligible, key=eligible.get)
    print(f"\n{model.name}: {len(medians)} points, median of {passes} passes (samples/s), fastest first")
    for rank, (point, value) in enumerate(sorted(medians.items(), key=lambda item: -item[1]), 1):
        values = results.throughput[point]
        marks = []
        if point == picked:
            marks.append("<- verify's pick" + ("" if on_grid else " (off the grid: an extra point)"))
        if point in results.pruned:
            marks.append("(pass 1 only)")
        if point in results.rejected:
            marks.append(f"REJECTED by the accuracy check ({results.rejected[point]})")
        print(f"  {rank:>3} {point.label:<52} {value:8.1f}  ({min(values):7.1f}-{max(values):7.1f})  "
              f"{value / eligible[best]:6.1%}  {' '.join(marks)}")
    for point, why in sorted(results.failed.items()):
        print(f"      {point.label:<52} no timing: {why}")
    families: dict[tuple[str, str], Point] = {}
    for point in sorted(eligible, key=eligible.get, reverse=True):
        families.setdefault(family(point), point)
    print(f"{model.name}: best per backend and precision family: " + "; ".join(
        f"{'/'.join(key)} {eligible[point]:.1f} ({eligible[point] / eligible[best]:.0%}, {point.label})"
        for key, point in families.items()))
    ratio = medians.get(picked, 0.0) / eligible[best]
    same = family(picked) == family(best)
    verdict = "meets" if ratio >= BAR_CPU and same else "MISSES"
    measured = f" (verify measured {verify_samples_s:.1f} samples/s)" if verify_samples_s else ""
    print(f"{model.name}: verify picked {picked.label}{measured} in {verify_wall_s:.0f} s wall "
          "(default budget; the wall time includes starting Python, importing the frameworks, "
          "inspecting and exporting the model)")
    print(f"{model.name}: sweep best {best.label} {eligible[best]:.1f} samples/s; the pick's median "
          f"{medians.get(picked, 0.0):.1f} samples/s is {ratio:.1%} of it (bar >= {BAR_CPU:.0%}); same "
          f"backend and precision family: {'yes' if same else 'no'} (pick {'/'.join(family(picked))}, "
          f"best {'/'.join(family(best))}); {verdict} the target")


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma list of {', '.join(MODELS)} (default: all)")
    parser.add_argument("--passes", type=int, default=3, help="interleaved passes over the grid")
    parser.add_argument("--point-budget-s", type=float, default=None,
                        help="timing budget per point and pass (default: the harness's config_budget_s)")
    parser.add_argument("--prune-below", type=float, default=0.5,
                        help="after pass 1, measure again only points at least this share of pass 1's "
                        "best (default 0.5; 0 measures every point in every pass)")
    arguments = parser.parse_args()
    names = [name.strip() for name in arguments.models.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]}; choose from {', '.join(MODELS)}")
    point_budget_s = arguments.point_budget_s or protocol()["config_budget_s"]
    host = probe_host()
    thread_counts = tuple(sorted({1, host.physical_cores, host.available_cores}))
    run_started = time.monotonic()
    for name in names:
        model = MODELS[name]
        verified, verify_wall_s = run_verify(model)
        settings = verified["settings"]
        if settings["device"] != "cpu":
            sys.exit("this sweep covers the CPU's choices; on a GPU compare with a GPU grid (bar 95 %)")
        loaded = load(model)
        picked = picked_point(verified, loaded.image_model)
        points = grid(model, loaded.image_model, thread_counts)
        on_grid = picked in points
        if not on_grid:
            points.append(picked)
        measurers, bases = build_measurers(loaded, settings, max(point.batch_size for point in points))
        resolution = bases["torch"].resolution
        print(f"{model.name}{f' at {resolution} px' if resolution else ''}: verify picked {picked.label} "
              f"in {verify_wall_s:.0f} s; sweeping {len(points)} points x {arguments.passes} passes, "
              f"{point_budget_s:g} s timing budget each", flush=True)
        started = time.monotonic()
        try:
            results = sweep(points, picked, measurers, bases, arguments.passes, point_budget_s,
                            arguments.prune_below)
        finally:
            for measurer in measurers.values():
                measurer.close()
        print(f"  sweep: {time.monotonic() - started:.0f} s")
        report_model(model, picked, on_grid, results, arguments.passes, verify_wall_s,
                     verify_measured(verified, picked.backend))
        print()
    print(f"elapsed: {time.monotonic() - run_started:.0f} s")


if __name__ == "__main__":
    main()
