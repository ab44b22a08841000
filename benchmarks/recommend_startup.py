"""Time a fresh `autotune recommend --gpu t4` process against a fresh `import torch`.

The target (issue 2): recommend costs at most a tenth of importing torch, because it
must never import torch or onnxruntime. Each measurement is a new Python process; the
two commands are interleaved, one untimed warm-up run each fills the page cache, and
medians are reported, since this machine's speed swings 20-30 % minute to minute.

    python benchmarks/recommend_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each command")
    runs = parser.parse_args().runs
    autotune = shutil.which("autotune", path=str(Path(sys.executable).parent)) or "autotune"
    commands = {
        "autotune recommend --gpu t4": [autotune, "recommend", "--gpu", "t4"],
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values():
        timed(command)  # warm-up: the first torch import reads ~1 GB from disk
    for _ in range(runs):
        for name, command in commands.items():
            times[name].append(timed(command))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:<32} median {medians[name] * 1000:7.0f} ms  "
              f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}, {runs} runs)")
    recommend, torch = medians.values()
    print(f"ratio recommend / import torch: {recommend / torch:.3f} (target <= 0.100)")


if __name__ == "__main__":
    main()
