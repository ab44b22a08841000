"""What ``import autotune.auto`` adds to a training script's start with a cached profile,
torch's own import excluded (the goal is at most 50 ms).

Each repetition runs, in fresh interpreters and interleaved (this machine's speed drifts
minutes apart): ``import torch``, then ``import torch; import autotune.auto`` with this
machine's training profile already in a temporary store. Prints the medians and their
difference::

    python benchmarks/auto_import.py [--repeats 21]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def wall_ms(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autotune-store-") as store:
        env = dict(os.environ, AUTOTUNE_STORE=store, AUTOTUNE_QUIET="1")
        env.pop("AUTOTUNE_DISABLE", None)
        env.pop("AUTOTUNE_PROFILE", None)
        subprocess.run([sys.executable, "-c", "import autotune.auto"], env=env, check=True)  # the profile
        cases = {"torch": "import torch", "torch + autotune.auto": "import torch; import autotune.auto",
                 "autotune.auto alone": "import autotune.auto", "python alone": "pass"}
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, code in cases.items():
                times[name].append(wall_ms(code, env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name:<24} median {median:7.1f} ms")
    added = medians["torch + autotune.auto"] - medians["torch"]
    alone = medians["autotune.auto alone"] - medians["python alone"]
    print(f"import autotune.auto adds {added:.1f} ms after import torch ({alone:.1f} ms on its own); "
          f"goal <= 50 ms; {args.repeats} interleaved repeats")


if __name__ == "__main__":
    main()
