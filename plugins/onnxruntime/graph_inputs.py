"""What an ONNX graph takes: each input's dtype and shape, dynamic dimensions filled in.

Every graph input that is not a weight becomes an :class:`~autotune.model_inputs.InputSpec`:
its dtype and declared dimensions come from the graph, dynamic dimensions from the user's
``--input-spec`` / ``--input-shape``, from another input that shares the dimension's name,
or a guessed sequence length of 128, said as a guess. Token ids are kept below the
vocabulary of the embedding table they index. What none of these fills is a one-line
:class:`UserError` with an ``--input-spec`` to pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from autotune.sdk import UserError
from autotune.sdk.models import DTYPES, FLOAT_DTYPES, InputSpec, ModelInputs, default_values, from_shape

#: The sequence length a text model is measured at when its graph leaves it dynamic and the
#: user did not give one: a common tokenizer window, said as a guess in the output.
DEFAULT_SEQUENCE_LENGTH = 128
#: Channel counts that tell a channels-last image (N, H, W, C) from a channels-first one.
_IMAGE_CHANNELS = (1, 3, 4)


@dataclass(frozen=True)
class GraphInput:
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


def declared_inputs(model: onnx.ModelProto, path: Path) -> list[GraphInput]:
    """The graph's inputs as it declares them, its weights left out; a scalar input, or a
    graph with none, is a UserError."""
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
        found.append(GraphInput(graph_input.name, dtype, declared[0][0], dims,
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


def _example_dims(graph_input: GraphInput) -> tuple[int, ...]:
    """The input's dims, dynamic ones filled with an example size."""
    return tuple(size or (224 if label in ("height", "width")
                          else DEFAULT_SEQUENCE_LENGTH if label == "sequence" else 64)
                 for size, label in zip(graph_input.dims, graph_input.axes or ("",) * len(graph_input.dims),
                                        strict=True))


def _spec_example(graph_input: GraphInput) -> str:
    """``name:dtype[C=3,H=224,W=224]``: an --input-spec item for the input, dynamic dims filled."""
    return InputSpec(graph_input.name, _example_dims(graph_input), graph_input.dtype,
                     graph_input.axes).spec_text()


def _match_given(graph_inputs: list[GraphInput], given: ModelInputs | None,
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


def _check_fits(graph_input: GraphInput, spec: InputSpec, path: Path) -> None:
    if len(spec.shape) != len(graph_input.dims) or any(
            d is not None and d != s for d, s in zip(graph_input.dims, spec.shape, strict=True)):
        raise UserError(f"input shape {','.join(map(str, spec.shape))} does not fit {path}, whose "
                        f"input {graph_input.name} is {graph_input.shown()} (without the batch); "
                        "pass that shape")


def model_inputs_for(model: onnx.ModelProto, graph_inputs: list[GraphInput], given: ModelInputs | None,
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


def _spec(model: onnx.ModelProto, graph_input: GraphInput, shape: tuple[int, ...],
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
