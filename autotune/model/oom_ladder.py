"""The out-of-memory ladder of S000-7: smaller batch, then lower resolution, then precision.

The one step-down policy: the memory model plans with it (``memory_model.plan``), the
measurement climbs down it (``measure.Measurer``), and verify climbs down its batch rungs
when the time budget cannot cover the rules' batch (``measure.verify``). A finite list of rungs, tried in
order, so it can never loop forever; each failure is recorded as a step, and the caller
says what finally fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from autotune.backend_api import RunConfig
from autotune.model_inputs import tier_resolutions

#: Precisions by the memory they take, widest first. One step down the ladder goes to the
#: next group; within a group the first the device runs is taken (FP16 before BF16: the
#: same memory, and FP16 runs on more GPUs; BF16 where FP16 does not run well, a CPU).
_MEMORY_GROUPS = (("fp32", "tf32"), ("fp16", "bf16"), ("int8",), ("int4",))
#: Training only steps to half precision: autocast has no INT8 or INT4.
TRAINABLE = ("fp32", "tf32", "bf16", "fp16")


def lower_precisions(precision: str, task: str, precisions: Sequence[str]) -> list[str]:
    """``precision``, then each lower-memory precision the device runs (S000-7)."""
    chain = [precision]
    group = next((i for i, members in enumerate(_MEMORY_GROUPS) if precision in members), None)
    if group is None:
        return chain
    for members in _MEMORY_GROUPS[group + 1:]:
        lower = next((p for p in members if p in precisions), None)
        if lower is None:
            continue
        if task == "train" and lower not in TRAINABLE:
            break
        chain.append(lower)
    return chain


def lower_resolutions(resolution: int | None, fixed_resolution: bool = False,
                      native_resolution: int | None = None) -> list[int | None]:
    """``resolution``, then each smaller tier resolution (S000-5, scaled around the model's
    ``native_resolution``), unless the model is fixed to its size."""
    if resolution is None or fixed_resolution:
        return [resolution]
    tiers = tier_resolutions(native_resolution)
    return [resolution, *sorted({r for r in tiers if r < resolution}, reverse=True)]


def halvings(batch: int) -> list[int]:
    """``batch``, then each half of it down to 1: the ladder's batch rungs, which verify also
    climbs down when the time budget cannot cover a batch."""
    batches = [batch]
    while batches[-1] > 1:
        batches.append(batches[-1] // 2)
    return batches


def rungs(config: RunConfig, precisions: Sequence[str], fixed_resolution: bool = False,
          native_resolution: int | None = None) -> list[RunConfig]:
    """Every configuration to try, in order: ``config`` first."""
    return [
        replace(config.with_precision(precision), resolution=resolution, batch_size=batch)
        for precision in lower_precisions(config.precision, config.task, precisions)
        for resolution in lower_resolutions(config.resolution, fixed_resolution, native_resolution)
        for batch in halvings(config.batch_size)
    ]


def describe_step(failed: RunConfig, problem: str) -> str:
    return f"{failed.label()}: {problem}"
