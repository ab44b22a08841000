"""The torch plugin's converter: a PyTorch model as an ONNX file, cached by content.

Registered through the torch plugin's ``autotune_model_converters`` hook and imported only
when a runner asks :func:`autotune.model.convert.convert_model` for an ``.onnx`` file of a
reference model or ``package.module:callable``. The model is built as the torch runner
builds it (seeded, FP32, on the CPU), so the ONNX file holds the same weights as the model
the torch backend measures and the two backends' outputs can be compared. It is called as
the torch runner calls it, on every input of :class:`~autotune.model_inputs.ModelInputs`
under its own name and dtype, and the file says which output to compare (:func:`to_onnx`).

The exporter is the torch.export-based one (``dynamo=True``); see :func:`_export` for the
figures behind that choice.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import io
import warnings
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import torch
from autotune_plugins.torch.build import build_seeded
from autotune_plugins.torch.input_discovery import model_inputs_for
from autotune_plugins.torch.io import call_model, named_tensors, select_output, synthetic_tensors
from torch import nn

from autotune.sdk import UserError, one_line
from autotune.sdk.files import cached_file
from autotune.sdk.models import (
    COMPARED_OUTPUT_KEY,
    ConversionRequest,
    ModelInputs,
    ModelSource,
    reference_models,
)
from autotune.sdk.running import BackendUnavailable

#: Part of the cache key: bump it when this module changes what it writes.
FORMAT = 2
#: The batch of the sample traced: 2, because torch.export specialises a dimension of size 1
#: to the constant 1, and a model that hard-codes its batch then fails here, not in a runner.
SAMPLE_BATCH = 2


def build_model(source: ModelSource, request: ConversionRequest) -> tuple[nn.Module, ModelInputs]:
    """The model as the torch runner builds it (seed 0, FP32, CPU, eval) and what it takes:
    the request's inputs, else the source's, the shipped stats' or a guess from the model."""
    module = build_seeded(source)
    inputs = request.model_inputs
    if inputs is None:
        shipped = reference_models().get(source.spec) if source.inputs is None else None
        inputs = shipped.inputs if shipped is not None else model_inputs_for(source, module)
    return module.eval(), inputs


def content_hash(module: nn.Module) -> str:
    """sha256 of what the exported file depends on: the architecture's repr, the source of
    every module class in it (``forward`` is not in the repr, and an edited ``forward`` must
    not be answered with the old file), and each state_dict entry's name, dtype, shape and
    bytes. Two builds with the same seed hash the same; one changed weight does not."""
    digest = hashlib.sha256(repr(module).encode())
    for cls in sorted({type(m) for m in module.modules()}, key=lambda c: (c.__module__, c.__qualname__)):
        digest.update(f"{cls.__module__}.{cls.__qualname__}".encode())
        with contextlib.suppress(OSError, TypeError):  # defined in a REPL or compiled: no source
            digest.update(inspect.getsource(cls).encode())
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _first_line(error: BaseException) -> str:
    """The exporter's own message, one line: the innermost cause's, since torch wraps the
    real error ("Could not guard on data-dependent expression ...") in a generic one."""
    while error.__cause__ is not None:
        error = error.__cause__
    return one_line(str(error)) or type(error).__name__


