"""Build the user's PyTorch model: without its weights' memory to inspect it, or seeded for real.

:func:`build_empty` calls the user's factory with ``nn.Module.register_parameter`` patched
so each parameter moves to the meta device as it is registered: the technique of
Accelerate's ``init_empty_weights(include_buffers=False)`` (``init_on_device`` in its
``big_modeling.py``), which keeps each parameter's class, ``__dict__`` and
``requires_grad``. Not inside ``with torch.device("meta")``: that makes *every* tensor
created meanwhile a meta tensor, the class-level tensors of a library the factory imports
lazily too (``class Anchors: GRID = torch.arange(8.)``), and those stay meta for the rest
of the process, so the user's real runs later fail with "Cannot copy out of meta tensor".
Buffers are built on the CPU: they are small, and their values matter to the
FakeTensorMode step (a detector's strides). A factory that fails under the patch is built
on the CPU for real; only one whose parameter is too large to allocate even for the moment
before it moves is built under ``torch.device("meta")``, once the first attempt has
imported its libraries (their tensors on the CPU).

A module-level instance named directly is deep-copied (:func:`factory_for`), so no
consumer changes the user's object; :func:`build_seeded` builds the model as every
torch-side consumer does (the inspector's real run, the runner, the ONNX converter).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import nn

from autotune.sdk import UserError
from autotune.sdk.models import ModelSource


def call_factory(factory: Callable[[], object], name: str) -> nn.Module:
    """The user's factory, called: what it raises, or a result that is not a module, is a
    one-line :class:`UserError` naming the model."""
    try:
        module = factory()
    except Exception as error:  # noqa: BLE001 - the user's code: report, don't crash
        raise UserError(f"building model {name} failed: {type(error).__name__}: {error}; "
                        "check the callable runs on its own") from None
    if not isinstance(module, nn.Module):
        raise UserError(f"{name} returned {type(module).__name__}, not a torch.nn.Module; "
                        "point --model at a callable that returns the model")
    return module


def _on_meta(parameter: nn.Parameter) -> nn.Parameter:
    """``parameter`` on meta, of its own class, with its attributes and ``requires_grad``
    (as Accelerate's ``init_on_device`` moves it)."""
    if parameter.is_meta:  # already moved: a tied weight registered twice stays one object
        return parameter
    attributes = dict(parameter.__dict__)
    attributes["requires_grad"] = parameter.requires_grad
    try:
        return type(parameter)(parameter.to("meta"), **attributes)
    except TypeError:  # a Parameter subclass whose constructor takes other arguments
        return nn.Parameter(parameter.to("meta"), requires_grad=parameter.requires_grad)


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Every parameter registered meanwhile moves to meta as it is registered; buffers and
    every other tensor are made where the code says (the CPU)."""
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, parameter: nn.Parameter | None) -> None:
        register(module, name, parameter)
        registered = module._parameters[name]  # as the registration hooks left it
        if parameter is not None and registered is not None:
            module._parameters[name] = _on_meta(registered)

    nn.Module.register_parameter = register_on_meta  # type: ignore[method-assign]
    try:
        # A factory that loads weights copies them into meta parameters: a no-op, as meant.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter")
            yield
    finally:
        nn.Module.register_parameter = register  # type: ignore[method-assign]


def _allocation_failed(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or "allocate" in str(error)


def build_empty_and_whether_shared(factory: Callable[[], object], name: str) -> tuple[nn.Module, bool]:
    """:func:`build_empty`, and whether the module is one the factory did not build."""
    try:
        with parameters_on_meta():
            module = factory()
    except Exception as error:  # noqa: BLE001 - any failure means "build it another way"
        module = None
        if _allocation_failed(error):
            # One parameter too large to allocate even for a moment (the patch moves each
            # after it is made): only the meta device builds it. The libraries the factory
            # imports were imported by the attempt above, their tensors on the CPU.
            with contextlib.suppress(Exception), torch.device("meta"):
                module = factory()
    if isinstance(module, nn.Module):
        # Parameters that are not meta were not registered by this call: the factory handed
        # out a module that exists outside it (or moved them itself).
        return module, any(not parameter.is_meta for parameter in module.parameters())
    return call_factory(factory, name), False


def build_empty(factory: Callable[[], object], name: str) -> nn.Module:
    """The model built under :func:`parameters_on_meta` (parameters on meta, buffers on the
    CPU); for a factory that fails under the patch, the model built for real on the CPU.
    What the factory returns is never changed by the inspection: every method runs on
    tensors swapped in for the duration and swapped back
    (:func:`autotune_plugins.torch.measuring_methods.swapped_tensors`)."""
    return build_empty_and_whether_shared(factory, name)[0]


def build_seeded(source: ModelSource, own_copy: bool = False) -> nn.Module:
    """The model for real, as every torch-side consumer builds it: seed 0 (so the runner
    and the ONNX converter hold the same weights), FP32, on the CPU. The caller's random
    state is left as it was. ``own_copy`` deep-copies what the factory returns first: for
    a factory that returns a module the user's code holds."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = call_factory(factory_for(source), source.spec)
    if own_copy:
        module = copy.deepcopy(module)
    return module.float().cpu()


def factory_for(source: ModelSource) -> Callable[[], object]:
    """What builds ``source``'s model. A module instance named by ``package.module:name``
    is deep-copied at each call (where it can be), so no consumer changes the user's object."""
    if source.kind == "reference":
        import torchvision  # noqa: PLC0415

        return lambda: torchvision.models.get_model(source.spec, weights=None)
    module_name, _, attribute_path = source.spec.partition(":")
    try:
        target: object = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - ImportError and whatever the module raises
        raise UserError(f"cannot import {module_name} for model {source.spec}: {error}; check "
                        "the module is on PYTHONPATH") from None
    for attribute in attribute_path.split("."):
        if not hasattr(target, attribute):
            raise UserError(f"{module_name} has no {attribute_path}; check the name after ':'")
        target = getattr(target, attribute)
    if isinstance(target, nn.Module):
        instance = target

        def copy_of_instance() -> nn.Module:
            try:
                return copy.deepcopy(instance)
            except Exception:  # noqa: BLE001 - it holds something uncopyable: hand it out as is
                return instance

        return copy_of_instance
    if not callable(target):
        raise UserError(f"{source.spec} is not callable; point --model at a function or class "
                        "that returns a torch.nn.Module")
    return target  # type: ignore[return-value]
