"""The plugin manager: every backend and extra rule arrives through it.

Built-in backends are ordinary plugins declared in this package's own
``[project.entry-points.autotune]``, loaded exactly like a third party's. Where those
entry points are missing — a source checkout on ``PYTHONPATH``, a Ray job that ships the
code as ``py_modules`` — the built-ins are registered from :data:`DEFAULT_PLUGINS`
instead, as simonw/llm does with its ``DEFAULT_PLUGINS``.

Environment variables:

* ``AUTOTUNE_LOAD_PLUGINS=torch,onnxruntime`` loads only the named entry points (an
  empty value loads none), as ``LLM_LOAD_PLUGINS`` does for llm.
* ``AUTOTUNE_TRACE_PLUGINS=1`` prints every hook call and result to stderr.

Finding entry points means reading every installed distribution's metadata, and
importing ``importlib.metadata`` alone costs more than the rest of ``autotune
recommend``. So the ``autotune`` group's entry points are cached (in the platform cache
folder, ``~/.cache/autotune`` on Linux), keyed by ``sys.path`` and the modification
times of its folders: installing, upgrading or removing a distribution changes its
folder, and the next run reads the metadata again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import platformdirs
import pluggy

from autotune import hookspecs
from autotune.errors import UserError
from autotune.types import Backend, ModelConverter, ModelInspector, Rule, load_reference

ENTRY_POINT_GROUP = "autotune"
#: The built-in plugins by name: the same modules the entry points name.
DEFAULT_PLUGINS = {
    "torch": "autotune_plugins.torch.backend",
    "onnxruntime": "autotune_plugins.onnxruntime.backend",
    "tensorrt": "autotune_plugins.tensorrt.backend",
}
#: Whether installed ``autotune`` entry points are loaded. The test suite turns it off
#: (tests/conftest.py), so a plugin installed on the developer's machine never changes a
#: test's answer; a test that wants them sets it back.
load_entry_points = True
pm = pluggy.PluginManager("autotune")
pm.add_hookspecs(hookspecs)
_loaded = False
_distributions: dict[str, tuple[str, str]] = {}
_CACHE_FORMAT = 1


def _environment_fingerprint() -> list[list[Any]]:
    """sys.path with the modification time of each folder on it (the working folder aside,
    which changes all the time and holds no installed distribution)."""
    here = os.path.abspath(os.getcwd())
    stamps: list[list[Any]] = []
    for entry in sys.path:
        path = os.path.abspath(entry or ".")
        try:
            stamps.append([path, None if path == here else os.stat(path).st_mtime_ns])
        except OSError:
            stamps.append([path, None])
    return stamps


def _cache_file() -> Path:
    """One file per environment (per sys.path), so several venvs do not evict each other."""
    key = hashlib.sha1("\0".join(sys.path).encode(), usedforsecurity=False).hexdigest()[:16]
    return Path(platformdirs.user_cache_dir("autotune")) / f"entry_points-{key}.json"


def entry_points() -> list[dict[str, Any]]:
    """The ``autotune`` group: name, value ("module:attr"), distribution and version."""
    fingerprint = _environment_fingerprint()
    cache = _cache_file()
    try:
        data = json.loads(cache.read_text("utf-8"))
        if data["format"] == _CACHE_FORMAT and data["fingerprint"] == fingerprint:
            return data["entry_points"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache yet, or an unreadable one: read the metadata
    import importlib.metadata  # noqa: PLC0415 - only on a cache miss

    found = [
        {"name": ep.name, "value": ep.value,
         "distribution": ep.dist.name if ep.dist else None,
         "version": ep.dist.version if ep.dist else None}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    ]
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"format": _CACHE_FORMAT, "fingerprint": fingerprint,
                                         "entry_points": found}), "utf-8")
        os.replace(temporary, cache)
    except OSError:
        pass  # a read-only home: no cache, just slower
    return found


def _import_plugin(name: str, value: str) -> Any:
    try:
        return load_reference(value)
    except Exception as error:  # a broken third-party plugin must not take autotune down
        raise UserError(
            f"plugin {name!r} ({value}) failed to load: {error}; "
            "fix or uninstall it, or skip it with AUTOTUNE_LOAD_PLUGINS"
        ) from None


def load_plugins() -> pluggy.PluginManager:
    """Register every plugin of the ``autotune`` entry-point group, then any built-in
    plugin the entry points did not name, once per process.

    A plugin that fails to import is a :class:`UserError` naming it, not a traceback.
    """
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    wanted = os.environ.get("AUTOTUNE_LOAD_PLUGINS")
    names = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}

    def skip(name: str) -> bool:
        return (names is not None and name not in names) or pm.get_plugin(name) is not None \
            or pm.is_blocked(name)

    for entry_point in entry_points() if load_entry_points else ():
        name = entry_point["name"]
        if skip(name):
            continue
        pm.register(_import_plugin(name, entry_point["value"]), name=name)
        if entry_point["distribution"]:
            _distributions[name] = (entry_point["distribution"], entry_point["version"])
    for name, module in DEFAULT_PLUGINS.items():
        if skip(name):
            continue
        plugin = _import_plugin(name, module)
        if pm.is_registered(plugin):  # registered under another name by an entry point
            continue
        pm.register(plugin, name=name)
        from autotune.version import __version__  # noqa: PLC0415

        _distributions[name] = ("autotune", __version__)
    pm.check_pending()
    return pm


def plugin_distribution(name: str) -> tuple[str, str] | None:
    """(distribution, version) that installed the plugin registered as ``name``."""
    return _distributions.get(name)


def _gather(hook_name: str, key: str) -> list[tuple[str, Any]]:
    """Every item every plugin yields for ``hook_name``, with the plugin that gave it.

    Two items with the same ``key`` attribute are an error naming both plugins.
    """
    load_plugins()
    hook = getattr(pm.hook, hook_name)
    items: list[tuple[str, Any]] = []
    owners: dict[str, str] = {}
    for implementation in hook.get_hookimpls()[::-1]:  # pluggy's call order: last registered first
        # Called one by one (not through pm.hook) so every item keeps its plugin's name.
        yielded = list(implementation.function() or ())
        if os.environ.get("AUTOTUNE_TRACE_PLUGINS"):
            print(f"[autotune] {hook_name} from {implementation.plugin_name}: {yielded}",
                  file=sys.stderr)
        for item in yielded:
            name = getattr(item, key)
            if name in owners:
                raise UserError(
                    f"plugins {owners[name]!r} and {implementation.plugin_name!r} both "
                    f"declare {key} {name!r}; uninstall one or restrict loading with "
                    "AUTOTUNE_LOAD_PLUGINS"
                )
            owners[name] = implementation.plugin_name
            items.append((implementation.plugin_name, item))
    return items


def backends() -> dict[str, tuple[str, Backend]]:
    """Backend name -> (plugin name, registration)."""
    return {backend.name: (plugin, backend) for plugin, backend in _gather("autotune_backends", "name")}


def plugin_rules() -> list[Rule]:
    """Rules from plugins, in the order they are tried; each knows which plugin gave it."""
    return [replace(rule, origin=f"plugin {plugin}") for plugin, rule in _gather("autotune_rules", "id")]


def model_inspectors() -> list[tuple[str, ModelInspector]]:
    """(plugin name, inspector), in the order they are asked."""
    return _gather("autotune_model_inspectors", "name")


def model_converters() -> list[tuple[str, ModelConverter]]:
    """(plugin name, converter), in the order they are asked."""
    return _gather("autotune_model_converters", "name")
