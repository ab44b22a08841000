"""``autotune fleet plan`` for a synthetic inventory of many hosts (the goal: 10,000 in at most
5 s): random but seeded hardware from a handful of GPU models, counts, CPUs and RAM sizes,
so hosts share hardware as a real fleet's do. Prints the wall time of reading the
inventory and writing every planned profile::

    python benchmarks/fleet_plan.py [--hosts 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

MODELS = ("A100 80GB", "H100 SXM", "T4", "L4", "A10", "RTX 4090", "L40S", "V100 SXM2 32GB")


def write_inventory(path: Path, hosts: int) -> None:
    generator = random.Random(0)
    lines = ["host,gpu_model,gpu_count,mig,cpu_cores,ram_gb,driver"]
    for index in range(hosts):
        lines.append(f"node-{index:05d},{generator.choice(MODELS)},{generator.choice((1, 2, 4, 8))},,"
                     f"{generator.choice((32, 64))},{generator.choice((256, 512))},550.54")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from autotune.fleet.plan import write_plan

    seconds = []
    with tempfile.TemporaryDirectory(prefix="autotune-fleet-") as folder:
        inventory = Path(folder) / "inventory.csv"
        write_inventory(inventory, args.hosts)
        for repeat in range(args.repeats):
            started = time.perf_counter()
            written = write_plan(inventory, Path(folder) / f"plan-{repeat}")
            seconds.append(time.perf_counter() - started)
    print(f"fleet plan: {written} hosts, median {statistics.median(seconds):.2f} s "
          f"(min {min(seconds):.2f}, max {max(seconds):.2f}, {args.repeats} runs); goal <= 5 s for 10,000")


if __name__ == "__main__":
    main()
