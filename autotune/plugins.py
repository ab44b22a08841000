"""The plugin manager: every backend and extra rule arrives through it.

Built-in backends are ordinary plugins declared in this package's own
``[project.entry-points.autotune]``, loaded exactly like a third party's.

Environment variables:

* ``AUTOTUNE_LOAD_PLUGINS=torch,onnxruntime`` loads only the named entry points (an
  empty value loads none), as ``LLM_LOAD_PLUGINS`` does for llm.
* ``AUTOTUNE_TRACE_PLUGINS=1`` prints every hook call and result to stderr.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from dataclasses import replace
from typing import Any

import pluggy

from autotune import hookspecs
from autotune.errors import UserError
from autotune.types import Backend, ModelInspector, Rule

ENTRY_POINT_GROUP = "autotune"
pm = pluggy.PluginManager("autotune")
pm.add_hookspecs(hookspecs)
_loaded = False
_distributions: dict[str, tuple[str, str]] = {}


def load_plugins() -> pluggy.PluginManager:
    """Register every plugin of the ``autotune`` entry-point group, once per process.

    A plugin that fails to import is a :class:`UserError` naming it, not a traceback.
    """
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    wanted = os.environ.get("AUTOTUNE_LOAD_PLUGINS")
    names = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if names is not None and entry_point.name not in names:
            continue
        if pm.get_plugin(entry_point.name) is not None or pm.is_blocked(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
        except Exception as error:  # a broken third-party plugin must not take autotune down
            raise UserError(
                f"plugin {entry_point.name!r} ({entry_point.value}) failed to load: {error}; "
                "fix or uninstall it, or skip it with AUTOTUNE_LOAD_PLUGINS"
            ) from None
        pm.register(plugin, name=entry_point.name)
        if entry_point.dist is not None:
            _distributions[entry_point.name] = (entry_point.dist.name, entry_point.dist.version)
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
