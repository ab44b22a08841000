"""What one forward pass of a PyTorch model costs, counted as it runs: FLOPs and memory.

``torch.utils.flop_counter.FlopCounterMode`` counts the FLOPs;
``torch.autograd.graph.saved_tensors_hooks`` sees every tensor autograd keeps for backward;
:class:`MemoryTracer` (a ``TorchDispatchMode``) follows every tensor an inference pass
creates and frees, for its peak and the bytes the operators read and write. Each works on
meta and fake tensors as on real ones, so the inspector's three methods share them.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import NamedTuple

import torch
from autotune_plugins.torch.io import call_model
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from autotune.sdk.models import ModelInputs

#: One tensor (one input), or tensors by input name.
Inputs = torch.Tensor | Mapping[str, torch.Tensor]


def _storage_key(tensor: torch.Tensor) -> int:
    # The StorageImpl's address: shared by views, distinct per allocation, on every device
    # (meta and fake tensors included).
    return tensor.untyped_storage()._cdata


class MemoryTracer(TorchDispatchMode):
    """Follows every tensor the operators create: live bytes, their peak, bytes moved.

    Tensors are released when Python frees them (a weakref finalizer per tensor, counted
    per storage, so a view keeps its base alive). ``ignored`` storages (the weights) are
    not activations.
    """

    def __init__(self, ignored: set[int]):
        super().__init__()
        self.ignored = ignored
        self.storages: dict[int, list[int]] = {}  # key -> [bytes, live tensors]
        self.tracked: set[int] = set()
        self.live_bytes = 0
        self.peak_bytes = 0
        self.traffic_bytes = 0
        self.operators = 0

    def track(self, tensor: torch.Tensor) -> None:
        if id(tensor) in self.tracked:
            return
        key = _storage_key(tensor)
        if key in self.ignored:
            return
        self.tracked.add(id(tensor))
        entry = self.storages.get(key)
        if entry is None:
            entry = self.storages[key] = [tensor.untyped_storage().nbytes(), 0]
            self.live_bytes += entry[0]
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        entry[1] += 1
        weakref.finalize(tensor, self._release, key, id(tensor))

    def _release(self, key: int, tensor_id: int) -> None:
        self.tracked.discard(tensor_id)
        entry = self.storages[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.live_bytes -= entry[0]
            del self.storages[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        outputs = [t for t in tree_flatten(result)[0] if isinstance(t, torch.Tensor)]
        input_keys = {_storage_key(t) for t in inputs}
        created = [t for t in outputs if _storage_key(t) not in input_keys]
        if created:  # views and in-place operators launch no kernel of their own
            self.operators += 1
            self.traffic_bytes += sum(t.nelement() * t.element_size() for t in inputs)
            self.traffic_bytes += sum(t.nelement() * t.element_size() for t in created)
        for tensor in outputs:
            self.track(tensor)
        return result


def _weight_keys(module: nn.Module) -> set[int]:
    return {_storage_key(t) for t in [*module.parameters(), *module.buffers()]}


def _named(inputs: Inputs) -> dict[str, torch.Tensor]:
    return {"input": inputs} if isinstance(inputs, torch.Tensor) else dict(inputs)


def inference_memory(module: nn.Module, inputs: Inputs, layout: ModelInputs | None = None) -> MemoryTracer:
    """Run one inference pass, following every tensor it creates (the inputs included).
    ``layout`` (here and below) says how the model takes them (see :func:`call_model`)."""
    tensors = _named(inputs)
    tracer = MemoryTracer(_weight_keys(module))
    module.eval()
    with torch.inference_mode(), tracer:
        for tensor in tensors.values():
            tracer.track(tensor)
        output = call_model(module, tensors, layout)
        del output
    return tracer


def saved_for_backward_bytes(module: nn.Module, inputs: Inputs, layout: ModelInputs | None = None) -> int:
    """Bytes autograd keeps for backward in one training forward, weights excluded."""
    weights = _weight_keys(module)
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = _storage_key(tensor)
        if key not in weights:
            saved[key] = tensor.untyped_storage().nbytes()
        return tensor

    module.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = call_model(module, _named(inputs), layout)
        del output
    return sum(saved.values())


class FlopCount(NamedTuple):
    """One inference forward's FLOPs, and the parts of them in convolutions and in attention."""

    total: int
    convolution: int
    attention: int
    has_attention: bool  # the model has attention layers (counted or not)
    has_convolution: bool


def attention_layers(module: nn.Module) -> list[str]:
    """The qualified names of the outermost layers whose class says attention
    (``MultiheadAttention``, timm's ``Attention``, ``CLIPAttention``, ``WhisperSdpaAttention``)."""
    names: list[str] = []
    for name, layer in module.named_modules():
        # Not the model itself: its class name says what it is for, not where attention runs.
        if name and "attention" in type(layer).__name__.lower() and not any(
                name.startswith(f"{outer}.") for outer in names):
            names.append(name)
    return names


def flop_count(module: nn.Module, inputs: Inputs, layout: ModelInputs | None = None) -> FlopCount:
    """FLOPs of one inference forward (a multiply-add counts 2), with the convolutions' part
    (every ``aten.convolution``) and the attention layers' (what runs inside them, their
    projections included). ``MultiheadAttention``'s fused inference path, which
    FlopCounterMode does not see, is turned off while counting."""
    counter = FlopCounterMode(display=False)
    module.eval()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.inference_mode(), counter:
            call_model(module, _named(inputs), layout)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    by_layer = counter.get_flop_counts()  # "Global", then "<root class>.<qualified name>"
    root = type(module).__name__
    convolution = sum(count for op, count in by_layer.get("Global", {}).items() if "convolution" in str(op))
    layers = attention_layers(module)
    attention = sum(sum(by_layer.get(f"{root}.{name}" if name else root, {}).values()) for name in layers)
    has_convolution = any(isinstance(layer, nn.modules.conv._ConvNd) for layer in module.modules())
    return FlopCount(int(counter.get_total_flops()), int(convolution), int(attention),
                     bool(layers), has_convolution)


def flops(module: nn.Module, inputs: Inputs, layout: ModelInputs | None = None) -> int:
    """FLOPs of one inference forward (a multiply-add counts 2)."""
    return flop_count(module, inputs, layout).total
