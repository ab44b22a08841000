"""Time `autotune compare` on ten GPUs against `autotune recommend` on one (issue 26: <= 2 s).

Fresh processes, the two commands interleaved after one untimed warm-up run each, medians
reported (this machine's speed swings from minute to minute); then, in this process,
`autotune.compare()` itself: its first call (the profiles and the model's stats read) and
warm calls.

    python benchmarks/compare_speed.py [--runs 9]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GPUS = ["T4", "L4", "A10G", "A100", "H100", "V100", "RTX 4090", "RTX 3060 8GB", "A10", "L40S"]


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def summary(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:6.0f} ms (min {min(values) * 1000:.0f}, "
            f"max {max(values) * 1000:.0f}, {len(values)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs of each command")
    runs = parser.parse_args().runs
    autotune = shutil.which("autotune", path=str(Path(sys.executable).parent)) or "autotune"
    commands = {
        "autotune compare --model resnet50 (10 GPUs)":
            [autotune, "compare", "--model", "resnet50", *[f"--gpu={gpu}" for gpu in GPUS]],
        "autotune recommend --model resnet50 --gpu t4": [autotune, "recommend", "--model", "resnet50",
                                                         "--gpu", "t4"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values():
        timed(command)
    for _ in range(runs):
        for name, command in commands.items():
            times[name].append(timed(command))
    for name, values in times.items():
        print(f"{name:<46} {summary(values)}")
    import autotune as api  # noqa: PLC0415 - timed: the first call pays for the API's imports

    start = time.perf_counter()
    api.compare("resnet50", GPUS)
    first = time.perf_counter() - start
    warm = []
    for _ in range(runs):
        start = time.perf_counter()
        api.compare("resnet50", GPUS)
        warm.append(time.perf_counter() - start)
    print(f"{'autotune.compare() in-process, first call':<46} {first * 1000:6.0f} ms")
    print(f"{'autotune.compare() in-process, warm':<46} {summary(warm)}")


if __name__ == "__main__":
    main()
