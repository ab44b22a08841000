"""The three ways the inspector runs a PyTorch model for its figures: meta, fake, real CPU.

1. ``meta device`` (:class:`MetaDeviceMethod`): the model and its inputs on ``meta``
   (shapes only, no memory).
2. ``FakeTensorMode`` (:class:`FakeTensorMethod`): parameters as fake CPU tensors,
   buffers as fake *constants* that keep their real values, so ``.item()``, ``int(t)`` and
   ``new_full(..., t)`` on a buffer still work, and a ``ShapeEnv`` so ``.item()`` on an
   activation gives a symbol; a model that makes tensors on a fixed device
   (``torch.arange(n, device="cpu")``) runs here too. A value that decides a shape or a
   branch (``int(x.sum())``) does not.
3. a real CPU run (:class:`RealCpuMethod`): the model built for real, FP32 only.

The built module is never moved nor cast: each method swaps its own tensors in (meta,
fake) for a run and puts the originals back (:func:`swapped_tensors`), so a module the
factory did not build (a module-level instance) is left as it was and the buffers keep
their values for the next method.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from autotune_plugins.torch.io import empty_tensors, synthetic_tensors
from torch import nn

from autotune.sdk.models import ModelInputs

#: The precisions each method measures or derives, by the names the stats use.
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
#: Each method by the name ``ModelStats.method`` gives it.
METHOD_META = "meta device"
METHOD_FAKE = "FakeTensorMode"
METHOD_REAL = "a real CPU run"
#: The methods, in the order they are tried.
METHODS = (METHOD_META, METHOD_FAKE, METHOD_REAL)


def _tensor_tables(layer: nn.Module) -> tuple[tuple[dict[str, Any], bool], ...]:
    """A layer's parameters and its buffers, each with whether it holds buffers; typed as
    plain tables, for a parameter's replacement is a plain tensor until it is put back."""
    return (layer._parameters, False), (layer._buffers, True)


@contextlib.contextmanager
def swapped_tensors(module: nn.Module, replace: Callable[[torch.Tensor, bool], torch.Tensor]
                    ) -> Iterator[nn.Module]:
    """``module`` with every parameter and buffer ``t`` replaced by ``replace(t, is_buffer)``
    (a tensor shared by two layers by one replacement), put back on exit with every layer's
    training flag: the module is never left changed, so no copy of it is needed."""
    saved: list[tuple[dict[str, Any], str, torch.Tensor]] = []
    training = {layer: layer.training for layer in module.modules()}
    replacements: dict[int, torch.Tensor] = {}  # by id: the originals live on in ``saved``
    try:
        for layer in module.modules():
            for table, is_buffer in _tensor_tables(layer):
                for name, tensor in list(table.items()):
                    if tensor is None:
                        continue
                    if id(tensor) not in replacements:
                        replacements[id(tensor)] = replace(tensor, is_buffer)
                    saved.append((table, name, tensor))
                    table[name] = replacements[id(tensor)]
        yield module
    finally:
        for table, name, tensor in saved:
            table[name] = tensor
        for layer, flag in training.items():
            layer.training = flag


def _cast(tensor: torch.Tensor, precision: str) -> torch.dtype:
    return DTYPES[precision] if tensor.is_floating_point() else tensor.dtype


def _empty_like(tensor: torch.Tensor, precision: str, device: str) -> torch.Tensor:
    empty = torch.empty(tensor.shape, dtype=_cast(tensor, precision), device=device)
    return empty.requires_grad_(tensor.requires_grad and empty.is_floating_point())


class MeasuringMethod(abc.ABC):
    """One way to run the model for its figures."""

    label: str
    #: Measure every resolution the model accepts (cheap), or only the smallest (real run).
    measures_all = True
    #: Precisions measured; the others are derived by element size.
    precisions: tuple[str, ...] = ("fp32", "fp16")

    @abc.abstractmethod
    def prepared(self, precision: str) -> contextlib.AbstractContextManager[nn.Module]:
        """The module to run in ``precision``, inside this method's mode."""

    @abc.abstractmethod
    def tensors(self, inputs: ModelInputs, batch: int, precision: str) -> dict[str, torch.Tensor]:
        """The model's inputs at ``batch`` as this method feeds them."""


class MetaDeviceMethod(MeasuringMethod):
    label = METHOD_META

    def __init__(self, module: nn.Module):
        self.module = module

    def prepared(self, precision: str) -> contextlib.AbstractContextManager[nn.Module]:
        return swapped_tensors(self.module, lambda tensor, _: _empty_like(tensor, precision, "meta"))

    def tensors(self, inputs: ModelInputs, batch: int, precision: str) -> dict[str, torch.Tensor]:
        return empty_tensors(inputs, batch, "meta", DTYPES[precision])


class FakeTensorMethod(MeasuringMethod):
    label = METHOD_FAKE

    def __init__(self, module: nn.Module):
        from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: PLC0415 - private API
        from torch.fx.experimental.symbolic_shapes import ShapeEnv  # noqa: PLC0415

        self.module = module
        self.fake_mode = FakeTensorMode(allow_non_fake_inputs=True, shape_env=ShapeEnv())

    def _constant(self, tensor: torch.Tensor) -> torch.Tensor:
        """A fake tensor that keeps ``tensor``'s values, so reading one out still works."""
        try:
            return self.fake_mode.fake_tensor_converter.from_real_tensor(
                self.fake_mode, tensor, make_constant=True)
        except Exception:  # noqa: BLE001 - private API: a plain fake tensor will do
            return self.fake_mode.from_tensor(tensor)

    @contextlib.contextmanager
    def prepared(self, precision: str) -> Iterator[nn.Module]:
        # Buffers are cast for real, outside the mode, so their values survive as constants.
        buffers = {id(buffer): buffer.detach().to(_cast(buffer, precision))
                   for buffer in self.module.buffers() if not buffer.is_meta}

        def replace(tensor: torch.Tensor, is_buffer: bool) -> torch.Tensor:
            if is_buffer and id(tensor) in buffers:
                return self._constant(buffers[id(tensor)])
            return _empty_like(tensor, precision, "cpu")

        with self.fake_mode, swapped_tensors(self.module, replace) as module:
            yield module

    def tensors(self, inputs: ModelInputs, batch: int, precision: str) -> dict[str, torch.Tensor]:
        return empty_tensors(inputs, batch, "cpu", DTYPES[precision])


class RealCpuMethod(MeasuringMethod):
    label = METHOD_REAL
    measures_all = False
    precisions = ("fp32",)

    def __init__(self, build: Callable[[], nn.Module]):
        self.build = build
        self.module: nn.Module | None = None

    def prepared(self, precision: str) -> contextlib.AbstractContextManager[nn.Module]:
        if self.module is None:
            self.module = self.build().float().cpu()
        return contextlib.nullcontext(self.module)

    def tensors(self, inputs: ModelInputs, batch: int, precision: str) -> dict[str, torch.Tensor]:
        return synthetic_tensors(inputs, batch, "cpu")
