"""Measure an ONNX model from its graph: its inputs, parameters, FLOPs, activations, traffic.

Part of the onnxruntime plugin (its ``autotune_model_inspectors`` hook); imports onnx.
Every graph input that is not a weight becomes an :class:`~autotune.model_inputs.InputSpec`:
its dtype and declared dimensions come from the graph, dynamic dimensions from the user's
``--input-spec`` / ``--input-shape`` (or a guessed sequence length of 128). ONNX's own shape
inference then gives every tensor's shape; FLOPs are counted for Conv, ConvTranspose, Gemm
and MatMul (a multiply-add counts 2, as PyTorch's FlopCounterMode counts, bias ignored).
Activations follow the graph in its (topological) order: a tensor lives from the node that
makes it to its last consumer. Per-sample figures are batch 2 minus batch 1 when the batch
is dynamic, and the model's own batch divided out when the export fixed it (most
``torch.onnx.export`` files are fixed at batch 1). ONNX graphs are inference graphs: no
training figures.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import onnx
from onnx import shape_inference

from autotune.errors import UserError, one_line
from autotune.files import ONNX_MAX_BYTES, read_user_file
from autotune.model.source import ModelSource
from autotune.model.stats import ModelStats, ResolutionStats
from autotune.model_inputs import (
    DTYPES,
    FLOAT_DTYPES,
    TIER_RESOLUTIONS,
    InputSpec,
    ModelInputs,
    default_values,
    from_shape,
    tier_resolutions,
)

METHOD = "the ONNX graph (shape inference)"
#: The sequence length a text model is measured at when its graph leaves it dynamic and the
#: user did not give one: a common tokenizer window, said as a guess in the output.
DEFAULT_SEQUENCE_LENGTH = 128
#: An error quoted from onnx is shortened to about this many characters (at a word boundary).
REASON_MAX_CHARS = 200
#: Channel counts that tell a channels-last image (N, H, W, C) from a channels-first one.
_IMAGE_CHANNELS = (1, 3, 4)
_FLOAT_ITEMSIZES = {"float16": 2, "float32": 4, "float64": 8}


def _load(path: Path) -> onnx.ModelProto:
    data = read_user_file(path, "ONNX model", max_bytes=ONNX_MAX_BYTES, text=False,
                          fix="export one with torch.onnx.export")
    try:
        # External weights are not read: the graph and its shapes are what autotune measures.
        model = onnx.load_model_from_string(data)
    except Exception as error:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise UserError(f"{path} is not an ONNX model ({type(error).__name__}); export one "
                        "with torch.onnx.export") from None
    if not model.graph.node:
        raise UserError(f"{path} is not an ONNX model (no graph nodes); export one with "
                        "torch.onnx.export")
    return model


def _itemsize(elem_type: int) -> int:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize
    except (KeyError, TypeError):
        return 4


# --- the graph's inputs -------------------------------------------------------------------

@dataclass(frozen=True)
class _GraphInput:
    """One graph input as declared: its batch and per-sample dims (None where dynamic)."""

    name: str
    dtype: str
    batch: int | None
    dims: tuple[int | None, ...]  # one sample's, without the batch
    params: tuple[str, ...]  # each dim's symbolic name ("" where none), without the batch
    axes: tuple[str, ...]

    def shown(self) -> str:
        return ",".join("?" if d is None else str(d) for d in self.dims)


def _dtype_name(path: Path, name: str, elem_type: int) -> str:
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, TypeError, ValueError):
        dtype = onnx.TensorProto.DataType.Name(elem_type).lower() if elem_type else "unknown"
    if dtype not in DTYPES:
        raise UserError(f"{path}: input {name} has element type {dtype}, which autotune cannot "
                        f"feed; export the model with inputs of {', '.join(DTYPES)}")
    return dtype


def _axes(dtype: str, dims: tuple[int | None, ...]) -> tuple[str, ...]:
    """Labels for one sample's dims: a 3-D float sample is an image (channels first unless
    its last dim is a channel count and its first is not), a 1-D integer one a sequence."""
    if dtype in FLOAT_DTYPES and len(dims) == 3:
        if dims[2] in _IMAGE_CHANNELS and dims[0] not in _IMAGE_CHANNELS:
            return ("height", "width", "channels")
        return ("channels", "height", "width")
    if dtype not in FLOAT_DTYPES and len(dims) == 1:
        return ("sequence",)
    return ()


def _graph_inputs(model: onnx.ModelProto, path: Path) -> list[_GraphInput]:
    weights = {init.name for init in model.graph.initializer}
    found = []
    for graph_input in model.graph.input:
        if graph_input.name in weights:  # older exports list the weights as inputs too
            continue
        tensor_type = graph_input.type.tensor_type
        dtype = _dtype_name(path, graph_input.name, tensor_type.elem_type)
        declared = [(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None,
                     d.dim_param if d.HasField("dim_param") else "")
                    for d in tensor_type.shape.dim]
        if not declared:
            raise UserError(f"{path}: input {graph_input.name} is a scalar (or has no declared "
                            "shape); autotune feeds inputs whose first dimension is the batch")
        dims = tuple(size for size, _ in declared[1:])
        found.append(_GraphInput(graph_input.name, dtype, declared[0][0], dims,
                                 tuple(param for _, param in declared[1:]), _axes(dtype, dims)))
    if not found:
        raise UserError(f"{path} has no inputs (every graph input is a weight); export the model "
                        "with its inputs")
    return found


def _vocabulary_size(model: onnx.ModelProto, input_name: str) -> int | None:
    """The rows of the embedding table a Gather reads with ``input_name`` as its indices
    (through a Cast, as exports to int32 ids do): token ids must stay below it."""
    tables = {init.name: list(init.dims) for init in model.graph.initializer}
    ids = {input_name}
    for node in model.graph.node:  # topological order: a Cast comes before its Gather
        if node.op_type == "Cast" and node.input and node.input[0] in ids:
            ids.update(node.output)
        elif (node.op_type == "Gather" and len(node.input) > 1 and node.input[1] in ids
              and tables.get(node.input[0])
              and next((attr.i for attr in node.attribute if attr.name == "axis"), 0) == 0):
            return tables[node.input[0]][0]
    return None


def _example_dims(graph_input: _GraphInput) -> tuple[int, ...]:
    """The input's dims, dynamic ones filled with an example size."""
    return tuple(size or (224 if label in ("height", "width")
                          else DEFAULT_SEQUENCE_LENGTH if label == "sequence" else 64)
                 for size, label in zip(graph_input.dims, graph_input.axes or ("",) * len(graph_input.dims),
                                        strict=True))


