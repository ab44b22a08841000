"""The installed version of a pip distribution, found quickly enough for ``import autotune.auto``."""

from __future__ import annotations

import functools
import os
import sys


def _normalized(distribution: str) -> str:
    return distribution.lower().replace("-", "_").replace(".", "_")


@functools.cache
def _dist_info_versions() -> dict[str, str]:
    """Distribution name -> version, from the ``<name>-<version>.dist-info`` folders on
    ``sys.path``: one directory listing per entry, where ``importlib.metadata.version``
    reads every distribution's metadata (about 10 ms a call, measured: too slow for
    ``import autotune.auto``). The first entry on the path wins, as for an import."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                distribution, _, version = name.removesuffix(".dist-info").partition("-")
                found.setdefault(_normalized(distribution), version)
    return found


def distribution_version(*distributions: str) -> str | None:
    """The installed version of the first of ``distributions`` (pip names) found, or None;
    other layouts than .dist-info (an .egg-info) are asked of ``importlib.metadata``."""
    for distribution in distributions:
        version = _dist_info_versions().get(_normalized(distribution))
        if version:
            return version
    from importlib import metadata  # noqa: PLC0415 - costly to import; the rare layouts only

    for distribution in distributions:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None
