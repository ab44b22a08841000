"""Writing a recommendation as YAML, JSON, TOML or env lines, and reading it back."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.shipped_data import dump_yaml, read_yaml_text
from autotune.types import Recommendation

FORMATS = ("yaml", "json", "toml", "env")


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return "none" if value is None else str(value)


def render(recommendation: Recommendation, output_format: str) -> str:
    data = recommendation.to_dict()
    if output_format == "yaml":
        header = f"# autotune {recommendation.autotune_version}: {recommendation.machine}\n"
        return header + dump_yaml(data)
    if output_format == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if output_format == "toml":
        import tomli_w  # noqa: PLC0415 - only this format needs it

        # TOML has no null: a decision that does not apply is written as the word none.
        data["settings"] = {name: "none" if value is None else value
                            for name, value in data["settings"].items()}
        return tomli_w.dumps(data)
    if output_format == "env":
        lines = [f"# autotune {recommendation.autotune_version}: {recommendation.machine}"]
        lines += [
            f"AUTOTUNE_{name.upper()}={shlex.quote(_env_value(value))}"
            for name, value in recommendation.settings.items()
        ]
        return "\n".join(lines) + "\n"
    raise UserError(f"unknown format {output_format!r}; use one of {', '.join(FORMATS)}")


def parse(text: str, output_format: str) -> Recommendation:
    """Read back what :func:`render` wrote (YAML, JSON or TOML)."""
    if output_format == "yaml":
        data = read_yaml_text(text)
    elif output_format == "json":
        data = json.loads(text)
    elif output_format == "toml":
        if sys.version_info >= (3, 11):
            import tomllib  # noqa: PLC0415
        else:  # pragma: no cover
            # The floor pyright checks is 3.10, where the project installs tomli; a newer venv has none.
            import tomli as tomllib  # noqa: PLC0415  # pyright: ignore[reportMissingImports]
        data = tomllib.loads(text)
        from autotune.recommendation.rules import decision_specs  # noqa: PLC0415

        specs = decision_specs()
        data["settings"] = {name: None if value == "none" and name in specs and specs[name].nullable
                            else value for name, value in data["settings"].items()}
    else:
        raise UserError(f"cannot read {output_format} back; use yaml, json or toml")
    return Recommendation.from_dict(data)


def check_writable(path: Path) -> None:
    """Fail before any work when ``path`` cannot be written."""
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder; give a file name")
    if not path.parent.is_dir():
        raise UserError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"cannot write {path}: permission denied; choose a writable path")


@contextlib.contextmanager
def atomic_file(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` to write; on success it replaces ``path`` with the
    permissions a new file gets, on failure it vanishes: never a half-written file."""
    check_writable(path)
    temporary = _new_temporary(path, suffix)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _new_temporary(path: Path, suffix: str) -> Path:
    """An empty dot-file beside ``path``, made with mode 0666 so the umask gives it what any
    new file gets (tempfile.mkstemp's 0600 would surprise the user, and reading the umask
    means setting it, which is not safe beside other threads)."""
    while True:
        temporary = path.with_name(f".{path.name}.{os.urandom(6).hex()}{suffix}")
        try:
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:  # 48 random bits taken: draw again
            continue
        return temporary


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all."""
    try:
        with atomic_file(path) as temporary:
            temporary.write_text(text, "utf-8")
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror}; choose a writable path") from None
