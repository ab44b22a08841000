"""Measure a PyTorch model without running it for real: FLOPs, activations, traffic.

The model is built on the ``meta`` device (shapes, no memory, no weights initialised) and
run through PyTorch's own tools: ``torch.utils.flop_counter.FlopCounterMode`` counts the
FLOPs, ``torch.autograd.graph.saved_tensors_hooks`` sees every tensor autograd keeps for
backward, and a ``TorchDispatchMode`` follows every tensor an inference pass creates and
frees, for its peak. The same functions run on real CPU tensors, which is how the tests
check them. Part of the torch plugin (its ``autotune_model_inspectors`` hook): it imports
torch, and is imported only when a model outside ``profiles/models.yaml`` is asked for.
"""

from __future__ import annotations

import importlib
import weakref
from collections.abc import Callable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from autotune.errors import UserError
from autotune.model_source import ModelSource, shape_at_resolution
from autotune.model_stats import ModelStats, ResolutionStats

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def _storage_key(tensor: torch.Tensor) -> int:
    # The StorageImpl's address: shared by views, distinct per allocation, on every device.
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


def _forward_error(error: Exception, name: str, shape: tuple[int, ...]) -> UserError:
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return UserError(f"input shape {','.join(map(str, shape))} does not fit model {name} "
                     f"({first_line}); pass --input-shape C,H,W as the model expects")


def inference_memory(module: nn.Module, sample: torch.Tensor) -> MemoryTracer:
    """Run one inference pass, following every tensor it creates (the input included)."""
    tracer = MemoryTracer(_weight_keys(module))
    module.eval()
    with torch.inference_mode(), tracer:
        tracer.track(sample)
        output = module(sample)
        del output
    return tracer


def saved_for_backward_bytes(module: nn.Module, sample: torch.Tensor) -> int:
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
        output = module(sample)
        del output
    return sum(saved.values())


def flops(module: nn.Module, sample: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    module.eval()
    with torch.inference_mode(), counter:
        module(sample)
    return int(counter.get_total_flops())


def family_of(module: nn.Module) -> str:
    kinds = {type(m).__name__.lower() for m in module.modules()}
    if any("attention" in kind for kind in kinds):
        return "transformer"
    if any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules()):
        return "cnn"
    return "other"


def guess_input_shape(module: nn.Module) -> tuple[int, ...] | None:
    """One sample's shape from the first layer: a Conv2d -> (C, 224, 224), a Linear -> (F,)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            return (layer.in_channels, 224, 224)
        if isinstance(layer, nn.Linear):
            return (layer.in_features,)
        if isinstance(layer, (nn.Conv1d, nn.Conv3d, nn.Embedding)):
            return None
    return None


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


def build_on_meta(factory: Callable[[], object], name: str) -> nn.Module:
    """Call ``factory`` with meta as the default device (no memory, no init work); if
    the factory cannot build there (it loads weights, say), build on the CPU and move."""
    try:
        with torch.device("meta"):
            module = factory()
    except Exception:  # noqa: BLE001 - any failure means "retry for real"
        module = None
    if not isinstance(module, nn.Module) or any(not p.is_meta for p in module.parameters()):
        module = call_factory(factory, name)
    return module.to("meta")


def build_seeded(source: ModelSource) -> nn.Module:
    """The model for real, as every torch-side consumer builds it: seed 0 (so the runner
    and the ONNX converter hold the same weights), FP32, on the CPU. The caller's random
    state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = call_factory(factory_for(source), source.spec)
    return module.float().cpu()


def factory_for(source: ModelSource) -> Callable[[], object]:
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
        return lambda: target
    if not callable(target):
        raise UserError(f"{source.spec} is not callable; point --model at a function or class "
                        "that returns a torch.nn.Module")
    return target  # type: ignore[return-value]


def _sample(shape: tuple[int, ...], batch: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.empty((batch, *shape), device="meta", dtype=dtype)


def measure_resolution(module: nn.Module, shape: tuple[int, ...], resolution: int | None,
                       trainable: bool = True) -> tuple[ResolutionStats, int]:
    """Per-sample stats at one input shape (batch 2 minus batch 1), and the operator count."""
    infer, train, traffic = {}, {}, {}
    operators = 0
    for label, dtype in DTYPES.items():
        module.to(dtype)
        one = inference_memory(module, _sample(shape, 1, dtype))
        two = inference_memory(module, _sample(shape, 2, dtype))
        infer[label] = two.peak_bytes - one.peak_bytes
        traffic[label] = two.traffic_bytes - one.traffic_bytes
        operators = operators or one.operators
        if trainable:
            train[label] = (saved_for_backward_bytes(module, _sample(shape, 2, dtype))
                            - saved_for_backward_bytes(module, _sample(shape, 1, dtype)))
    module.to(torch.float32)
    stats = ResolutionStats(
        resolution=resolution,
        flops_per_sample=flops(module, _sample(shape, 1, torch.float32)),
        infer_activation_bytes=infer,
        train_activation_bytes=train,
        traffic_bytes=traffic,
    )
    return stats, operators


def inspect_module(module: nn.Module, name: str, source_text: str, input_shape: tuple[int, ...],
                   resolutions: tuple[int, ...]) -> ModelStats:
    """Stats for a built module (on meta or CPU) at each resolution it accepts."""
    module = module.to("meta")
    try:
        with torch.inference_mode():
            module.eval()(_sample(input_shape, 1, torch.float32))
    except Exception as error:  # noqa: BLE001 - the model's own shape checks
        raise _forward_error(error, name, input_shape) from None
    image = len(input_shape) == 3
    accepted: list[int | None] = []
    if image:
        for resolution in sorted(set(resolutions) | {input_shape[1]}):
            try:
                with torch.inference_mode():
                    module(_sample(shape_at_resolution(input_shape, resolution), 1, torch.float32))
                accepted.append(resolution)
            except Exception:  # noqa: BLE001 - a model fixed to its native size (ViT)
                continue
    else:
        accepted = [None]
    measured, operators = [], 0
    for resolution in accepted:
        shape = input_shape if resolution is None else shape_at_resolution(input_shape, resolution)
        try:
            stats, count = measure_resolution(module, shape, resolution)
        except Exception as error:  # noqa: BLE001 - the model's own code, on the meta device
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise UserError(f"measuring {name} without real memory failed ({first_line}); a model "
                            "that makes tensors on a fixed device cannot be inspected on 'meta'") from None
        measured.append(stats)
        if resolution in (None, input_shape[-2] if image else None):
            operators = count
    return ModelStats(
        name=name,
        source=source_text,
        parameters=sum(p.numel() for p in module.parameters()),
        input_shape=tuple(input_shape),
        family=family_of(module),
        fixed_resolution=image and accepted == [input_shape[1]],
        kernel_launches=operators or 1,
        resolutions=tuple(measured),
    )


def inspect_source(source: ModelSource, resolutions: tuple[int, ...]) -> ModelStats:
    factory = factory_for(source)
    module = build_on_meta(factory, source.spec)
    shape = source.input_shape or (
        (3, 224, 224) if source.kind == "reference" else guess_input_shape(module)
    )
    if shape is None:
        raise UserError(f"cannot guess the input shape of {source.spec}; pass --input-shape, "
                        "e.g. --input-shape 3,224,224 (one sample, no batch dimension)")
    label = (f"torchvision.models.{source.spec} (weights=None)" if source.kind == "reference"
             else source.spec)
    return inspect_module(module, source.spec, label, shape, resolutions)
