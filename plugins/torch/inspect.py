"""Measure a PyTorch model, without running it for real where it can: FLOPs, activations, traffic.

**Building.** The user's factory is called with ``nn.Module.register_parameter`` patched so
each parameter moves to the meta device as it is registered: the technique of Accelerate's
``init_empty_weights(include_buffers=False)`` (``init_on_device`` in its
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

The built module is never moved nor cast: each method swaps its own tensors in (meta,
fake) for a run and puts the originals back (:func:`swapped_tensors`), so a module the
factory did not build (a module-level instance) is left as it was and the buffers keep
their values for the next method. A module-level instance named directly is deep-copied
(:func:`factory_for`); the real CPU run trains a copy of a module the factory handed out.

**Measuring.** Three methods, tried in order; the first that runs the model gives every
figure, and ``ModelStats.method`` says which:

1. ``meta device``: the model and its inputs on ``meta`` (shapes only, no memory).
2. ``FakeTensorMode``: parameters as fake CPU tensors, buffers as fake *constants* that
   keep their real values, so ``.item()``, ``int(t)`` and ``new_full(..., t)`` on a
   buffer still work, and a ``ShapeEnv`` so ``.item()`` on an activation gives a symbol;
   a model that makes tensors on a fixed device (``torch.arange(n, device="cpu")``) runs
   here too. A value that decides a shape or a branch (``int(x.sum())``) does not.
3. a real CPU run: the model built as every consumer builds it (:func:`build_seeded`),
   batch 1 and 2 at the smallest resolution it accepts (or its sequence length), FP32
   only. FP16 figures are the FP32 ones halved (element size); only that resolution is
   stored, and :meth:`ModelStats.at` scales the others by area.

If none runs, one :class:`UserError` says what each said. Each uses the same tools:
``torch.utils.flop_counter.FlopCounterMode`` counts the FLOPs,
``torch.autograd.graph.saved_tensors_hooks`` sees every tensor autograd keeps for
backward, and :class:`MemoryTracer` (a ``TorchDispatchMode``) follows every tensor an
inference pass creates and frees, for its peak. Per-sample figures are batch 2 minus
batch 1. Inputs come from :class:`autotune.model_inputs.ModelInputs` (several named inputs;
integer inputs stay integers when the model is cast to FP16) and are fed, and outputs of
any shape read, through :mod:`autotune_plugins.torch.io`.

Part of the torch plugin (its ``autotune_model_inspectors`` hook): it imports torch, and
is imported only when a model outside ``profiles/models.yaml`` is asked for.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import importlib
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from autotune_plugins.torch.io import (
    call_model,
    empty_tensors,
    forward_parameters,
    select_output,
    synthetic_tensors,
)
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from autotune.errors import UserError, one_line
from autotune.model.source import ModelSource
from autotune.model.stats import ModelStats, ResolutionStats
from autotune.model_inputs import InputSpec, ModelInputs, default_values, from_shape, tier_resolutions

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
#: What the torchvision reference models take.
REFERENCE_INPUT_SHAPE = (3, 224, 224)
#: Guessed when nothing says: the reference models' size, a common tokenizer window.
GUESSED_RESOLUTION = 224
GUESSED_SEQUENCE_LENGTH = 128
#: forward parameters with a default that a text model is still given (Hugging Face's).
TOKEN_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
METHOD_META = "meta device"
METHOD_FAKE = "FakeTensorMode"
METHOD_REAL = "a real CPU run"
#: The methods, in the order they are tried.
METHODS = (METHOD_META, METHOD_FAKE, METHOD_REAL)
#: An error quoted from the model is cut to about this many characters.
REASON_MAX_CHARS = 150

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


def inference_memory(module: nn.Module, inputs: Inputs) -> MemoryTracer:
    """Run one inference pass, following every tensor it creates (the inputs included)."""
    tensors = _named(inputs)
    tracer = MemoryTracer(_weight_keys(module))
    module.eval()
    with torch.inference_mode(), tracer:
        for tensor in tensors.values():
            tracer.track(tensor)
        output = call_model(module, tensors)
        del output
    return tracer


def saved_for_backward_bytes(module: nn.Module, inputs: Inputs) -> int:
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
        output = call_model(module, _named(inputs))
        del output
    return sum(saved.values())


def flops(module: nn.Module, inputs: Inputs) -> int:
    """FLOPs of one inference forward (a multiply-add counts 2)."""
    counter = FlopCounterMode(display=False)
    module.eval()
    with torch.inference_mode(), counter:
        call_model(module, _named(inputs))
    return int(counter.get_total_flops())


def family_of(module: nn.Module) -> str:
    kinds = {type(m).__name__.lower() for m in module.modules()}
    if any("attention" in kind for kind in kinds):
        return "transformer"
    if any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules()):
        return "cnn"
    return "other"


# --- the input description -------------------------------------------------------------

def _first_layer(module: nn.Module) -> nn.Module | None:
    for layer in module.modules():
        if isinstance(layer, (nn.modules.conv._ConvNd, nn.Linear, nn.Embedding)):
            return layer
    return None


def declared_image_size(module: nn.Module) -> tuple[tuple[int, int] | None, str]:
    """(height, width) where the model says its own input size, and where it says it: a
    Hugging Face ``config.image_size``, timm's ``pretrained_cfg['input_size']``, an
    Ultralytics model's ``args['imgsz']``. (None, "") when it does not."""
    def pair(value: object) -> tuple[int, int] | None:
        if isinstance(value, int) and value > 0:
            return value, value
        if isinstance(value, (tuple, list)) and len(value) in (2, 3) and all(
                isinstance(v, int) and v > 0 for v in value):
            return int(value[-2]), int(value[-1])
        return None

    config = getattr(module, "config", None)
    found = [(pair(getattr(config, "image_size", None)), "config.image_size")]
    for attribute in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(module, attribute, None)
        if isinstance(cfg, dict):
            found.append((pair(cfg.get("input_size")), f"{attribute}['input_size']"))
    args = getattr(module, "args", None)
    if isinstance(args, dict):
        found.append((pair(args.get("imgsz")), "args['imgsz']"))
    return next(((size, where) for size, where in found if size is not None), (None, ""))


