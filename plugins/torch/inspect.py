"""Measure a PyTorch model, without running it for real where it can: FLOPs, activations, traffic.

The model is built without its weights' memory (:mod:`autotune_plugins.torch.build`) and
its inputs described (:mod:`autotune_plugins.torch.input_discovery`). Then three methods
(:mod:`autotune_plugins.torch.measuring_methods`) are tried in order; the first that runs
the model gives every figure, and ``ModelStats.method`` says which:

1. ``meta device``: the model and its inputs on ``meta`` (shapes only, no memory).
2. ``FakeTensorMode``: fake tensors, buffers keeping their real values.
3. a real CPU run: the model built as every consumer builds it (:func:`build_seeded`),
   batch 1 and 2 at the smallest resolution it accepts (or its sequence length), FP32
   only. FP16 figures are the FP32 ones halved (element size); only that resolution is
   stored, and :meth:`ModelStats.at` scales the others by area. The real run trains a
   copy of a module the factory handed out.

If none runs, one :class:`UserError` says what each said. Each counts with the same tools
(:mod:`autotune_plugins.torch.forward_costs`). Per-sample figures are batch 2 minus
batch 1. Inputs come from :class:`autotune.model_inputs.ModelInputs` (several named inputs;
integer inputs stay integers when the model is cast to FP16) and are fed, and outputs of
any shape read, through :mod:`autotune_plugins.torch.io`.

Part of the torch plugin (its ``autotune_model_inspectors`` hook): it imports torch, and
is imported only when a model outside ``profiles/models.yaml`` is asked for.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from autotune_plugins.torch.build import build_empty_and_whether_shared, build_seeded, factory_for
from autotune_plugins.torch.forward_costs import (
    FlopCount,
    flop_count,
    inference_memory,
    saved_for_backward_bytes,
)
from autotune_plugins.torch.input_discovery import model_inputs_for
from autotune_plugins.torch.io import call_model, select_output
from autotune_plugins.torch.measuring_methods import (
    DTYPES,
    METHOD_FAKE,
    METHOD_META,
    METHOD_REAL,
    METHODS,
    FakeTensorMethod,
    MeasuringMethod,
    MetaDeviceMethod,
    RealCpuMethod,
)
from torch import nn

from autotune.sdk import UserError, one_line
from autotune.sdk.models import (
    DETECTIONS_NOT_COMPARED,
    ModelInputs,
    ModelSource,
    ModelStats,
    ResolutionStats,
    family_from_flops,
    from_shape,
    loop_for_package,
    tier_resolutions,
)

#: An error quoted from the model is cut to about this many characters.
REASON_MAX_CHARS = 150


def family_of(count: FlopCount) -> tuple[str, float, float]:
    """The model's family as the rules read it (:func:`family_from_flops`: by the share of its
    FLOPs in convolutions, attention layers or not), and the convolution and attention shares."""
    convolution = count.convolution / count.total if count.total else 0.0
    attention = count.attention / count.total if count.total else 0.0
    family = family_from_flops(convolution, count.has_attention, count.has_convolution)
    return family, round(convolution, 3), round(attention, 3)


@dataclass
class _Measured:
    method: str
    accepted: list[int | None]
    resolutions: list[ResolutionStats]
    operators: int
    output: str
    flop_count: FlopCount


def _reason(error: BaseException) -> str:
    """An error in one short line: its message's first line, cut at a word."""
    return one_line(str(error), REASON_MAX_CHARS) or type(error).__name__


def _forward(method: MeasuringMethod, module: nn.Module, inputs: ModelInputs) -> Any:
    module.eval()
    with torch.inference_mode():
        return call_model(module, method.tensors(inputs, 1, "fp32"), inputs)


def _saved_per_sample(method: MeasuringMethod, module: nn.Module, inputs: ModelInputs, precision: str) -> int:
    """Bytes saved for backward per sample: batch 2 minus batch 1; for a model that cannot
    train on one sample (BatchNorm on a 1 x 1 map: SSDlite), batch 4 minus batch 2, halved."""
    def saved(batch: int) -> int:
        return saved_for_backward_bytes(module, method.tensors(inputs, batch, precision), inputs)

    try:
        return saved(2) - saved(1)
    except ValueError as error:
        if "more than 1 value per channel" not in str(error):
            raise
        return (saved(4) - saved(2)) // 2


