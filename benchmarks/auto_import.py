"""What ``import autotune.auto`` adds to a training script's start with a cached profile,
torch's own import excluded (the goal is at most 50 ms).

Each repetition times ``import autotune.auto`` inside fresh interpreters, interleaved (this
machine's speed drifts minutes apart): after ``import torch`` (a training script's case),
and as the first import, with this machine's training profile already in a temporary
store. Prints the medians::

    python benchmarks/auto_import.py [--repeats 21]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

TIMED = ("import time; {before}; started = time.perf_counter(); import autotune.auto; "
         "print((time.perf_counter() - started) * 1000)")


def import_ms(before: str, env: dict[str, str]) -> float:
    """The wall time of ``import autotune.auto`` alone, read inside a fresh interpreter
    after ``before`` ran: the difference of two whole-process times would drown in the
    spread of torch's own import (tens of ms here)."""
    done = subprocess.run([sys.executable, "-c", TIMED.format(before=before)], env=env, check=True,
                          capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autotune-store-") as store:
        env = dict(os.environ, AUTOTUNE_STORE=store, AUTOTUNE_QUIET="1")
        env.pop("AUTOTUNE_DISABLE", None)
        env.pop("AUTOTUNE_PROFILE", None)
        subprocess.run([sys.executable, "-c", "import autotune.auto"], env=env, check=True)  # the profile
        cases = {"after import torch": "import torch", "first thing in the script": "pass"}
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, before in cases.items():
                times[name].append(import_ms(before, env))
    for name, values in times.items():
        print(f"import autotune.auto {name:<26} median {statistics.median(values):6.1f} ms "
              f"(min {min(values):.1f}, max {max(values):.1f})")
    print(f"goal: <= 50 ms after import torch; {args.repeats} interleaved repeats, cached profile")


if __name__ == "__main__":
    main()