def _guess(module: nn.Module) -> tuple[ModelInputs | None, str]:
    """The inputs the first layer says the model takes, or None and why not."""
    parameters = forward_parameters(module)
    required = [p.name for p in parameters if p.default is p.empty]
    layer = _first_layer(module)
    if isinstance(layer, nn.Embedding):
        names = [p.name for p in parameters
                 if p.default is p.empty or p.name in TOKEN_INPUT_NAMES] or ["input_ids"]
        specs = []
        for name in names:
            values = default_values(name, "int64")
            high = layer.num_embeddings if values == "tokens" else None
            specs.append(InputSpec(name, (GUESSED_SEQUENCE_LENGTH,), "int64", ("sequence",), values, high))
        guess = (f"inputs guessed from the first Embedding ({layer.num_embeddings} tokens) as "
                 f"{', '.join(names)}: int64[S={GUESSED_SEQUENCE_LENGTH}], the sequence length "
                 f"{GUESSED_SEQUENCE_LENGTH} guessed; pass --input-spec if the model expects others")
        return ModelInputs(tuple(specs)).with_guess(guess), ""
    if layer is None:
        return None, "it has no Conv2d, Linear or Embedding layer to read them from"
    if len(required) > 1:
        return None, (f"its forward takes {', '.join(required)}, and the first layer says what "
                      "only one of them is")
    name = parameters[0].name if parameters else "input"
    if isinstance(layer, nn.Conv2d):
        declared, where = declared_image_size(module)
        shape = (layer.in_channels, *(declared or (GUESSED_RESOLUTION, GUESSED_RESOLUTION)))
        if declared is not None:
            return from_shape(shape, name).with_guess(
                f"input {'x'.join(map(str, shape))}: the size from the model's {where}, the channels "
                "from the first Conv2d"), ""
        return from_shape(shape, name).with_guess(
            f"input guessed as {'x'.join(map(str, shape))} from the first Conv2d; pass "
            "--input-shape or --input-spec if the model expects another size"), ""
    if isinstance(layer, nn.Linear):
        return from_shape((layer.in_features,), name).with_guess(
            f"input guessed as {layer.in_features} features from the first Linear; pass "
            "--input-shape or --input-spec if the model expects another shape"), ""
    return None, f"its first layer is a {type(layer).__name__}"


def guess_inputs(module: nn.Module) -> ModelInputs | None:
    """The inputs the first layer says the model takes, named after ``forward``'s parameters,
    each guess said in ``guesses``: a Conv2d -> one C x 224 x 224 image; an Embedding ->
    int64 token ids (below its vocabulary) and masks of ones, 128 long; a Linear -> its
    features. None when the first layer is another kind, or ``forward`` takes more inputs
    than the first layer describes."""
    return _guess(module)[0]


def guess_input_shape(module: nn.Module) -> tuple[int, ...] | None:
    """One float input's shape, from :func:`guess_inputs`; None for anything else."""
    guessed = guess_inputs(module)
    if guessed is None or len(guessed.inputs) != 1 or not guessed.primary.is_float:
        return None
    return guessed.primary.shape