def _measure(method: MeasuringMethod, inputs: ModelInputs,
             resolution: int | None) -> tuple[ResolutionStats, int, FlopCount]:
    """Per-sample stats at one input size (batch 2 minus batch 1), the operator count, and
    one sample's FLOPs by kind."""
    infer, train, traffic = {}, {}, {}
    operators = 0
    for precision in method.precisions:
        with method.prepared(precision) as module:
            one = inference_memory(module, method.tensors(inputs, 1, precision), inputs)
            two = inference_memory(module, method.tensors(inputs, 2, precision), inputs)
            infer[precision] = two.peak_bytes - one.peak_bytes
            traffic[precision] = two.traffic_bytes - one.traffic_bytes
            operators = operators or one.operators
            train[precision] = _saved_per_sample(method, module, inputs, precision)
    measured = method.precisions[0]
    for precision in DTYPES:
        if precision not in method.precisions:  # by element size: FP16 is half of FP32
            ratio = DTYPES[precision].itemsize / DTYPES[measured].itemsize
            for figures in (infer, train, traffic):
                figures[precision] = int(figures[measured] * ratio)
    with method.prepared("fp32") as module:
        count = flop_count(module, method.tensors(inputs, 1, "fp32"), inputs)
    stats = ResolutionStats(resolution=resolution, flops_per_sample=count.total,
                            infer_activation_bytes=infer, train_activation_bytes=train,
                            traffic_bytes=traffic)
    return stats, operators, count


def _run(method: MeasuringMethod, inputs: ModelInputs, candidates: Sequence[int | None]) -> _Measured:
    """Every candidate size the model runs at (its own checks reject the others), measured.
    The cheap methods measure them all and must run the native size first (its error is
    the method's); a real run measures the smallest size that runs and stops once it knows
    whether the model is fixed to its native size. A size that runs but cannot be measured
    (BatchNorm training on a 1 x 1 map at batch 1) is not measured."""
    native = inputs.resolution
    if method.measures_all:
        candidates = [native, *(size for size in candidates if size != native)]
    accepted: list[int | None] = []
    measured: dict[int | None, tuple[ResolutionStats, int, FlopCount]] = {}
    errors: dict[int | None, Exception] = {}
    described = ""
    for resolution in candidates:
        if not method.measures_all and measured and any(size != native for size in accepted):
            break
        try:
            with method.prepared("fp32") as module:
                output = _forward(method, module, inputs.at(resolution))
                described = described or (DETECTIONS_NOT_COMPARED if inputs.image_list
                                           else select_output(output)[1])
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
        size = (f"{next(iter(measured))} px, other sizes scaled by area" if "image" in inputs.kinds
                else f"sequence length {inputs.sequence_length}" if inputs.kind == "text"
                else f"input {inputs.describe()}")
        label = f"{METHOD_REAL} at batch 1-2, {size}, FP16 figures halved"
        if inputs.image_list:
            label = (f"{METHOD_REAL} at batch 1-2, {inputs.resolution} px (the model resizes every image "
                     "itself; meta and fake tensors cannot run its value-dependent box selection), "
                     "FP16 figures halved")
    _, operators, count = measured.get(native, next(iter(measured.values())))
    stats = [measured[size][0] for size in sorted(measured, key=lambda size: size or 0)]
    return _Measured(label, sorted(accepted, key=lambda size: size or 0), stats, operators, described, count)


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
    makers: dict[str, Callable[[], MeasuringMethod]] = {
        METHOD_META: lambda: MetaDeviceMethod(module), METHOD_FAKE: lambda: FakeTensorMethod(module)}
    if build_real is not None:
        makers[METHOD_REAL] = lambda: RealCpuMethod(build_real)
    candidates = _candidates(inputs, resolutions)
    if inputs.image_list:  # its box selection depends on values, and it resizes every image itself
        methods, candidates = tuple(label for label in methods if label == METHOD_REAL), [inputs.resolution]
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
    family, convolution_share, attention_share = family_of(measured.flop_count)
    return ModelStats(
        name=name,
        source=source_text,
        parameters=sum(p.numel() for p in module.parameters()),
        inputs=inputs,
        family=family,
        fixed_resolution=inputs.resolution is not None and measured.accepted == [inputs.resolution],
        kernel_launches=measured.operators or 1,
        resolutions=tuple(measured.resolutions),
        method=measured.method,
        output=measured.output,
        training_loop=loop_for_package(type(module).__module__.partition(".")[0]),
        convolution_flops_share=convolution_share,
        attention_flops_share=attention_share,
    )


def inspect_source(source: ModelSource, resolutions: tuple[int, ...]) -> ModelStats:
    """The ``autotune_model_inspectors`` entry point: build ``source`` without its weights'
    memory (:func:`build_empty`), describe its inputs (:func:`model_inputs_for`) and
    measure it (:func:`inspect_module`), rebuilding it for real only if it must."""
    module, shared = build_empty_and_whether_shared(factory_for(source), source.spec)
    inputs = model_inputs_for(source, module)
    label = (f"torchvision.models.{source.spec} (weights=None)" if source.kind == "reference"
             else source.spec)
    return inspect_module(module, source.spec, label, inputs, resolutions,
                          build_real=lambda: build_seeded(source, own_copy=shared))
