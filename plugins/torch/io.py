"""How the torch plugin feeds a model and reads what it returns, whatever their shape.

Inputs come from :class:`autotune.model_inputs.ModelInputs`: one tensor per named input,
passed by keyword when every name is a parameter of ``forward`` (Hugging Face models take
``input_ids=``, ``attention_mask=``), else positionally in order. Outputs may be a tensor,
a tuple or list, a dict, or a Hugging Face ``ModelOutput`` (a dict subclass, which
torch's pytree does not flatten): the accuracy check compares ``logits`` where there is
one, else the first tensor; the training loss sums every differentiable output.

A model that takes a list of images (:mod:`autotune_plugins.torch.detection`, marked
``image_list`` in its inputs) gets the batch as a list, one image each, and in training
synthetic targets beside it; its training loss is the sum of the losses it returns.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from autotune_plugins.torch.detection import synthetic_targets
from torch import nn

from autotune.sdk.models import ModelInputs, synthetic_batch

#: Output keys that hold what a model predicts, tried in order before the first tensor.
PREFERRED_OUTPUTS = ("logits",)


def forward_parameters(module: nn.Module) -> list[inspect.Parameter]:
    """``forward``'s parameters that take a tensor (not ``*args``/``**kwargs``)."""
    try:
        signature = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return []
    return [p for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def call_model(module: nn.Module, tensors: Mapping[str, torch.Tensor],
               inputs: ModelInputs | None = None) -> Any:
    """``module`` called on ``tensors``: by keyword when every name is one of ``forward``'s
    keyword parameters, else positionally in the inputs' order. Where ``inputs`` say the
    model takes a list of images, the batch goes as that list, with synthetic targets
    when the module is training."""
    if inputs is not None and inputs.image_list:
        images = list(tensors[inputs.primary.name].unbind(0))
        if module.training and inputs.targets is not None:
            return module(images, synthetic_targets(inputs.targets, images))
        return module(images)
    keywords = {p.name for p in forward_parameters(module) if p.kind != p.POSITIONAL_ONLY}
    if len(tensors) > 1 and set(tensors) <= keywords:
        return module(**tensors)
    return module(*tensors.values())


def to_tensors(arrays: Mapping[str, Any], device: str | torch.device = "cpu",
               float_dtype: torch.dtype | None = None,
               memory_format: torch.memory_format = torch.contiguous_format) -> dict[str, torch.Tensor]:
    """numpy arrays as tensors on ``device``: floats cast to ``float_dtype``, 4-D floats in
    ``memory_format``; integer and boolean inputs keep their dtype."""
    tensors = {}
    for name, array in arrays.items():
        tensor = torch.as_tensor(array).to(device)
        if tensor.is_floating_point():
            tensor = tensor.to(float_dtype or tensor.dtype)
            if tensor.dim() == 4:
                tensor = tensor.contiguous(memory_format=memory_format)
        tensors[name] = tensor
    return tensors


def synthetic_tensors(inputs: ModelInputs, batch: int, device: str | torch.device = "cpu",
                      float_dtype: torch.dtype | None = None, seed: int = 0,
                      memory_format: torch.memory_format = torch.contiguous_format
                      ) -> dict[str, torch.Tensor]:
    """Seeded synthetic inputs (see :func:`autotune.model_inputs.synthetic_batch`)."""
    return to_tensors(synthetic_batch(inputs, batch, seed), device, float_dtype, memory_format)


def empty_tensors(inputs: ModelInputs, batch: int, device: str | torch.device = "meta",
                  float_dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Uninitialised inputs (on ``meta`` by default: shapes only), floats in ``float_dtype``."""
    return {spec.name: torch.empty((batch, *spec.shape), device=device,
                                   dtype=float_dtype if spec.is_float else getattr(torch, spec.dtype))
            for spec in inputs.inputs}


def named_tensors(output: Any, path: str = "") -> list[tuple[str, torch.Tensor]]:
    if isinstance(output, torch.Tensor):
        return [(path or "output", output)]
    if isinstance(output, Mapping):  # dict, OrderedDict, a Hugging Face ModelOutput
        found = []
        for key, value in output.items():
            found += named_tensors(value, f"{path}.{key}" if path else str(key))
        return found
    if isinstance(output, (tuple, list)):
        found = []
        for index, value in enumerate(output):
            found += named_tensors(value, f"{path}[{index}]" if path else f"[{index}]")
        return found
    return []


def select_output(output: Any) -> tuple[torch.Tensor, str]:
    """The tensor the accuracy check compares, and which it is: ``logits`` where the
    output has one, else the first tensor. Raises ValueError when it holds no tensor."""
    named = named_tensors(output)
    if not named:
        raise ValueError(f"the model returned {type(output).__name__} with no tensor in it")
    if isinstance(output, torch.Tensor):
        return output, "the output tensor"
    container = type(output).__name__
    for name, tensor in named:
        if name.rpartition(".")[2] in PREFERRED_OUTPUTS:
            return tensor, f"{name} of {container} ({len(named)} tensors)"
    name, tensor = named[0]
    return tensor, f"{name}, the first tensor of {container} ({len(named)} tensors)"


def training_loss(output: Any, inputs: ModelInputs | None = None) -> torch.Tensor:
    """A synthetic loss: the sum over every differentiable output of its mean square (an
    MSE against zeros), so backward reaches every head of the model. A model trained on
    targets (``inputs.targets``) returns its own losses: their sum."""
    if inputs is not None and inputs.targets is not None and isinstance(output, Mapping):
        losses = [tensor.float().sum() for _, tensor in named_tensors(output)]
        if not losses:
            raise ValueError(f"the model returned {type(output).__name__} with no loss in it")
        return torch.stack(losses).sum()
    parts = [tensor.float().square().mean() for _, tensor in named_tensors(output)
             if tensor.requires_grad and tensor.is_floating_point()]
    if not parts:
        raise ValueError("no output of the model is differentiable, so it cannot be trained")
    return torch.stack(parts).sum()
