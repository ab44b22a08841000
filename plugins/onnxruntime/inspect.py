"""Measure an ONNX model from its graph: its inputs, parameters, FLOPs, activations, traffic.

Part of the onnxruntime plugin (its ``autotune_model_inspectors`` hook); imports onnx. The
file is read (weights left out), its inputs described
(:mod:`autotune_plugins.onnxruntime.graph_inputs`), and one run's costs counted at each
resolution the graph accepts (:mod:`autotune_plugins.onnxruntime.graph_costs`): its own,
or the tiers around it where the graph leaves the height and width dynamic. ONNX graphs
are inference graphs: no training figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import onnx
from autotune_plugins.onnxruntime.graph_costs import Costs, float_itemsize, per_sample_costs
from autotune_plugins.onnxruntime.graph_inputs import declared_inputs, model_inputs_for
from autotune_plugins.onnxruntime.node_flops import ATTENTION_OPS, CONVOLUTIONS

from autotune.sdk import UserError
from autotune.sdk.files import ONNX_MAX_BYTES, read_user_file
from autotune.sdk.models import (
    TIER_RESOLUTIONS,
    ModelInputs,
    ModelSource,
    ModelStats,
    ResolutionStats,
    family_from_flops,
    from_shape,
    tier_resolutions,
)

METHOD = "the ONNX graph (shape inference)"


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


def _family(model: onnx.ModelProto, costs: Costs) -> tuple[str, float, float]:
    """The family by where the FLOPs go (:func:`family_from_flops`), and the convolution and
    attention shares. Attention is there when an attention operator is, or FLOPs were counted
    in attention (Q x K^T, or layers the exporter named attn)."""
    ops = {node.op_type for node in model.graph.node}
    convolution = costs.convolution_flops / costs.flops if costs.flops else 0.0
    attention = costs.attention_flops / costs.flops if costs.flops else 0.0
    has_attention = bool(set(ATTENTION_OPS) & ops) or costs.attention_flops > 0
    family = family_from_flops(convolution, has_attention, bool(set(CONVOLUTIONS) & ops))
    return family, round(convolution, 3), round(attention, 3)


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
    declared = declared_inputs(model, path)
    inputs = model_inputs_for(model, declared, given, path)
    graph_inputs = {graph_input.name: graph_input for graph_input in declared}
    graph_batches = {name: graph_input.batch for name, graph_input in graph_inputs.items()}
    # Tiers only where both the height and the width are the graph's to choose.
    dynamic_spatial = any(
        height is not None and width is not None
        and graph_inputs[spec.name].dims[height] is None and graph_inputs[spec.name].dims[width] is None
        for spec in inputs.inputs for height, width in [(spec.axis("height"), spec.axis("width"))])
    itemsize = float_itemsize(model, inputs)

    def by_dtype(value: int) -> dict[str, int]:
        # The graph's own float dtype measured; the other by element size.
        return {"fp32": value * 4 // itemsize, "fp16": value * 2 // itemsize}

    measured = []
    native = None
    for resolution in _resolutions(inputs, dynamic_spatial):
        costs = per_sample_costs(model, inputs.at(resolution), graph_batches)
        if native is None or resolution == inputs.resolution:
            native = costs
        measured.append(ResolutionStats(
            resolution=resolution,
            flops_per_sample=costs.flops,
            infer_activation_bytes=by_dtype(costs.peak_bytes),
            traffic_bytes=by_dtype(costs.traffic_bytes),
        ))
    assert native is not None  # _resolutions gives at least one
    family, convolution_share, attention_share = _family(model, native)
    return ModelStats(
        name=path.stem,
        source=str(path),
        parameters=sum(math.prod(init.dims) for init in model.graph.initializer),
        inputs=inputs,
        family=family,
        fixed_resolution=inputs.resolution is not None and not dynamic_spatial,
        kernel_launches=len(model.graph.node),
        resolutions=tuple(measured),
        trainable=False,
        method=METHOD,
        convolution_flops_share=convolution_share,
        attention_flops_share=attention_share,
    )


def inspect_source(source: ModelSource, resolutions: tuple[int, ...] = TIER_RESOLUTIONS) -> ModelStats:
    """The ``autotune_model_inspectors`` entry point: an ``.onnx`` file's stats. The graph
    says which resolutions it can take (its own, or the tiers around it when H and W are
    dynamic), so ``resolutions`` is not used."""
    return inspect_onnx(Path(source.spec), source.inputs)