def _spec_example(graph_input: _GraphInput) -> str:
    """``name:dtype[C=3,H=224,W=224]``: an --input-spec item for the input, dynamic dims filled."""
    return InputSpec(graph_input.name, _example_dims(graph_input), graph_input.dtype,
                     graph_input.axes).spec_text()


def _match_given(graph_inputs: list[_GraphInput], given: ModelInputs | None,
                 path: Path) -> dict[str, InputSpec]:
    """The user's description of each graph input, by name (or by position when both the
    user and the graph have one input, as ``--input-shape`` gives)."""
    if given is None:
        return {}
    if len(given.inputs) == 1 and len(graph_inputs) == 1:
        return {graph_inputs[0].name: given.primary}
    names = [graph_input.name for graph_input in graph_inputs]
    shape_name = from_shape(()).primary.name  # the name --input-shape gives its one input
    if len(given.inputs) == 1 and given.primary.name == shape_name and shape_name not in names:
        example = "; ".join(_spec_example(graph_input) for graph_input in graph_inputs)
        raise UserError(f"--input-shape describes one input, but {path} has {len(names)} "
                        f"({', '.join(names)}); describe them with --input-spec '{example}'")
    for spec in given.inputs:
        if spec.name not in names:
            raise UserError(f"{path} has no input named {spec.name!r}; its inputs are "
                            f"{', '.join(names)} (name them so in --input-spec)")
    return {spec.name: spec for spec in given.inputs}


def _check_fits(graph_input: _GraphInput, spec: InputSpec, path: Path) -> None:
    if len(spec.shape) != len(graph_input.dims) or any(
            d is not None and d != s for d, s in zip(graph_input.dims, spec.shape, strict=True)):
        raise UserError(f"input shape {','.join(map(str, spec.shape))} does not fit {path}, whose "
                        f"input {graph_input.name} is {graph_input.shown()} (without the batch); "
                        "pass that shape")


