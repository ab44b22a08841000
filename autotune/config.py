"""What the user asked for: inputs and overrides from config files and flags.

Layers, each overriding the one before, every value remembering where it was set:

1. the user's ``autotune.toml`` in the platform config folder
   (``~/.config/autotune/autotune.toml`` on Linux, via platformdirs);
2. this folder's ``pyproject.toml`` (its ``[tool.autotune]`` table), then
   ``autotune.yaml``, then ``autotune.toml``;
3. ``--config FILE``;
4. command-line flags.

Keys are the inputs (``task``, ``objective``, ``tier``, ``gpu``), the model settings,
any decision name (``autotune rules`` lists them), e.g. ``batch_size = 8``, and backend
options (``autotune plugins`` lists them) as ``torch.compile = true`` or in a table
named after the backend (``[tool.autotune.torch]`` in pyproject.toml).
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autotune.errors import UserError
from autotune.files import CONFIG_MAX_BYTES, parse_user_yaml, read_user_file, yaml_error_text
from autotune.recommendation.rules import decision_specs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10
    # The floor pyright checks is 3.10, where the project installs tomli; a newer venv has none.
    import tomli as tomllib  # pyright: ignore[reportMissingImports]

INPUT_CHOICES: dict[str, tuple[str, ...]] = {
    "task": ("infer", "train"),
    "objective": ("throughput", "latency"),
    "tier": ("balanced", "accuracy", "low-resource"),
}
PROJECT_FILES = ("pyproject.toml", "autotune.yaml", "autotune.toml")
#: Wall seconds per backend that verify measures for when the caller names none (``--budget-s``
#: of verify, profile --verify and fleet collect --verify), model build included.
VERIFY_BUDGET_S = 60
#: Settings of the model-aware memory model (autotune recommend --model).
MODEL_SETTINGS = ("model", "input_shape", "input_spec", "optimizer", "latency_budget_ms", "headroom")


@dataclass
class Request:
    """The inputs of one recommendation and the decisions the user fixed."""

    inputs: dict[str, str] = field(default_factory=lambda: {k: v[0] for k, v in INPUT_CHOICES.items()})
    gpus: list[str] = field(default_factory=list)
    overrides: dict[str, tuple[Any, str]] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)  # MODEL_SETTINGS that were set
    #: backend name -> option name -> value: what the user set of each backend's own options
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def apply_option(self, backend_name: str, option_name: str, value: Any, where: str) -> None:
        """One backend option (``torch.channels_last``), checked against its declaration."""
        from autotune import plugins  # noqa: PLC0415 - only option keys need the registry

        registered = plugins.backends()
        if backend_name not in registered:
            raise UserError(f"unknown backend {backend_name!r} in {backend_name}.{option_name} {where}; "
                            f"registered: {', '.join(sorted(registered))} (autotune plugins lists them)")
        backend = registered[backend_name][1]
        try:
            option = backend.option(option_name)
        except KeyError:
            names = ", ".join(option.name for option in backend.options) or "none"
            raise UserError(f"backend {backend_name} has no option {option_name!r} ({where}); its options: "
                            f"{names} (autotune plugins lists them)") from None
        self.options.setdefault(backend_name, {})[option_name] = option.coerce(value, where, backend_name)

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
            elif isinstance(key, str) and "." in key:  # --set torch.channels_last=false
                backend_name, _, option_name = key.partition(".")
                self.apply_option(backend_name, option_name, value, where)
            elif isinstance(value, dict):  # a [torch] table of options
                for option_name, option_value in value.items():
                    self.apply_option(str(key), str(option_name), option_value, where)
            else:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
                raise UserError(f"unknown setting {key!r} {where}; {hint}")


def model_setting(key: str, value: Any, where: str) -> Any:
    """One of MODEL_SETTINGS, checked; ``where`` names its origin for the error."""
    from autotune.model.stats import memory_constants  # noqa: PLC0415

    if key in ("model", "input_shape", "input_spec"):
        if isinstance(value, list) and key == "input_shape":
            value = ",".join(str(item) for item in value)
        if not isinstance(value, str) or not value:
            example = {"model": "resnet50", "input_shape": "3,224,224",
                       "input_spec": "input_ids:int64[S=128]; attention_mask:int64[S=128]"}[key]
            raise UserError(f"{key} {where} must be text, e.g. {example}; got {value!r}")
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


def _config_fix(path: Path) -> str:
    """What a config file at ``path`` should be, for the errors about the file itself."""
    if path.name == "pyproject.toml":
        return ("pyproject.toml should be UTF-8 TOML text; autotune reads settings such as "
                "`batch_size = 8` from its [tool.autotune] table")
    if path.suffix == ".toml":
        return "a config file should be UTF-8 TOML text with settings such as `batch_size = 8`"
    return "a config file should be UTF-8 YAML text with settings such as `batch_size: 8`"


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in one TOML or YAML file (for pyproject.toml, its [tool.autotune])."""
    if path.suffix not in (".toml", ".yaml", ".yml"):
        raise UserError(f"config file {path} has an unknown format; use a .toml or .yaml file")
    text = read_user_file(path, "config file", max_bytes=CONFIG_MAX_BYTES, text=True, fix=_config_fix(path))
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            first_line = str(error).splitlines()[0] if str(error) else "a syntax error"
            raise UserError(f"config file {path} is not valid TOML ({first_line}); fix its syntax") from None
        except RecursionError:
            raise UserError(f"config file {path} is not valid TOML (nested too deeply); fix its "
                            "syntax") from None
        if path.name == "pyproject.toml":
            tool = data.get("tool", {})
            data = tool.get("autotune", {}) if isinstance(tool, dict) else {}
    else:
        try:
            data = parse_user_yaml(text)
        except yaml.YAMLError as error:
            raise UserError(f"config file {path} is not valid YAML{yaml_error_text(error)}; "
                            "fix its syntax") from None
        data = {} if data is None else data
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


def build_request(config_file: Path | None, flags: dict[str, Any], folder: Path | None = None,
                  where: str = "by flag") -> Request:
    """Layer the user config, this folder's files, ``--config`` and the flags (set ``where``:
    "by flag" on the command line, "by argument" from the Python API)."""
    request = Request()
    folder = folder or Path.cwd()
    layers = [user_config_file(), *(folder / name for name in PROJECT_FILES)]
    for path in layers:
        if path.exists():  # a directory or an unreadable file in its place is reported, not skipped
            request.apply(read_config_file(path), f"in {path.name if path.parent == folder else path}")
    if config_file is not None:
        request.apply(read_config_file(config_file), f"in {config_file}")
    request.apply({k: v for k, v in flags.items() if v not in (None, (), [])}, where)
    return request
