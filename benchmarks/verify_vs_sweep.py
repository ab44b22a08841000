"""Does `autotune verify` pick (nearly) the best configuration? Compare it with an
exhaustive sweep over the same choices, measured in one run.

1. `autotune verify --model resnet18 --backend torch --budget-s 60 --json` (a fresh
   process, timed): the configuration it picks and how long it took.
2. The exhaustive sweep over verify's choices — batch 1..32 (powers of two) x the
   precisions it may pick (FP32, and BF16 where the CPU has it) x channels_last off/on
   (the torch option verify explores) — `--passes` times,
   interleaved, each configuration with the harness's default time budget. The picked
   configuration is one of the grid's points, so its throughput comes from the same run.

The bar (issue 4): the pick reaches >= 95 % of the sweep's best median throughput.

    python benchmarks/verify_vs_sweep.py [--passes 4] [--budget-s 60]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from autotune_plugins.torch_runner import TorchRunner

from autotune.backend_api import RunConfig
from autotune.machine_probe import probe_host
from autotune.measure import Measurer
from autotune.model_source import parse_model
from autotune.model_stats import reference_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--budget-s", type=float, default=60)
    arguments = parser.parse_args()
    autotune = shutil.which("autotune", path=str(Path(sys.executable).parent)) or "autotune"
    started = time.monotonic()
    result = subprocess.run([autotune, "verify", "--model", "resnet18", "--backend", "torch",
                             "--budget-s", str(arguments.budget_s), "--json"],
                            capture_output=True, text=True, check=True)
    verify_wall = time.monotonic() - started
    report = json.loads(result.stdout)
    settings = report["settings"]
    picked = (settings["precision"], settings["batch_size"], settings["channels_last"])
    threads = settings["cpu_threads"]
    print(f"verify: picked {picked[0]} batch {picked[1]} channels_last={picked[2]} "
          f"in {verify_wall:.1f} s wall "
          f"(--budget-s {arguments.budget_s:g}; the wall time includes starting Python, importing "
          "torch and building the model)")

    precisions = ["fp32", "bf16"] if probe_host().bf16 else ["fp32"]
    grid = [(p, b, c) for p in precisions for b in (1, 2, 4, 8, 16, 32) for c in (False, True)]
    measurer = Measurer("torch", TorchRunner(), parse_model("resnet18"), reference_models()["resnet18"],
                        "cpu", tuple(precisions))
    throughput: dict[tuple[str, int], list[float]] = {point: [] for point in grid}
    for _ in range(arguments.passes):
        for precision, batch, channels_last in grid:
            config = RunConfig("infer", precision, batch, 224, cpu_threads=threads).with_options(
                channels_last=channels_last)
            measurement = measurer.measure(config, check_accuracy=False)
            throughput[(precision, batch, channels_last)].append(measurement.throughput)
    medians = {point: statistics.median(values) for point, values in throughput.items()}
    for (precision, batch, channels_last), value in medians.items():
        marks = " <- verify's pick" if (precision, batch, channels_last) == picked else ""
        layout = "channels_last " if channels_last else "              "
        print(f"  {precision} batch {batch:>2} {layout}: {value:7.1f} samples/s "
              f"(median of {arguments.passes}){marks}")
    best_point = max(medians, key=medians.get)
    ratio = medians[picked] / medians[best_point]
    print(f"sweep best: {best_point[0]} batch {best_point[1]} channels_last={best_point[2]} "
          f"{medians[best_point]:.1f} samples/s; "
          f"verify's pick reaches {ratio:.1%} of it (bar: >= 95 %)")


if __name__ == "__main__":
    main()
