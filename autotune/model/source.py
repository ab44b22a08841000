"""What ``--model`` names: a reference model, ``package.module:callable``, or an ``.onnx`` file.

Parsing a model spec never imports torch; turning it into stats may (``model_stats_for``),
except for the reference models whose stats ship in ``profiles/models.yaml``.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from autotune import plugins
from autotune.errors import UserError
from autotune.model.stats import ModelStats, reference_models
from autotune.model_inputs import TIER_RESOLUTIONS, ModelInputs, from_shape, parse_input_spec

_CALLABLE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
__all__ = ["TIER_RESOLUTIONS", "ModelSource", "model_stats_for", "parse_model"]


@dataclass(frozen=True)
class ModelSource:
    kind: str  # reference | callable | onnx
    spec: str
    #: What the user said the model takes (``--input-shape`` / ``--input-spec``), else None.
    inputs: ModelInputs | None = None

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        return self.inputs.primary.shape if self.inputs is not None else None


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """``"3,224,224"`` or ``"3x224x224"`` -> (3, 224, 224): one sample, no batch dimension."""
    if text is None:
        return None
    parts = [part for part in re.split(r"[,x\s]+", text.strip()) if part]
    if not parts or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise UserError(f"input shape {text!r} must be positive whole numbers per dimension "
                        "without the batch, e.g. 3,224,224")
    return tuple(int(part) for part in parts)


def parse_inputs(input_shape: str | None = None, input_spec: str | None = None) -> ModelInputs | None:
    """The user's input description: ``--input-shape`` (one float input) or ``--input-spec``."""
    if input_shape is not None and input_spec is not None:
        raise UserError("give --input-shape or --input-spec, not both (--input-spec describes "
                        "every input, --input-shape one float input)")
    if input_spec is not None:
        return parse_input_spec(input_spec)
    shape = parse_input_shape(input_shape)
    return from_shape(shape) if shape is not None else None


def parse_model(spec: str, input_shape: str | None = None, input_spec: str | None = None) -> ModelSource:
    shape = parse_inputs(input_shape, input_spec)
    path = Path(spec)
    if spec.endswith(".onnx") or path.is_file():
        if not path.exists():
            raise UserError(f"model file {spec} does not exist; give the path of an .onnx file")
        return ModelSource("onnx", str(path), shape)  # the inspector reads it through autotune.files
    if ":" in spec:
        if not _CALLABLE.fullmatch(spec):
            raise UserError(f"model {spec!r} is not of the form package.module:callable")
        return ModelSource("callable", spec, shape)
    if spec in reference_models() or _torchvision_has(spec):
        return ModelSource("reference", spec, shape)
    close = difflib.get_close_matches(spec, list(reference_models()), n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UserError(f"unknown model {spec!r}; {hint}give a reference model "
                    f"({', '.join(reference_models())}), package.module:callable, or an .onnx file")


def _torchvision_has(name: str) -> bool:
    """Other torchvision classifiers work too, when torchvision is installed."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    import torchvision  # noqa: PLC0415 - only for names outside profiles/models.yaml

    return name in torchvision.models.list_models(module=torchvision.models)


def model_stats_for(source: ModelSource, resolutions: tuple[int, ...] = TIER_RESOLUTIONS) -> ModelStats:
    """Stats for a model: from ``profiles/models.yaml`` when shipped there, else measured by
    the first plugin whose model inspector handles its kind."""
    shipped = reference_models().get(source.spec) if source.kind == "reference" else None
    if shipped is not None and source.inputs in (None, shipped.inputs):
        return shipped

    inspectors = [inspector for _, inspector in plugins.model_inspectors() if source.kind in inspector.kinds]
    if not inspectors:
        raise UserError(f"no installed plugin measures {source.kind} models like {source.spec}; "
                        "install autotune with its extras: pip install 'autotune[all]'")
    inspector = inspectors[0]
    if importlib.util.find_spec(inspector.framework) is None:
        raise UserError(f"measuring {source.spec} needs {inspector.framework}, which is not installed; "
                        "pip install 'autotune[all]'")
    return inspector.load()(source, resolutions)
