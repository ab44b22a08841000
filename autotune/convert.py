"""A model in the file format a runner loads, made by whichever plugin can make it.

The ONNX Runtime and TensorRT runners load ``.onnx`` files, while ``--model`` may name a
PyTorch reference model or ``package.module:callable``. :func:`convert_model` asks the
plugins' converters (the ``autotune_model_converters`` hook) for the file, so a runner
never imports the framework the model was written in. Converters cache what they write
(:mod:`autotune.cache`): the second request for the same model is a file lookup.

Importing this module imports no framework; the converter's is imported when it runs.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from autotune.errors import UserError
from autotune.model_source import ModelSource


@dataclass(frozen=True)
class ConversionRequest:
    """What an exporter needs besides the model. Every field is part of the cache key.

    ``input_shape`` is one sample's shape without the batch, e.g. ``(3, 224, 224)``; None
    lets the converter take the model source's, the shipped stats' or its own guess.
    ``dynamic_batch`` makes the batch axis symbolic, so one file serves every batch size
    the batch search tries; False fixes it at 1. ``opset`` None takes the exporter's default.
    """

    input_shape: tuple[int, ...] | None = None
    dynamic_batch: bool = True
    opset: int | None = None


def convert_model(source: ModelSource, target: str = "onnx",
                  request: ConversionRequest | None = None) -> Path:
    """The model as a ``target`` file (``"onnx"``), converted and cached by a plugin if needed.

    An ``.onnx`` model asked for as ONNX is returned where it is, not copied. Otherwise the
    first converter (in pluggy's order) whose ``source_kinds`` include the model's kind and
    whose ``target`` matches converts it.

    :raises UserError: no installed plugin converts such models to ``target``, the
        converter's framework is not installed, or the conversion itself failed.
    """
    if source.kind == target:
        return Path(source.spec)
    from autotune import plugins  # noqa: PLC0415 - loading plugins is needed only here

    converters = [(plugin, converter) for plugin, converter in plugins.model_converters()
                  if source.kind in converter.source_kinds and converter.target == target]
    if not converters:
        raise UserError(f"no installed plugin converts {source.kind} models like {source.spec} to "
                        f"{target}; for PyTorch models pip install 'autotune[torch,onnx]'")
    plugin, converter = converters[0]
    if importlib.util.find_spec(converter.framework) is None:
        raise UserError(f"converting {source.spec} to {target} needs {converter.framework} (converter "
                        f"{converter.name} of plugin {plugin}), which is not installed; "
                        "pip install 'autotune[all]'")
    request = request or ConversionRequest(input_shape=source.input_shape)
    return Path(converter.load()(source, request))
