"""``autotune.apply(model, optimizer)``: a model placed and cast as this machine's training
configuration says, with the autocast context and the loss scaler that go with it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, NamedTuple

from autotune.training.config import process_config, warn


class Applied(NamedTuple):
    """What :func:`apply` returns; unpacks as ``model, autocast, scaler``.

    ``autocast()`` makes a fresh autocast context for one forward pass (a no-op context when
    the configuration has no mixed precision); ``scaler`` is a ``torch.amp.GradScaler``,
    enabled only for FP16 training (BF16 and FP32 need no loss scaling, S003-1)."""

    model: Any
    autocast: Callable[[], contextlib.AbstractContextManager]
    scaler: Any


def apply(model, optimizer=None, config=None, task: str = "train") -> Applied:
    """``model`` on the configuration's device, in channels-last memory format where it
    chose that, cast to the low precision for inference (``task="infer"``); for training the
    weights stay FP32 and ``autocast()`` runs the forward pass in the chosen dtype.

    :param optimizer: accepted so a script can pass its optimizer; created after the model
        is placed, an optimizer holds the right parameters already, so nothing is done to it.
    :param config: a :class:`autotune.training.config.TrainingConfig`; default the one
        ``import autotune.auto`` loaded (loaded now if it was not imported).

    Where the configuration chose CUDA and torch sees no GPU, the model goes to the CPU with
    one warning saying why (:func:`autotune.hardware.driver_support.cuda_unavailable_reason`).
    """
    import torch  # noqa: PLC0415 - only a script that applies has torch

    if config is None:
        config = process_config()  # the one ``import autotune.auto`` loaded, or loaded now
    device = "cuda" if config.device == "cuda" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        # Not silently: a driver too old for this torch's CUDA is fixed by one pip command.
        from autotune.hardware.driver_support import cuda_unavailable_reason  # noqa: PLC0415 - the rare path

        warn(f"the configuration chose CUDA, but {cuda_unavailable_reason()}; the model runs on the CPU")
        device = "cpu"
    model = model.to(device)
    if config.channels_last and _has_convolutions(model):
        model = model.to(memory_format=torch.channels_last)
    dtype = config.amp_dtype if config.amp else None
    if task == "infer" and dtype is not None:
        model = model.to(dtype)  # inference casts the model itself (S001-5)
    training_autocast = task == "train" and dtype is not None

    def autocast() -> contextlib.AbstractContextManager:
        if not training_autocast:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device, dtype=dtype)

    scaler = torch.amp.GradScaler(device, enabled=task == "train" and config.grad_scaler
                                  and config.amp_dtype_name == "float16" and device == "cuda")
    return Applied(model, autocast, scaler)


def _has_convolutions(model) -> bool:
    import torch  # noqa: PLC0415

    return any(isinstance(module, torch.nn.modules.conv._ConvNd) for module in model.modules())
