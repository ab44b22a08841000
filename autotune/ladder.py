"""The out-of-memory ladder of S000-7: smaller batch, then lower resolution, then precision.

A finite list of rungs, tried in order, so it can never loop forever; each failure is
recorded as a step, and the caller says what finally fit.
"""

from __future__ import annotations

from dataclasses import replace

from autotune.backend_api import RunConfig
from autotune.model_source import TIER_RESOLUTIONS

# A lower-precision model is the last resort (S000-7); training only steps to half precision.
_NEXT_PRECISION = {"fp32": "bf16", "tf32": "bf16", "bf16": "fp16", "fp16": "int8", "int8": "int4"}
_TRAINABLE = ("fp32", "tf32", "bf16", "fp16")


def _halvings(batch: int) -> list[int]:
    batches = [batch]
    while batches[-1] > 1:
        batches.append(batches[-1] // 2)
    return batches


def rungs(config: RunConfig, precisions: tuple[str, ...] | list[str],
          fixed_resolution: bool = False) -> list[RunConfig]:
    """Every configuration to try, in order: ``config`` first."""
    chain = [config.precision]
    while chain[-1] in _NEXT_PRECISION:
        lower = _NEXT_PRECISION[chain[-1]]
        if config.task == "train" and lower not in _TRAINABLE:
            break
        chain.append(lower)
    chain = [chain[0], *(p for p in chain[1:] if p in precisions)]
    resolutions = [config.resolution]
    if config.resolution is not None and not fixed_resolution:
        resolutions += sorted((r for r in TIER_RESOLUTIONS if r < config.resolution), reverse=True)
    return [
        replace(config.with_precision(precision) if precision != config.precision else config,
                resolution=resolution, batch_size=batch)
        for precision in chain for resolution in resolutions for batch in _halvings(config.batch_size)
    ]


def describe_step(failed: RunConfig, problem: str) -> str:
    return f"{failed.label()}: {problem}"