def _read_inputs(model: onnx.ModelProto, graph_inputs: list[_GraphInput], given: ModelInputs | None,
                 path: Path) -> ModelInputs:
    """Every input of ``model`` at one full sample shape: declared dims from the graph,
    dynamic ones from ``given`` (the user's), from another input sharing the dim's name, or
    a guessed sequence length; a dynamic dim none of these fills is a UserError."""
    user = _match_given(graph_inputs, given, path)
    # A dim's symbolic name ties inputs together: input_ids[batch, seq] and
    # attention_mask[batch, seq] take the one sequence length the user gave.
    sizes_by_param: dict[str, int] = {}
    for graph_input in graph_inputs:
        if graph_input.name in user:
            _check_fits(graph_input, user[graph_input.name], path)
            for param, size in zip(graph_input.params, user[graph_input.name].shape, strict=True):
                if param:
                    sizes_by_param.setdefault(param, size)
    user_sequence = given.sequence_length if given is not None else None
    specs, guessed, unknown, guessed_params = [], [], [], set()
    for graph_input in graph_inputs:
        spec = user.get(graph_input.name)
        shape = list(spec.shape) if spec is not None else list(graph_input.dims)
        for index, size in enumerate(shape):
            if size is not None:
                continue
            param = graph_input.params[index]
            if param in sizes_by_param:
                shape[index] = sizes_by_param[param]
                if param in guessed_params:
                    guessed.append(graph_input.name)
            elif graph_input.axes and graph_input.axes[index] == "sequence":
                shape[index] = length = user_sequence or DEFAULT_SEQUENCE_LENGTH
                if user_sequence is None:
                    guessed.append(graph_input.name)
                if param:
                    sizes_by_param[param] = length
                    if user_sequence is None:
                        guessed_params.add(param)
        known = tuple(size for size in shape if size is not None)
        if len(known) < len(shape):
            unknown.append(graph_input)
            continue
        specs.append(_spec(model, graph_input, known, spec))
    if unknown:
        shown = "; ".join(f"{graph_input.name}: {graph_input.shown()}" for graph_input in unknown)
        example = "; ".join(_spec_example(graph_input) for graph_input in graph_inputs)
        single = (f"--input-shape {','.join(map(str, _example_dims(graph_inputs[0])))} or "
                  if len(graph_inputs) == 1 else "")
        raise UserError(f"{path} has dynamic input dimensions ({shown}, without the batch); pass "
                        f"{single}--input-spec '{example}' (one sample, no batch dimension)")
    inputs = ModelInputs(tuple(specs), fixed_batch=graph_inputs[0].batch)
    if guessed:
        inputs = inputs.with_guess(
            f"sequence length {DEFAULT_SEQUENCE_LENGTH} for {', '.join(guessed)} (the ONNX graph "
            f"leaves it dynamic); set it with --input-spec, e.g. "
            f"'{'; '.join(_spec_example(i) for i in graph_inputs if i.name in guessed)}'")
    return inputs


def _spec(model: onnx.ModelProto, graph_input: _GraphInput, shape: tuple[int, ...],
          user: InputSpec | None) -> InputSpec:
    """The input's spec: the graph's dtype; the user's labels and values where the user gave
    them for this dtype (``--input-shape`` gives float32, whatever the graph takes)."""
    # The graph's labels first: --input-shape labels any 3-D shape channels-first.
    axes = graph_input.axes or (user.axes if user is not None else ())
    if user is not None and user.dtype == graph_input.dtype:
        values, high = user.values, user.high
    else:
        values, high = default_values(graph_input.name, graph_input.dtype), None
    if values == "tokens" and high is None:
        high = _vocabulary_size(model, graph_input.name)
    return InputSpec(graph_input.name, shape, graph_input.dtype, axes, values, high)


# --- shapes and costs ---------------------------------------------------------------------