class FlatOutputs(nn.Module):
    """``module`` called as the torch runner calls it, its output as a flat tuple of tensors.

    The inputs come in positionally, in the inputs' order, and go on by keyword or by
    position as :func:`~autotune_plugins.torch.io.call_model` decides, so the file is traced
    through the very call the torch runner makes. The output is flattened as
    :func:`~autotune_plugins.torch.io.select_output` numbers it (dicts, lists, and dict
    subclasses like a Hugging Face ``ModelOutput``, which torch.export refuses to return
    unless its type is registered with pytree), so the exported outputs are that numbering.
    """

    def __init__(self, module: nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.module = module
        self.names = names

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = call_model(self.module, dict(zip(self.names, tensors, strict=True)))
        # torch_io's own flattening (private there): the numbering select_output picks from.
        return tuple(tensor for _, tensor in named_tensors(output))


def _export(module: nn.Module, sample: dict[str, torch.Tensor], path: Path, request: ConversionRequest,
            output_names: list[str]) -> None:
    """``torch.onnx.export`` with the dynamo exporter into one self-contained file, its
    inputs named as ``sample``'s keys and, when ``request.dynamic_batch``, sharing one
    symbolic batch axis."""
    # Why dynamo and not the TorchScript exporter (dynamo=False). Measured on torch 2.15.0,
    # onnxscript 0.7.2, onnxruntime 1.31.1 (CPU provider), 2-core CPU, fresh process each:
    #   export time        small CNN (tests)        torchvision resnet18
    #   TorchScript        0.04 s                   0.55 s
    #   dynamo             2.1 s (0.6 s once warm)  2.2 s (1.7 s once warm)
    # Both files run in onnxruntime at batch 1 and 3 through the dynamic batch axis, matching
    # torch to 3e-8 (CNN) and 3e-6 (resnet18). On a model whose forward branches on a tensor
    # value (`y * 2 if y.sum() > 0 else y - 1`) TorchScript wrote a valid file computing the
    # wrong output for batch 1; dynamo refused to export it. TorchScript is also deprecated
    # since torch 2.9 and warns that it will be removed. A silently wrong file is the worst
    # outcome for a tool that goes on to measure that file, and the extra seconds are paid
    # once per model content (the file is cached), so dynamo it is, with onnxscript in the
    # `onnx` extra.
    dynamic_shapes = None
    if request.dynamic_batch:
        # One Dim for all: the inputs' batches are one batch. FlatOutputs.forward takes them
        # as *tensors, one argument to torch.export, hence the tuple in a tuple.
        batch = torch.export.Dim("batch")
        dynamic_shapes = (tuple({0: batch} for _ in sample),)
    torch.onnx.export(
        FlatOutputs(module, tuple(sample)).eval(), tuple(sample.values()), str(path), dynamo=True,
        input_names=list(sample), output_names=output_names, dynamic_shapes=dynamic_shapes,
        opset_version=request.opset,
        # One file, so the cache can move it into place whole (a model over 2 GB cannot be).
        external_data=False,
        verbose=False,
    )


def _check_exporter() -> None:
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"converting PyTorch models to ONNX needs {' and '.join(missing)}, which "
                        "is not installed; pip install 'autotune[onnx]'")
    if not {"dynamo", "external_data"} <= set(inspect.signature(torch.onnx.export).parameters):
        raise UserError(f"torch {torch.__version__} has no torch.export-based ONNX exporter; "
                        "pip install -U torch")


def _do_not_fit(inputs: ModelInputs) -> str:
    """The subject and verb of "... does not fit model": the inputs as the user gave them."""
    spec = inputs.primary
    if len(inputs.inputs) > 1:
        return f"inputs {inputs.describe()} do"
    if spec.name == "input" and spec.is_float:  # --input-shape
        return f"input shape {','.join(map(str, spec.shape))} does"
    return f"input {spec.describe()} does"


def _sample_outputs(module: nn.Module, source: ModelSource, inputs: ModelInputs,
                    sample: dict[str, torch.Tensor]) -> tuple[list[str], str]:
    """The exported file's output names (one tensor: ``output``; several: ``output0``,
    ``output1``, ... in :class:`FlatOutputs`' order) and which of them the runners compare."""
    try:
        with torch.inference_mode():
            output = call_model(module, sample)
    except Exception as error:  # noqa: BLE001 - the model's own shape checks
        raise UserError(f"{_do_not_fit(inputs)} not fit model {source.spec} ({_first_line(error)}); "
                        "pass --input-shape or --input-spec as the model expects") from None
    tensors = [tensor for _, tensor in named_tensors(output)]
    if not tensors:
        raise UserError(f"model {source.spec} returned {type(output).__name__} with no tensor in it, so "
                        "there is nothing to export to ONNX; return the prediction as a tensor")
    names = ["output"] if len(tensors) == 1 else [f"output{i}" for i in range(len(tensors))]
    compared = select_output(output)[0]
    # The first place it is returned: a tensor returned twice holds the same values in both.
    return names, names[next(i for i, tensor in enumerate(tensors) if tensor is compared)]


