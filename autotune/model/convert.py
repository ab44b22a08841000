"""A model in the file format a runner loads, made by whichever plugin can make it.

The ONNX Runtime and TensorRT runners load ``.onnx`` files, while ``--model`` may name a
PyTorch reference model or ``package.module:callable``. :func:`convert_model` asks the
plugins' converters (the ``autotune_model_converters`` hook) for the file, so a runner
never imports the framework the model was written in. Converters cache what they write
(:mod:`autotune.cache`): the second request for the same model is a file lookup.

The file takes the inputs of :class:`autotune.model_inputs.ModelInputs` under their own
names and dtypes, so a runner feeds it ``synthetic_batch(inputs, batch)`` as it is. Which of
its outputs a runner compares with PyTorch's is written into the file
(:data:`COMPARED_OUTPUT_KEY`), so the runner need not import torch to know.

Importing this module imports no framework; the converter's is imported when it runs.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune import plugins
from autotune.errors import UserError
from autotune.model.source import ModelSource
from autotune.model_inputs import ModelInputs, from_shape

#: The key of the ONNX file's ``metadata_props`` entry naming the output an accuracy check
#: compares: the one :func:`autotune_plugins.torch.io.select_output` picks from the model's
#: own output (``logits`` where there is one, else the first tensor). onnxruntime reads it as
#: ``session.get_modelmeta().custom_metadata_map[COMPARED_OUTPUT_KEY]``.
COMPARED_OUTPUT_KEY = "autotune.compared_output"


@dataclass(frozen=True)
class ConversionRequest:
    """What an exporter needs besides the model; :meth:`cache_key` is what of it a cached
    file depends on.

    ``inputs`` names every input the file takes, with its dtype and one sample's shape at
    the size to run (the resolution, the sequence length). ``input_shape`` is the older way
    to say one float input named ``input``: one sample's shape without the batch, e.g.
    ``(3, 224, 224)``; ``inputs`` wins when both are given. Neither lets the converter take
    the model source's, the shipped stats' or its own guess. ``dynamic_batch`` makes the
    batch axis of every input symbolic, so one file serves every batch size the batch
    search tries; False fixes it at 1. ``opset`` None takes the exporter's default.
    """

    input_shape: tuple[int, ...] | None = None
    dynamic_batch: bool = True
    opset: int | None = None
    inputs: ModelInputs | None = None

    @property
    def model_inputs(self) -> ModelInputs | None:
        """``inputs``, else one float input named ``input`` of ``input_shape``, else None."""
        if self.inputs is not None:
            return self.inputs
        return from_shape(self.input_shape) if self.input_shape is not None else None

    def cache_key(self) -> dict[str, Any]:
        """The request as JSON values: every input in full but the guesses (lines for the
        user, which change nothing in the file, as they change no ModelInputs' equality)."""
        inputs = self.model_inputs
        described = None
        if inputs is not None:
            described = {key: value for key, value in inputs.to_dict().items() if key != "guesses"}
        return {"inputs": described, "dynamic_batch": self.dynamic_batch, "opset": self.opset}


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
    # input_shape as well, for converters written before ``inputs``.
    request = request or ConversionRequest(input_shape=source.input_shape, inputs=source.inputs)
    return Path(converter.load()(source, request))