def _with_input_shape(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> dict:
    """Shapes and element sizes of every tensor once each input has its full shape in
    ``shapes`` (batch included)."""
    candidate = onnx.ModelProto()
    candidate.CopyFrom(model)
    del candidate.graph.value_info[:]
    for graph_input in candidate.graph.input:
        if graph_input.name in shapes:
            dims = graph_input.type.tensor_type.shape.dim
            for dim, size in zip(dims, shapes[graph_input.name], strict=True):
                dim.ClearField("dim_param")
                dim.dim_value = size
    try:
        inferred = shape_inference.infer_shapes(candidate, strict_mode=True, data_prop=True)
    except Exception as error:  # noqa: BLE001 - onnx raises several types here
        reason = one_line(str(error), REASON_MAX_CHARS) or type(error).__name__
        shown = "; ".join(f"{name}[{','.join(map(str, shape))}]" for name, shape in shapes.items())
        raise UserError(f"input {shown} (batch first) does not fit this ONNX model ({reason}); "
                        "pass --input-shape or --input-spec as the model expects") from None
    tensors = {}
    for info in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tensor_type = info.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        tensors[info.name] = (dims, _itemsize(tensor_type.elem_type))
    for initializer in inferred.graph.initializer:
        tensors[initializer.name] = (list(initializer.dims), _itemsize(initializer.data_type))
    return tensors


def _bytes(entry) -> int:
    dims, itemsize = entry
    return math.prod(d or 0 for d in dims) * itemsize if dims is not None else 0


def _node_flops(node: onnx.NodeProto, tensors: dict) -> int:
    def dims(index: int) -> list[int]:
        if index >= len(node.input) or node.input[index] not in tensors:
            return []
        return [d or 0 for d in tensors[node.input[index]][0]]

    out = [d or 0 for d in tensors.get(node.output[0], ([], 4))[0]]
    if node.op_type in ("Conv", "ConvTranspose") and out:
        weight = dims(1)
        if not weight:
            return 0
        if node.op_type == "Conv":  # each output element: (C/groups) x kernel multiply-adds
            return 2 * math.prod(out) * math.prod(weight[1:])
        return 2 * math.prod(dims(0)) * weight[1] * math.prod(weight[2:])
    if node.op_type == "Gemm" and out:
        a = dims(0)
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        inner = a[0] if trans_a else a[-1]
        return 2 * math.prod(out) * inner
    if node.op_type == "MatMul" and out:
        return 2 * math.prod(out) * (dims(0) or [0])[-1]
    return 0


class _Costs(NamedTuple):
    flops: int
    peak_bytes: int  # live activations at their peak
    traffic_bytes: int  # every tensor each node reads and writes
    weight_traffic_bytes: int  # the part of traffic_bytes that reads weights


def _analyse(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> _Costs:
    """The costs of one run with every input at its full shape in ``shapes``."""
    tensors = _with_input_shape(model, shapes)
    weights = {init.name for init in model.graph.initializer}
    last_use: dict[str, int] = {}
    for position, node in enumerate(model.graph.node):
        for name in node.input:
            last_use[name] = position
    outputs = {output.name for output in model.graph.output}
    live = {name: _bytes(tensors[name]) for name in shapes if name in tensors}
    peak = sum(live.values())
    flops = traffic = weight_traffic = 0
    for position, node in enumerate(model.graph.node):
        flops += _node_flops(node, tensors)
        traffic += sum(_bytes(tensors[n]) for n in [*node.input, *node.output] if n in tensors)
        weight_traffic += sum(_bytes(tensors[n]) for n in node.input if n in weights and n in tensors)
        for name in node.output:
            if name in tensors and name not in weights:
                live[name] = _bytes(tensors[name])
        peak = max(peak, sum(live.values()))
        for name in list(live):
            if last_use.get(name, -1) <= position and name not in outputs:
                del live[name]
    return _Costs(flops, peak, traffic, weight_traffic)


def _per_sample(model: onnx.ModelProto, inputs: ModelInputs, graph_batches: dict[str, int | None]) -> _Costs:
    """One sample's costs. A dynamic batch: batch 2 minus batch 1, which cancels what does
    not grow with the batch (weights, shape arithmetic). A fixed batch can be read at that
    batch only, so its costs are divided by it, weight reads left out: an approximation that
    counts the few batch-independent tensors (shape arithmetic, constants) per sample."""
    def shapes(batch: int) -> dict[str, tuple[int, ...]]:
        # An input whose own first dim is fixed keeps it (e.g. a [1] scale beside x[N, ...]).
        return {spec.name: (graph_batches[spec.name] or batch, *spec.shape) for spec in inputs.inputs}

    if inputs.fixed_batch is not None:
        batch = inputs.fixed_batch
        costs = _analyse(model, shapes(batch))
        return _Costs(costs.flops // batch, costs.peak_bytes // batch,
                      (costs.traffic_bytes - costs.weight_traffic_bytes) // batch, 0)
    one, two = _analyse(model, shapes(1)), _analyse(model, shapes(2))
    return _Costs(one.flops, two.peak_bytes - one.peak_bytes, two.traffic_bytes - one.traffic_bytes, 0)


def _float_itemsize(model: onnx.ModelProto, inputs: ModelInputs) -> int:
    """The element size of the graph's floats: its first float input's, else its weights'."""
    for spec in inputs.inputs:
        if spec.is_float:
            return _FLOAT_ITEMSIZES[spec.dtype]
    float_types = Counter(init.data_type for init in model.graph.initializer
                          if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                                                onnx.TensorProto.DOUBLE))
    return _itemsize(float_types.most_common(1)[0][0]) if float_types else 4


def _family(model: onnx.ModelProto) -> str:
    ops = {node.op_type for node in model.graph.node}
    attention = {"Attention", "MultiHeadAttention"} & ops
    if attention or {"Softmax", "MatMul", "LayerNormalization"} <= ops:
        return "transformer"
    return "cnn" if "Conv" in ops else "other"


def _resolutions(inputs: ModelInputs, dynamic_spatial: bool) -> Sequence[int | None]:
    """The native resolution, and the tiers around it where the graph leaves H and W dynamic."""
    native = inputs.resolution
    if native is None or not dynamic_spatial:
        return [native]
    return sorted({*tier_resolutions(native), native})


def inspect_onnx(path: Path, given: ModelInputs | tuple[int, ...] | None) -> ModelStats:
    """Stats of the ONNX model at ``path``; ``given`` is what the user said it takes
    (``--input-spec`` / ``--input-shape``, a bare shape for one input), or None."""
    if given is not None and not isinstance(given, ModelInputs):
        given = from_shape(tuple(given))
    model = _load(path)
    declared = _graph_inputs(model, path)
    inputs = _read_inputs(model, declared, given, path)
    graph_inputs = {graph_input.name: graph_input for graph_input in declared}
    graph_batches = {name: graph_input.batch for name, graph_input in graph_inputs.items()}
    # Tiers only where both the height and the width are the graph's to choose.
    dynamic_spatial = any(
        height is not None and width is not None
        and graph_inputs[spec.name].dims[height] is None and graph_inputs[spec.name].dims[width] is None
        for spec in inputs.inputs for height, width in [(spec.axis("height"), spec.axis("width"))])
    itemsize = _float_itemsize(model, inputs)

    def by_dtype(value: int) -> dict[str, int]:
        # The graph's own float dtype measured; the other by element size.
        return {"fp32": value * 4 // itemsize, "fp16": value * 2 // itemsize}

    measured = []
    for resolution in _resolutions(inputs, dynamic_spatial):
        costs = _per_sample(model, inputs.at(resolution), graph_batches)
        measured.append(ResolutionStats(
            resolution=resolution,
            flops_per_sample=costs.flops,
            infer_activation_bytes=by_dtype(costs.peak_bytes),
            traffic_bytes=by_dtype(costs.traffic_bytes),
        ))
    return ModelStats(
        name=path.stem,
        source=str(path),
        parameters=sum(math.prod(init.dims) for init in model.graph.initializer),
        inputs=inputs,
        family=_family(model),
        fixed_resolution=inputs.kind == "image" and not dynamic_spatial,
        kernel_launches=len(model.graph.node),
        resolutions=tuple(measured),
        trainable=False,
        method=METHOD,
    )


def inspect_source(source: ModelSource, resolutions: tuple[int, ...] = TIER_RESOLUTIONS) -> ModelStats:
    """The ``autotune_model_inspectors`` entry point: an ``.onnx`` file's stats. The graph
    says which resolutions it can take (its own, or the tiers around it when H and W are
    dynamic), so ``resolutions`` is not used."""
    return inspect_onnx(Path(source.spec), source.inputs)
