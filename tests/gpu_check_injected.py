"""Checks that tests/test_gpu_check.py injects into scripts/gpu_check.py: each runs in a Python
process of its own, which imports it from here (a module without pytest, so that a check's
process starts in a tenth of a second)."""

from __future__ import annotations

import os
import time

import gpu_check
from gpu_check import CheckContext


def returns_figures(context: CheckContext) -> dict:
    (context.artifacts / "saved.txt").write_text("kept")
    return {"answer": 42, "limit_s": context.limit_s}


def raises(context: CheckContext) -> dict:
    raise RuntimeError("the driver said no")


def finds_a_problem(context: CheckContext) -> dict:
    raise gpu_check.Failed("2 readers raise", {"readers": ["a", "b"]})


def cannot_run_here(context: CheckContext) -> dict:
    raise gpu_check.Skipped("torch sees no CUDA GPU")


def hangs(context: CheckContext) -> dict:
    print("started, then hung", flush=True)
    time.sleep(60)
    return {}


def dies(context: CheckContext) -> dict:
    os._exit(3)
