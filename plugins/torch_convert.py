"""The torch plugin's converter: a PyTorch model as an ONNX file, cached by content.

Registered through the torch plugin's ``autotune_model_converters`` hook and imported only
when a runner asks :func:`autotune.convert.convert_model` for an ``.onnx`` file of a
reference model or ``package.module:callable``. The model is built as the torch runner
builds it (seeded, FP32, on the CPU), so the ONNX file holds the same weights as the model
the torch backend measures and the two backends' outputs can be compared.

The exporter is the torch.export-based one (``dynamo=True``); see :func:`_export` for the
figures behind that choice.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import io
from dataclasses import asdict, replace
from importlib import metadata
from pathlib import Path

import torch
from autotune_plugins.torch_inspect import build_seeded, guess_input_shape
from torch import nn
from torch.utils._pytree import tree_flatten

from autotune.cache import cached_file
from autotune.convert import ConversionRequest
from autotune.errors import UserError, one_line
from autotune.model_source import ModelSource
from autotune.model_stats import reference_models

#: Part of the cache key: bump it when this module changes what it writes.
FORMAT = 1
#: The batch of the sample traced: 2, because torch.export specialises a dimension of size 1
#: to the constant 1, and a model that hard-codes its batch then fails here, not in a runner.
SAMPLE_BATCH = 2


def build_model(source: ModelSource, request: ConversionRequest) -> tuple[nn.Module, tuple[int, ...]]:
    """The model as the torch runner builds it (seed 0, FP32, CPU, eval) and one sample's shape."""
    module = build_seeded(source)
    shipped = reference_models().get(source.spec)
    shape = (request.input_shape or source.input_shape
             or (shipped.input_shape if shipped else guess_input_shape(module)))
    if shape is None:
        raise UserError(f"cannot guess the input shape of {source.spec}; pass --input-shape, "
                        "e.g. --input-shape 3,224,224 (one sample, no batch dimension)")
    return module.eval(), tuple(shape)


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


def _export(module: nn.Module, sample: torch.Tensor, path: Path, request: ConversionRequest,
            output_names: list[str]) -> None:
    """``torch.onnx.export`` with the dynamo exporter into one self-contained file."""
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
    dynamic_shapes = ({0: torch.export.Dim("batch")},) if request.dynamic_batch else None
    torch.onnx.export(
        module, (sample,), str(path), dynamo=True, input_names=["input"], output_names=output_names,
        dynamic_shapes=dynamic_shapes, opset_version=request.opset,
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


def to_onnx(source: ModelSource, request: ConversionRequest) -> Path:
    """The model as an ``.onnx`` file with one input named ``input`` (batch axis ``batch``
    when ``request.dynamic_batch``), checked by the ONNX checker and strict shape inference.

    :raises UserError: the model cannot be built, its input shape is unknown or wrong, or
        the exporter failed (the message names the model and the exporter's error).
    """
    _check_exporter()
    import onnx  # noqa: PLC0415 - after the check, so a missing onnx is a UserError

    module, shape = build_model(source, request)
    request = replace(request, input_shape=shape)
    batch = SAMPLE_BATCH if request.dynamic_batch else 1
    sample = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(1))
    try:
        with torch.inference_mode():
            outputs = [t for t in tree_flatten(module(sample))[0] if isinstance(t, torch.Tensor)]
    except Exception as error:  # noqa: BLE001 - the model's own shape checks
        raise UserError(f"input shape {','.join(map(str, shape))} does not fit model {source.spec} "
                        f"({_first_line(error)}); pass --input-shape C,H,W as the model expects") from None
    output_names = ["output"] if len(outputs) == 1 else [f"output{i}" for i in range(len(outputs))]
    key = {
        "converter": "torch-onnx", "format": FORMAT, "model": content_hash(module),
        "request": asdict(request), "torch": torch.__version__, "onnx": onnx.__version__,
        "onnxscript": metadata.version("onnxscript"),
    }

    def build(path: Path) -> None:
        # The exporter prints its progress and, on failure, pages of graph dumps and guard
        # tracebacks through torch's logging: clutter on the user's terminal, when the
        # exception it raises already says what went wrong.
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                _export(module, sample, path, request, output_names)
        except Exception as error:  # noqa: BLE001 - any exporter failure is the model's
            hint = "no fixed batch size, " if request.dynamic_batch else ""
            raise UserError(f"exporting {source.spec} to ONNX failed: {_first_line(error)}; torch.export "
                            f"must be able to trace its forward ({hint}no branching on tensor values)"
                            ) from None
        try:
            onnx.checker.check_model(str(path))
            onnx.shape_inference.infer_shapes(onnx.load(str(path)), strict_mode=True)
        except Exception as error:  # noqa: BLE001 - checker and inference raise several types
            raise UserError(f"the ONNX file exported from {source.spec} is invalid: {_first_line(error)}; "
                            "report it to PyTorch with the model") from None

    note = f"{source.spec} at {'x'.join(map(str, shape))}"
    return cached_file("onnx", key, ".onnx", build, note=note)
