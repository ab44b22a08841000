"""Measure an ONNX model from its graph: parameters, FLOPs, activations, traffic.

Part of the onnxruntime plugin (its ``autotune_model_inspectors`` hook); imports onnx.
ONNX's own shape inference gives every tensor's shape; FLOPs are counted for Conv,
ConvTranspose, Gemm and MatMul (a multiply-add counts 2, as PyTorch's FlopCounterMode
counts, bias ignored). Activations follow the graph in its (topological) order: a tensor
lives from the node that makes it to its last consumer. Per-sample figures are batch 2
minus batch 1. ONNX graphs are inference graphs: no training figures.
"""

from __future__ import annotations

import math
from pathlib import Path

import onnx
from onnx import shape_inference

from autotune.errors import UserError
from autotune.files import ONNX_MAX_BYTES, read_user_file
from autotune.model_source import TIER_RESOLUTIONS, ModelSource
from autotune.model_stats import ModelStats, ResolutionStats


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


def _with_input_shape(model: onnx.ModelProto, name: str, shape: tuple[int, ...]) -> dict:
    """Shapes and element sizes of every tensor once the input has ``shape``."""
    candidate = onnx.ModelProto()
    candidate.CopyFrom(model)
    del candidate.graph.value_info[:]
    for graph_input in candidate.graph.input:
        if graph_input.name == name:
            dims = graph_input.type.tensor_type.shape.dim
            for dim, size in zip(dims, shape, strict=True):
                dim.ClearField("dim_param")
                dim.dim_value = size
    try:
        inferred = shape_inference.infer_shapes(candidate, strict_mode=True, data_prop=True)
    except Exception as error:  # noqa: BLE001 - onnx raises several types here
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(f"input shape {','.join(map(str, shape[1:]))} does not fit this ONNX "
                        f"model ({first_line[:200]}); pass --input-shape as the model expects") from None
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


def _analyse(model: onnx.ModelProto, input_name: str, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(FLOPs, peak live activation bytes, bytes moved) at one full input shape."""
    tensors = _with_input_shape(model, input_name, shape)
    weights = {init.name for init in model.graph.initializer}
    last_use: dict[str, int] = {}
    for position, node in enumerate(model.graph.node):
        for name in node.input:
            last_use[name] = position
    outputs = {output.name for output in model.graph.output}
    live = {input_name: _bytes(tensors[input_name])}
    peak = sum(live.values())
    flops = traffic = 0
    for position, node in enumerate(model.graph.node):
        flops += _node_flops(node, tensors)
        traffic += sum(_bytes(tensors[n]) for n in [*node.input, *node.output] if n in tensors)
        for name in node.output:
            if name in tensors and name not in weights:
                live[name] = _bytes(tensors[name])
        peak = max(peak, sum(live.values()))
        for name in list(live):
            if last_use.get(name, -1) <= position and name not in outputs:
                del live[name]
    return flops, peak, traffic


def _family(model: onnx.ModelProto) -> str:
    ops = {node.op_type for node in model.graph.node}
    attention = {"Attention", "MultiHeadAttention"} & ops
    if attention or {"Softmax", "MatMul", "LayerNormalization"} <= ops:
        return "transformer"
    return "cnn" if "Conv" in ops else "other"


def inspect_onnx(path: Path, input_shape: tuple[int, ...] | None) -> ModelStats:
    model = _load(path)
    weights = {init.name for init in model.graph.initializer}
    inputs = [graph_input for graph_input in model.graph.input if graph_input.name not in weights]
    if len(inputs) != 1:
        raise UserError(f"{path} has {len(inputs)} inputs; autotune measures single-input models")
    graph_input = inputs[0]
    declared = [d.dim_value if d.HasField("dim_value") else None
                for d in graph_input.type.tensor_type.shape.dim][1:]
    if input_shape is not None:
        if len(input_shape) != len(declared) or any(
                d is not None and d != s for d, s in zip(declared, input_shape, strict=True)):
            shown = ",".join("?" if d is None else str(d) for d in declared)
            raise UserError(f"input shape {','.join(map(str, input_shape))} does not fit {path}, "
                            f"whose input is {shown} (without the batch); pass that shape")
        sample = tuple(input_shape)
    elif any(d is None for d in declared):
        raise UserError(f"{path} has dynamic input dimensions; pass --input-shape, e.g. "
                        "--input-shape 3,224,224 (one sample, no batch dimension)")
    else:
        sample = tuple(declared)
    dynamic_spatial = len(declared) == 3 and declared[1] is None
    resolutions: list[int | None] = (
        sorted({*TIER_RESOLUTIONS, sample[1]}) if dynamic_spatial
        else [sample[1] if len(sample) == 3 else None]
    )
    itemsize = _itemsize(graph_input.type.tensor_type.elem_type)
    measured = []
    for resolution in resolutions:
        shape = sample if resolution in (None, sample[1]) else (sample[0], resolution, resolution)
        flops_one, peak_one, traffic_one = _analyse(model, graph_input.name, (1, *shape))
        _, peak_two, traffic_two = _analyse(model, graph_input.name, (2, *shape))

        def by_dtype(value: int) -> dict[str, int]:
            # The graph's own dtype measured; the other by element size.
            return {"fp32": value * 4 // itemsize, "fp16": value * 2 // itemsize}

        measured.append(ResolutionStats(
            resolution=resolution,
            flops_per_sample=flops_one,
            infer_activation_bytes=by_dtype(peak_two - peak_one),
            traffic_bytes=by_dtype(traffic_two - traffic_one),
        ))
    parameters = sum(math.prod(init.dims) for init in model.graph.initializer)
    return ModelStats(
        name=path.stem,
        source=str(path),
        parameters=parameters,
        input_shape=sample,
        family=_family(model),
        fixed_resolution=len(sample) == 3 and not dynamic_spatial,
        kernel_launches=len(model.graph.node),
        resolutions=tuple(measured),
        trainable=False,
    )


def inspect_source(source: ModelSource, resolutions: tuple[int, ...] = TIER_RESOLUTIONS) -> ModelStats:
    """The ``autotune_model_inspectors`` entry point: an ``.onnx`` file's stats."""
    return inspect_onnx(Path(source.spec), source.input_shape)