def model_inputs_for(source: ModelSource, module: nn.Module) -> ModelInputs:
    """What ``source`` takes: what the user said, the reference models' 3 x 224 x 224
    image, or a guess from ``module`` (built on meta is fine)."""
    if source.inputs is not None:
        return source.inputs
    if source.kind == "reference":
        return from_shape(REFERENCE_INPUT_SHAPE)
    guessed, why_not = _guess(module)
    if guessed is None:
        raise UserError(f"cannot guess the inputs of {source.spec} ({why_not}); pass --input-shape "
                        "C,H,W for one image, or --input-spec for any inputs, e.g. "
                        "--input-spec 'image:float32[3,H=224,W=224]; extra:float32[8]'")
    return guessed


# --- building ----------------------------------------------------------------------------

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


def _build_empty(factory: Callable[[], object], name: str) -> tuple[nn.Module, bool]:
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
    tensors swapped in for the duration and swapped back (:func:`swapped_tensors`)."""
    return _build_empty(factory, name)[0]


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


# --- the three methods -------------------------------------------------------------------

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


class _Method(abc.ABC):
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


class _OnMeta(_Method):
    label = METHOD_META

    def __init__(self, module: nn.Module):
        self.module = module

    def prepared(self, precision: str) -> contextlib.AbstractContextManager[nn.Module]:
        return swapped_tensors(self.module, lambda tensor, _: _empty_like(tensor, precision, "meta"))

    def tensors(self, inputs: ModelInputs, batch: int, precision: str) -> dict[str, torch.Tensor]:
        return empty_tensors(inputs, batch, "meta", DTYPES[precision])


class _Faked(_Method):
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


class _OnCpu(_Method):
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


@dataclass
class _Measured:
    method: str
    accepted: list[int | None]
    resolutions: list[ResolutionStats]
    operators: int
    output: str


def _reason(error: BaseException) -> str:
    """An error in one short line: its message's first line, cut at a word."""
    return one_line(str(error), REASON_MAX_CHARS) or type(error).__name__


def _forward(method: _Method, module: nn.Module, inputs: ModelInputs) -> Any:
    module.eval()
    with torch.inference_mode():
        return call_model(module, method.tensors(inputs, 1, "fp32"))


def _measure(method: _Method, inputs: ModelInputs, resolution: int | None) -> tuple[ResolutionStats, int]:
    """Per-sample stats at one input size (batch 2 minus batch 1), and the operator count."""
    infer, train, traffic = {}, {}, {}
    operators = 0
    for precision in method.precisions:
        with method.prepared(precision) as module:
            one = inference_memory(module, method.tensors(inputs, 1, precision))
            two = inference_memory(module, method.tensors(inputs, 2, precision))
            infer[precision] = two.peak_bytes - one.peak_bytes
            traffic[precision] = two.traffic_bytes - one.traffic_bytes
            operators = operators or one.operators
            train[precision] = (saved_for_backward_bytes(module, method.tensors(inputs, 2, precision))
                                - saved_for_backward_bytes(module, method.tensors(inputs, 1, precision)))
    measured = method.precisions[0]
    for precision in DTYPES:
        if precision not in method.precisions:  # by element size: FP16 is half of FP32
            ratio = DTYPES[precision].itemsize / DTYPES[measured].itemsize
            for figures in (infer, train, traffic):
                figures[precision] = int(figures[measured] * ratio)
    with method.prepared("fp32") as module:
        flop_count = flops(module, method.tensors(inputs, 1, "fp32"))
    stats = ResolutionStats(resolution=resolution, flops_per_sample=flop_count,
                            infer_activation_bytes=infer, train_activation_bytes=train,
                            traffic_bytes=traffic)
    return stats, operators


