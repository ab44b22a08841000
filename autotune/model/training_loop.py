"""What a framework's training loop keeps on the GPU beyond forward, backward and the update.

A model's own framework trains it with a loop of its own: Ultralytics' trainer keeps an EMA
copy of the weights, computes a detector's loss with an assigner over batch x anchors x
objects and validates at twice the batch; timm's train and benchmark scripts let cuDNN time
its algorithms. And what such a loop prints (``torch.cuda.memory_reserved``) is the caching
allocator's reserve, above the live tensors the memory model predicts. Each loop is reviewed
data in ``profiles/memory_model.yaml`` (``training_loops``), recognised from the package the
model's class lives in; a model whose loop is not known keeps ``unknown_loop_margin`` free.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from autotune.model.stats import memory_constants


@dataclass(frozen=True)
class TrainingLoop:
    """One framework's training loop, as ``profiles/memory_model.yaml`` describes it."""

    key: str
    name: str  # as the batch decision's reason names it
    packages: tuple[str, ...]  # a model whose class lives in one of these is trained by this loop
    ema_weight_copies: int  # FP32 copies of the weights an EMA keeps (Ultralytics ModelEMA)
    validation_batch_factor: float  # the validation batch over the training batch
    extra_bytes_per_pixel: float  # a loss's own tensors (an assigner), per input pixel per sample

    def extras(self) -> str:
        """What this loop adds, in words, for the batch decision's reason."""
        parts = []
        if self.extra_bytes_per_pixel:
            parts.append(f"the loss's assigner ({self.extra_bytes_per_pixel:g} bytes per pixel per sample)")
        if self.ema_weight_copies:
            copies = "copy" if self.ema_weight_copies == 1 else "copies"
            parts.append(f"{self.ema_weight_copies} EMA weight {copies}")
        if self.validation_batch_factor > 1:
            parts.append(f"validation at {self.validation_batch_factor:g}x the batch")
        parts.append(f"the allocator's reserve (x{memory_constants()['training_reserve_factor']:g}, "
                     "cuDNN workspaces included)")
        return ", ".join(parts)


@functools.cache
def training_loops() -> dict[str, TrainingLoop]:
    """The loops of ``profiles/memory_model.yaml``, by key."""
    loops = {}
    for key, entry in memory_constants()["training_loops"].items():
        loops[key] = TrainingLoop(
            key=key,
            name=entry["name"],
            packages=tuple(entry["packages"]),
            ema_weight_copies=int(entry["ema_weight_copies"]),
            validation_batch_factor=float(entry["validation_batch_factor"]),
            extra_bytes_per_pixel=float(entry["extra_bytes_per_pixel"]),
        )
    return loops


def loop_for_package(package: str) -> str:
    """The key of the loop that trains models whose class lives in top-level ``package``
    (``ultralytics``, ``timm``, ``transformers``); "" where no loop is known for it."""
    for key, loop in training_loops().items():
        if package in loop.packages:
            return key
    return ""


def loop_named(key: str) -> TrainingLoop | None:
    """The loop ``key`` names, or None for "" (not known)."""
    return training_loops()[key] if key else None


def unknown_loop_margin() -> float:
    """The share of usable memory a model whose loop is not known keeps free."""
    return float(memory_constants()["unknown_loop_margin"])


def reserve_factor() -> float:
    """reserved / allocated in a training loop (``training_reserve_factor``)."""
    return float(memory_constants()["training_reserve_factor"])