def _refuse_image_list(source: ModelSource, inputs: ModelInputs | None) -> None:
    """A detector that takes a list of images is not exported: its box selection gives every
    image an output of its own size, which an ONNX graph with one batched output cannot hold."""
    if inputs is not None and inputs.image_list:
        raise BackendUnavailable(
            f"{source.spec} takes a list of images and returns a list of detections per image: not "
            "exported to ONNX (each image gets its own number of boxes); the torch backend runs it")


def to_onnx(source: ModelSource, request: ConversionRequest) -> Path:
    """The model as an ``.onnx`` file taking every input of ``request.inputs`` under its own
    name and dtype (the batch axis of each named ``batch`` when ``request.dynamic_batch``),
    its outputs named as :func:`_sample_outputs` says, the compared one written in the
    file's metadata under :data:`autotune.model.convert.COMPARED_OUTPUT_KEY`; checked by the ONNX
    checker and strict shape inference.

    :raises UserError: the model cannot be built, its inputs are unknown or do not fit it,
        it returns no tensor, or the exporter failed (the message names the model and the
        exporter's error).
    """
    _refuse_image_list(source, request.inputs)  # before building: a refusal comes fast
    _check_exporter()
    import onnx  # noqa: PLC0415 - after the check, so a missing onnx is a UserError

    module, inputs = build_model(source, request)
    _refuse_image_list(source, inputs)
    request = replace(request, input_shape=inputs.primary.shape, inputs=inputs)
    # Token ids below the vocabulary, masks of ones: values the model accepts (an embedding
    # lookup out of range fails the export).
    sample = synthetic_tensors(inputs, SAMPLE_BATCH if request.dynamic_batch else 1)
    output_names, compared = _sample_outputs(module, source, inputs, sample)
    key = {
        "converter": "torch-onnx", "format": FORMAT, "model": content_hash(module),
        "request": request.cache_key(), "torch": torch.__version__, "onnx": onnx.__version__,
        "onnxscript": metadata.version("onnxscript"),
    }

    def build(path: Path) -> None:
        # The exporter prints its progress and, on failure, pages of graph dumps and guard
        # tracebacks through torch's logging: clutter on the user's terminal, when the
        # exception it raises already says what went wrong. Its warnings are its own
        # business too (one about the batch axis every input shares, by design).
        try:
            with (contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()),
                  warnings.catch_warnings()):
                warnings.simplefilter("ignore")
                _export(module, sample, path, request, output_names)
        except Exception as error:  # noqa: BLE001 - any exporter failure is the model's
            hint = "no fixed batch size, " if request.dynamic_batch else ""
            raise UserError(f"exporting {source.spec} to ONNX failed: {_first_line(error)}; torch.export "
                            f"must be able to trace its forward ({hint}no branching on tensor values)"
                            ) from None
        model = onnx.load(str(path))
        written = [output.name for output in model.graph.output]
        if written != output_names:  # an exporter that merged or dropped an output
            raise UserError(f"the ONNX file exported from {source.spec} has outputs {', '.join(written)}, "
                            f"not the model's {', '.join(output_names)}; report it to PyTorch with the model")
        entry = model.metadata_props.add()
        entry.key, entry.value = COMPARED_OUTPUT_KEY, compared
        try:
            onnx.checker.check_model(model)
            onnx.shape_inference.infer_shapes(model, strict_mode=True)
        except Exception as error:  # noqa: BLE001 - checker and inference raise several types
            raise UserError(f"the ONNX file exported from {source.spec} is invalid: {_first_line(error)}; "
                            "report it to PyTorch with the model") from None
        onnx.save(model, str(path))

    return cached_file("onnx", key, ".onnx", build, note=f"{source.spec} with {inputs.describe()}")