def _run(method: _Method, inputs: ModelInputs, candidates: Sequence[int | None]) -> _Measured:
    """Every candidate size the model runs at (its own checks reject the others), measured.
    The cheap methods measure them all and must run the native size first (its error is
    the method's); a real run measures the smallest size that runs and stops once it knows
    whether the model is fixed to its native size. A size that runs but cannot be measured
    (BatchNorm training on a 1 x 1 map at batch 1) is not measured."""
    native = inputs.resolution
    if method.measures_all:
        candidates = [native, *(size for size in candidates if size != native)]
    accepted: list[int | None] = []
    measured: dict[int | None, tuple[ResolutionStats, int]] = {}
    errors: dict[int | None, Exception] = {}
    described = ""
    for resolution in candidates:
        if not method.measures_all and measured and any(size != native for size in accepted):
            break
        try:
            with method.prepared("fp32") as module:
                output = _forward(method, module, inputs.at(resolution))
                described = described or select_output(output)[1]
                del output
            accepted.append(resolution)
            if method.measures_all or not measured:
                measured[resolution] = _measure(method, inputs.at(resolution), resolution)
        except Exception as error:  # noqa: BLE001 - the model's own checks, or this method's limits
            errors[resolution] = error
            if method.measures_all and resolution == native:
                raise
    if not measured:
        raise errors.get(native) or next(iter(errors.values()))
    label = method.label
    if not method.measures_all:
        size = (f"{next(iter(measured))} px, other sizes scaled by area" if inputs.kind == "image"
                else f"sequence length {inputs.sequence_length}" if inputs.kind == "text"
                else f"input {inputs.describe()}")
        label = f"{METHOD_REAL} at batch 1-2, {size}, FP16 figures halved"
    operators = measured.get(native, next(iter(measured.values())))[1]
    stats = [measured[size][0] for size in sorted(measured, key=lambda size: size or 0)]
    return _Measured(label, sorted(accepted, key=lambda size: size or 0), stats, operators, described)


def _candidates(inputs: ModelInputs, resolutions: tuple[int, ...]) -> Sequence[int | None]:
    """The sizes to try: none but the given one for inputs without a resolution; else the
    tier resolutions passed in, the tiers scaled around the native size, and that size."""
    native = inputs.resolution
    if native is None:
        return [None]
    return sorted({*resolutions, *tier_resolutions(native), native})


def inspect_module(module: nn.Module, name: str, source_text: str,
                   inputs: ModelInputs | tuple[int, ...], resolutions: tuple[int, ...],
                   build_real: Callable[[], nn.Module] | None = None,
                   methods: tuple[str, ...] = METHODS) -> ModelStats:
    """Stats for a built module at each resolution it accepts, by the first method that runs
    it (see the module's docstring). ``module`` (parameters on meta or real) is left as it
    was. The real CPU run builds the model with ``build_real``; by default a copy of a
    module with real parameters, and no real run for one on meta. ``inputs`` may be one
    float input's shape. ``methods`` restricts which methods are tried (the tests compare
    them).

    :raises UserError: no method could run the model; the message says what each said.
    """
    if not isinstance(inputs, ModelInputs):
        inputs = from_shape(tuple(inputs))
    if build_real is None and any(not parameter.is_meta for parameter in module.parameters()):
        def copy_of_module() -> nn.Module:  # a copy: the real run trains it (BatchNorm statistics)
            return copy.deepcopy(module)

        build_real = copy_of_module
    makers: dict[str, Callable[[], _Method]] = {
        METHOD_META: lambda: _OnMeta(module), METHOD_FAKE: lambda: _Faked(module)}
    if build_real is not None:
        makers[METHOD_REAL] = lambda: _OnCpu(build_real)
    candidates = _candidates(inputs, resolutions)
    failures = []
    for label in (label for label in methods if label in makers):
        try:
            measured = _run(makers[label](), inputs, candidates)
            break
        except UserError as error:  # building for real failed: its message says why
            failures.append(f"{label}: {error}")
        except Exception as error:  # noqa: BLE001 - the model's own code: try the next method
            failures.append(f"{label}: {_reason(error)}")
    else:
        raise UserError(f"cannot measure model {name} with {inputs.describe()} ({'; '.join(failures)}); "
                        f"if that input does not fit model {name}, pass --input-shape or "
                        "--input-spec as it expects")
    return ModelStats(
        name=name,
        source=source_text,
        parameters=sum(p.numel() for p in module.parameters()),
        inputs=inputs,
        family=family_of(module),
        fixed_resolution=inputs.kind == "image" and measured.accepted == [inputs.resolution],
        kernel_launches=measured.operators or 1,
        resolutions=tuple(measured.resolutions),
        method=measured.method,
        output=measured.output,
    )


def inspect_source(source: ModelSource, resolutions: tuple[int, ...]) -> ModelStats:
    """The ``autotune_model_inspectors`` entry point: build ``source`` without its weights'
    memory (:func:`build_empty`), describe its inputs (:func:`model_inputs_for`) and
    measure it (:func:`inspect_module`), rebuilding it for real only if it must."""
    module, shared = _build_empty(factory_for(source), source.spec)
    inputs = model_inputs_for(source, module)
    label = (f"torchvision.models.{source.spec} (weights=None)" if source.kind == "reference"
             else source.spec)
    return inspect_module(module, source.spec, label, inputs, resolutions,
                          build_real=lambda: build_seeded(source, own_copy=shared))
