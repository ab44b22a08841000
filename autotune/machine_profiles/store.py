"""Per-machine profiles: this machine's recommendation(s), measured figures and fingerprint,
kept in a store so a training script (``import autotune.auto``) or a fleet can read them.

Layout: ``<store>/<host>.<purpose>.yaml``, one file per machine and purpose (the task, and
the model when one was named: ``train``, ``infer-resnet50``). The store is ``--store DIR``,
else ``AUTOTUNE_STORE``, else the user's data folder (platformdirs: ``~/.local/share/
autotune/profiles`` on Linux); a shared filesystem serves a fleet.

A profile read from disk is data, never code: safe YAML only, checked against the schema;
a corrupt, hostile (a non-safe YAML tag), foreign-schema file is refused with one line
(:class:`ProfileError`). Writes are atomic (a temporary file in the same folder, fsync,
``os.replace``) under a file lock, so several writers leave one whole file and Ctrl-C
never leaves half of one.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from autotune.errors import UserError, one_line
from autotune.machine_profiles.fingerprint import Fingerprint
from autotune.shipped_data import dump_yaml, read_yaml_text
from autotune.types import Recommendation

#: The profile document's schema; a reader refuses any other.
SCHEMA = "autotune.profile/1"
STORE_VARIABLE = "AUTOTUNE_STORE"


class ProfileError(UserError):
    """A profile that cannot be used: the message says which file, why, and what to do."""


@dataclass(frozen=True)
class MachineProfile:
    purpose: str
    fingerprint: Fingerprint
    #: The probe's description of the machine (``Machine.to_dict()``), as plain values.
    machine: dict[str, Any]
    #: One per model asked for (the model-less one when none was); the first is the one a
    #: training script's ``import autotune.auto`` applies.
    recommendations: tuple[Recommendation, ...]
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    #: Made from an inventory by ``autotune fleet plan``: not probed, not measured.
    planned: bool = False

    @property
    def measured(self) -> bool:
        return any(recommendation.measured for recommendation in self.recommendations)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "purpose": self.purpose, "created": self.created, "planned": self.planned,
                "measured": self.measured, "fingerprint": self.fingerprint.to_dict(),
                "machine": _plain(self.machine),
                "recommendations": [recommendation.to_dict() for recommendation in self.recommendations]}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> MachineProfile:
        """:raises ProfileError: not a profile of this schema, or a field missing or malformed."""
        if not isinstance(data, dict):
            raise ProfileError(f"{where} is not an autotune profile (a {type(data).__name__}, not a "
                               "mapping); write it again with autotune profile")
        if data.get("schema") != SCHEMA:
            raise ProfileError(f"{where} has schema {data.get('schema')!r}, and this autotune reads "
                               f"{SCHEMA!r}; write it again with autotune profile")
        try:
            recommendations = tuple(Recommendation.from_dict(item) for item in data["recommendations"])
            if not recommendations:
                raise ValueError("no recommendation")
            return cls(purpose=str(data["purpose"]), fingerprint=Fingerprint.from_dict(data["fingerprint"]),
                       machine=dict(data["machine"]), recommendations=recommendations,
                       created=str(data["created"]), planned=bool(data.get("planned", False)))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            what = f"field {error}" if isinstance(error, KeyError) else str(error) or type(error).__name__
            raise ProfileError(f"{where} is a malformed autotune profile ({what}); write it again with "
                               "autotune profile") from None


def _plain(value: Any) -> Any:
    """Lists for tuples, all the way down: what the document reads back as."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def store_folder(store: str | Path | None = None) -> Path:
    """``store``, else ``AUTOTUNE_STORE``, else the user's data folder."""
    if store:
        return Path(store)
    if os.environ.get(STORE_VARIABLE):
        return Path(os.environ[STORE_VARIABLE])
    import platformdirs  # noqa: PLC0415 - only a profile needs it

    return Path(platformdirs.user_data_dir("autotune")) / "profiles"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "profile"


def purpose_of(task: str, model: str | None = None) -> str:
    """``train``, or ``train-resnet50`` with a model (a path's or callable's last part)."""
    if not model:
        return task
    name = re.split(r"[/:\\]", model.rstrip("/"))[-1].removesuffix(".onnx")
    return _slug(f"{task}-{name}")


def profile_path(folder: Path, host: str, purpose: str) -> Path:
    return folder / f"{_slug(host)}.{_slug(purpose)}.yaml"


def read_profile(path: Path) -> MachineProfile:
    """The profile at ``path``, read as data with a safe YAML loader.

    :raises ProfileError: missing, unreadable, not YAML, a non-safe tag (``!!python/object``),
        another schema, or malformed.
    """
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ProfileError(f"no profile at {path}; write one with autotune profile") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise ProfileError(f"cannot read the profile {path} ({reason})") from None
    try:
        data = read_yaml_text(text)
    except yaml.constructor.ConstructorError as error:
        tag = getattr(error, "problem", "") or "a tag"
        raise ProfileError(f"{path} is refused: it holds {one_line(tag, 120)}, which a profile never has "
                           "(profiles are read as plain data); delete it and write it again with autotune "
                           "profile") from None
    except yaml.YAMLError as error:
        raise ProfileError(f"{path} is not valid YAML ({one_line(str(error), 120)}); write it again with "
                           "autotune profile") from None
    return MachineProfile.from_dict(data, str(path))


def render_profile(profile: MachineProfile) -> str:
    """The profile as the YAML document a store holds."""
    return (f"# autotune profile of {profile.fingerprint.host} ({profile.purpose}); "
            "read by import autotune.auto\n" + dump_yaml(profile.to_dict()))


def write_profile(profile: MachineProfile, path: Path) -> None:
    """Write ``profile`` to ``path`` whole: under a lock beside it, through a temporary file
    in the same folder, flushed to disk, then renamed into place.

    :raises UserError: the folder cannot be created or written.
    """
    from filelock import FileLock  # noqa: PLC0415

    text = render_profile(profile)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path.with_name(f".{path.name}.lock"))):  # a dot-file: not a profile
            try:
                with open(temporary, "w", encoding="utf-8") as file:
                    file.write(text)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, path)
            finally:
                with contextlib.suppress(OSError):
                    temporary.unlink()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UserError(f"cannot write the profile {path} ({reason}); choose a writable store with --store "
                        f"DIR or {STORE_VARIABLE}") from None
