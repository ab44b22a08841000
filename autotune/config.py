"""What the user asked for: inputs and overrides from config files and flags.

Layers, each overriding the one before, every value remembering where it was set:

1. the user's ``autotune.toml`` in the platform config folder
   (``~/.config/autotune/autotune.toml`` on Linux, via platformdirs);
2. this folder's ``pyproject.toml`` (its ``[tool.autotune]`` table), then
   ``autotune.yaml``, then ``autotune.toml``;
3. ``--config FILE``;
4. command-line flags.

Keys are the inputs (``task``, ``objective``, ``tier``, ``gpu``) and any decision name
(``autotune rules`` lists them), e.g. ``batch_size = 8``.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autotune.errors import UserError
from autotune.profiles import read_yaml_text
from autotune.rules import decision_specs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10
    import tomli as tomllib

INPUT_CHOICES: dict[str, tuple[str, ...]] = {
    "task": ("infer", "train"),
    "objective": ("throughput", "latency"),
    "tier": ("balanced", "accuracy", "low-resource"),
}
PROJECT_FILES = ("pyproject.toml", "autotune.yaml", "autotune.toml")
#: Settings of the model-aware memory model (autotune recommend --model).
MODEL_SETTINGS = ("model", "input_shape", "optimizer", "latency_budget_ms", "headroom")


@dataclass
class Request:
    """The inputs of one recommendation and the decisions the user fixed."""

    inputs: dict[str, str] = field(default_factory=lambda: {k: v[0] for k, v in INPUT_CHOICES.items()})
    gpus: list[str] = field(default_factory=list)
    overrides: dict[str, tuple[Any, str]] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)  # MODEL_SETTINGS that were set

    def apply(self, values: dict[str, Any], where: str) -> None:
        """Merge one layer of settings, checking every key and value."""
        known = [*INPUT_CHOICES, "gpu", *MODEL_SETTINGS, *decision_specs()]
        for key, value in values.items():
            if key in INPUT_CHOICES:
                if value not in INPUT_CHOICES[key]:
                    raise UserError(f"{key} {where} must be one of "
                                    f"{', '.join(INPUT_CHOICES[key])}, got {value!r}")
                self.inputs[key] = value
            elif key == "gpu":
                names = [value] if isinstance(value, str) else value
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                    raise UserError(f"gpu {where} must be a GPU name or a list of names, "
                                    f"got {value!r}")
                self.gpus = names
            elif key in MODEL_SETTINGS:
                self.model[key] = model_setting(key, value, where)
            elif key in decision_specs():
                self.overrides[key] = (decision_specs()[key].coerce(value, where), where)
            else:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
                raise UserError(f"unknown setting {key!r} {where}; {hint}")


def model_setting(key: str, value: Any, where: str) -> Any:
    """One of MODEL_SETTINGS, checked; ``where`` names its origin for the error."""
    from autotune.model_stats import memory_constants  # noqa: PLC0415

    if key in ("model", "input_shape"):
        if isinstance(value, list) and key == "input_shape":
            value = ",".join(str(item) for item in value)
        if not isinstance(value, str) or not value:
            raise UserError(f"{key} {where} must be text, e.g. "
                            f"{'resnet50' if key == 'model' else '3,224,224'}; got {value!r}")
        return value
    if key == "optimizer":
        optimizers = memory_constants()["optimizer_states"]
        if value not in optimizers:
            raise UserError(f"optimizer {where} must be one of {', '.join(optimizers)}, got {value!r}")
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if key == "headroom" and not 0 < number <= 1:
        raise UserError(f"headroom {where} must be a fraction of free memory in (0, 1], got {value!r}")
    if key == "latency_budget_ms" and not number > 0:
        raise UserError(f"latency_budget_ms {where} must be a positive number of ms, got {value!r}")
    return number


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in one TOML or YAML file (for pyproject.toml, its [tool.autotune])."""
    try:
        text = path.read_text("utf-8")
    except OSError as error:
        raise UserError(f"cannot read config file {path}: {error.strerror}") from None
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise UserError(f"config file {path} is not valid TOML ({error}); fix its syntax") from None
        if path.name == "pyproject.toml":
            data = data.get("tool", {}).get("autotune", {})
    elif path.suffix in (".yaml", ".yml"):
        try:
            data = read_yaml_text(text)
        except yaml.YAMLError as error:
            where = getattr(error, "problem_mark", None)
            line = f" at line {where.line + 1}" if where else ""
            raise UserError(f"config file {path} is not valid YAML{line}; fix its syntax") from None
        data = {} if data is None else data
    else:
        raise UserError(f"config file {path} has an unknown format; use a .toml or .yaml file")
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of settings "
                        f"(e.g. `batch_size: 8`), not {type(data).__name__}")
    if "autotune_version" in data and "settings" in data:
        raise UserError(f"{path} holds a recommendation autotune wrote, not settings; rename it, or "
                        "keep only the settings you want to fix (e.g. `batch_size: 8`)")
    return data


def check_not_a_config_file(path: Path, folder: Path | None = None) -> None:
    """Refuse to write a recommendation where autotune reads the user's settings."""
    folder = folder or Path.cwd()
    if path.resolve().parent == folder.resolve() and path.name in PROJECT_FILES:
        raise UserError(f"{path.name} is where autotune reads your settings; write the recommendation "
                        "elsewhere, e.g. -o autotune-recommendation.yaml")


def user_config_file() -> Path:
    import platformdirs  # noqa: PLC0415 - only needed here

    return Path(platformdirs.user_config_dir("autotune")) / "autotune.toml"


def build_request(config_file: Path | None, flags: dict[str, Any], folder: Path | None = None) -> Request:
    """Layer the user config, this folder's files, ``--config`` and the flags."""
    request = Request()
    folder = folder or Path.cwd()
    layers = [user_config_file(), *(folder / name for name in PROJECT_FILES)]
    for path in layers:
        if path.is_file():
            request.apply(read_config_file(path), f"in {path.name if path.parent == folder else path}")
    if config_file is not None:
        request.apply(read_config_file(config_file), f"in {config_file}")
    request.apply({k: v for k, v in flags.items() if v not in (None, (), [])}, "by flag")
    return request
