"""Reads the reviewed YAML data in ``profiles/`` (GPU specs, architectures, rules).

The folder is installed as the data package ``autotune_profiles`` so that a
non-editable ``pip install .`` finds it through ``importlib.resources``.
"""

from __future__ import annotations

import functools
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
    return read_yaml_text(resources.files("autotune_profiles").joinpath(filename).read_text("utf-8"))


def profile_names() -> list[str]:
    """Every YAML file shipped in ``profiles/``."""
    root = resources.files("autotune_profiles")
    return sorted(entry.name for entry in root.iterdir() if entry.name.endswith(".yaml"))
