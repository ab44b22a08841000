"""Reads the reviewed YAML data in ``profiles/`` (GPU specs, architectures, rules).

The folder is installed as the data package ``autotune_profiles`` so that a
non-editable ``pip install .`` finds it through ``importlib.resources``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from importlib import resources
from typing import Any

import yaml

# The C loader is several times faster; both are safe loaders (no arbitrary objects).
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def read_yaml_text(text: str) -> Any:
    """Parse YAML with a safe loader only."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - SafeLoader/CSafeLoader


def dump_yaml(data: Any) -> str:
    """YAML for people: keys in the order given, unicode kept, long lines folded at 100."""
    return yaml.dump(data, Dumper=SafeDumper, sort_keys=False, allow_unicode=True, width=100)


@functools.cache
def load_profile(filename: str) -> Any:
    """The parsed content of ``profiles/<filename>``, read once per process."""
    return parsed_once(filename, resources.files("autotune_profiles").joinpath(filename).read_text("utf-8"))


def parsed_once(name: str, text: str) -> Any:
    """``text`` parsed as YAML, kept as JSON in the cache folder for the next process.

    Parsing ``gpus.yaml`` cost about 36 ms of the 150 ms that ``autotune recommend`` takes,
    and loading the same data as JSON about 1 ms. The file is named after the text's sha256
    and PyYAML's version, so an edited profile or another parser is a miss, never stale
    data. Data JSON cannot hold exactly (integer keys, dates) is not kept; a cache folder
    that cannot be written only costs the speed."""
    from autotune.cache import cache_root  # noqa: PLC0415 - the folder policy lives there

    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    path = cache_root() / "profiles" / f"{name}.{digest}.pyyaml-{yaml.__version__}.json"
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        pass
    data = read_yaml_text(text)
    try:
        encoded = json.dumps(data, ensure_ascii=False)
    except TypeError:  # a date, say
        return data
    if json.loads(encoded) == data:
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(encoded, "utf-8")
            os.replace(partial, path)  # whole or absent: another process may read it now
        except OSError:
            with contextlib.suppress(OSError):  # a full disk leaves no half-written file behind
                partial.unlink(missing_ok=True)
    return data


def profile_names() -> list[str]:
    """Every YAML file shipped in ``profiles/``."""
    root = resources.files("autotune_profiles")
    return sorted(entry.name for entry in root.iterdir() if entry.name.endswith(".yaml"))
