"""What one run of an ONNX graph costs: FLOPs, peak live activations, bytes moved, per sample.

ONNX's own shape inference gives every tensor's shape once the inputs have theirs; where
it leaves some unknown (a YOLO's ``Split`` computed from ``Shape`` arithmetic), onnxruntime's
symbolic shape inference fills them in. FLOPs are counted per node as PyTorch's
FlopCounterMode counts the same operator (:mod:`autotune_plugins.onnxruntime.node_flops`),
with the parts in convolutions and in attention that decide the model's family.
Activations follow the graph in its (topological) order: a tensor lives from the node that
makes it to its last consumer.
Per-sample figures are batch 2 minus batch 1 when the batch is dynamic, and the model's
own batch divided out when the export fixed it (most ``torch.onnx.export`` files are fixed
at batch 1).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple

import onnx
from autotune_plugins.onnxruntime.node_flops import node_flops, node_kind
from onnx import shape_inference

from autotune.sdk import UserError, one_line
from autotune.sdk.models import ModelInputs

#: An error quoted from onnx is shortened to about this many characters (at a word boundary).
REASON_MAX_CHARS = 200
_FLOAT_ITEMSIZES = {"float16": 2, "float32": 4, "float64": 8}


def _itemsize(elem_type: int) -> int:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize
    except (KeyError, TypeError):
        return 4


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
    tensors = _shapes(inferred)
    if any(None in dims for dims, _ in tensors.values()):
        for name, entry in _symbolic_shapes(candidate).items():
            if name not in tensors or None in tensors[name][0]:
                tensors[name] = entry
    for initializer in inferred.graph.initializer:
        tensors[initializer.name] = (list(initializer.dims), _itemsize(initializer.data_type))
    return tensors


def _shapes(model: onnx.ModelProto) -> dict:
    tensors = {}
    for info in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        tensor_type = info.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        tensors[info.name] = (dims, _itemsize(tensor_type.elem_type))
    return tensors


def _symbolic_shapes(model: onnx.ModelProto) -> dict:
    """Shapes by onnxruntime's symbolic shape inference, which folds the shape arithmetic
    ONNX's own leaves unknown; {} where it fails on the graph."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference  # noqa: PLC0415

        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception:  # noqa: BLE001 - ONNX's shapes stand; the nodes they miss count 0
        return {}
    return _shapes(inferred) if inferred is not None else {}


def _bytes(entry) -> int:
    dims, itemsize = entry
    return math.prod(d or 0 for d in dims) * itemsize if dims is not None else 0


class Costs(NamedTuple):
    """One run's costs, or one sample's (:func:`per_sample_costs`)."""

    flops: int
    peak_bytes: int  # live activations at their peak
    traffic_bytes: int  # every tensor each node reads and writes
    weight_traffic_bytes: int  # the part of traffic_bytes that reads weights
    convolution_flops: int = 0  # the part of flops in convolutions
    attention_flops: int = 0  # the part of flops in attention (node_flops.node_kind)


def _analyse(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> Costs:
    """The costs of one run with every input at its full shape in ``shapes``."""
    tensors = _with_input_shape(model, shapes)
    weights = {init.name for init in model.graph.initializer}
    constants = weights | {name for node in model.graph.node if node.op_type == "Constant"
                           for name in node.output}
    by_kind = {"convolution": 0, "attention": 0, "": 0}
    last_use: dict[str, int] = {}
    for position, node in enumerate(model.graph.node):
        for name in node.input:
            last_use[name] = position
    outputs = {output.name for output in model.graph.output}
    live = {name: _bytes(tensors[name]) for name in shapes if name in tensors}
    peak = sum(live.values())
    flops = traffic = weight_traffic = 0
    for position, node in enumerate(model.graph.node):
        node_count = node_flops(node, tensors)
        flops += node_count
        by_kind[node_kind(node, constants)] += node_count
        traffic += sum(_bytes(tensors[n]) for n in [*node.input, *node.output] if n in tensors)
        weight_traffic += sum(_bytes(tensors[n]) for n in node.input if n in weights and n in tensors)
        for name in node.output:
            if name in tensors and name not in weights:
                live[name] = _bytes(tensors[name])
        peak = max(peak, sum(live.values()))
        for name in list(live):
            if last_use.get(name, -1) <= position and name not in outputs:
                del live[name]
    return Costs(flops, peak, traffic, weight_traffic, by_kind["convolution"], by_kind["attention"])


def per_sample_costs(model: onnx.ModelProto, inputs: ModelInputs,
                     graph_batches: dict[str, int | None]) -> Costs:
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
        return Costs(costs.flops // batch, costs.peak_bytes // batch,
                     (costs.traffic_bytes - costs.weight_traffic_bytes) // batch, 0,
                     costs.convolution_flops // batch, costs.attention_flops // batch)
    one, two = _analyse(model, shapes(1)), _analyse(model, shapes(2))
    return Costs(one.flops, two.peak_bytes - one.peak_bytes, two.traffic_bytes - one.traffic_bytes, 0,
                 one.convolution_flops, one.attention_flops)


def float_itemsize(model: onnx.ModelProto, inputs: ModelInputs) -> int:
    """The element size of the graph's floats: its first float input's, else its weights'."""
    for spec in inputs.inputs:
        if spec.is_float:
            return _FLOAT_ITEMSIZES[spec.dtype]
    float_types = Counter(init.data_type for init in model.graph.initializer
                          if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                                                onnx.TensorProto.DOUBLE))
    return _itemsize(float_types.most_common(1)[0][0]) if float_types else 4
