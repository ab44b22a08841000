"""The plugin hooks, the manager, and loading through the entry-point group."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import subprocess
import sys

import pytest

from autotune import hookimpl, plugins
from autotune.errors import UserError
from autotune.recommendation.engine import recommend
from autotune.types import Backend, ModelInspector, Rule
from tests.conftest import simulated

INPUTS = {"task": "infer", "objective": "throughput", "tier": "balanced"}


class FakeBackendPlugin:
    @hookimpl
    def autotune_backends(self):
        return [Backend(name="fake", framework="yaml", distributions=("pyyaml",),
                        description="a test backend")]


class SiteRulesPlugin:
    @hookimpl
    def autotune_rules(self):
        return [Rule(id="site-batch-cap", decision="batch_size", when="gpu.vram_gb >= 14",
                     value=2, source="practice", reference="https://wiki.example.com/gpus",
                     reason="our 16 GB cards are shared by two jobs")]


def test_hook_autotune_backends_adds_a_backend(register_plugin, capsys):
    register_plugin(FakeBackendPlugin(), "fake-backend")
    plugin, backend = plugins.backends()["fake"]
    assert plugin == "fake-backend"
    assert backend.installed_version() == importlib.metadata.version("pyyaml")
    assert "torch" in plugins.backends()  # built-ins still there


def test_hook_autotune_backends_rejects_a_duplicate_name(register_plugin):
    class Clash:
        @hookimpl
        def autotune_backends(self):
            return [Backend(name="torch", framework="torch", description="another torch")]

    register_plugin(Clash(), "clash")
    with pytest.raises(UserError, match="'torch'.*'clash'|'clash'.*'torch'"):
        plugins.backends()


def test_hook_autotune_rules_come_before_the_built_in_rules(register_plugin):
    register_plugin(SiteRulesPlugin(), "site-rules")
    recommendation = recommend(simulated("T4"), INPUTS, extra_rules=plugins.plugin_rules())
    decision = recommendation.decision("batch_size")
    assert (decision.value, decision.rule, decision.source) == (2, "site-batch-cap", "practice")
    # Where the plugin rule does not match, the built-in rules decide as before.
    small = recommend(simulated("RTX 3060 8GB"), INPUTS, extra_rules=plugins.plugin_rules())
    assert small.decision("batch_size").rule == "batch-8gb"


def test_hook_autotune_rules_with_a_bad_rule_names_the_plugin(register_plugin):
    class Broken:
        @hookimpl
        def autotune_rules(self):
            return [Rule(id="broken", decision="batch_size", when="gpu.memory > 4", value=2,
                         source="S000-4", reason="x")]

    register_plugin(Broken(), "broken-rules")
    with pytest.raises(UserError, match="plugin broken-rules.*unknown fact 'gpu.memory'"):
        recommend(simulated("T4"), INPUTS, extra_rules=plugins.plugin_rules())


@pytest.mark.parametrize("rule, problem", [
    (dict(decision="speed"), "unknown decision"),
    (dict(source="S999-1"), "not an id in SOURCES.md"),
    (dict(source="practice"), "needs a reference"),
    (dict(value=None), "exactly one of value and compute"),
    (dict(value="four"), "must be a whole number"),
])
def test_rules_are_checked_when_loaded(rule, problem):
    from autotune.recommendation.rules import RuleSet

    fields = dict(id="r", decision="batch_size", when="true", value=4, source="S000-4", reason="x")
    with pytest.raises(UserError, match=problem):
        RuleSet([Rule(**(fields | rule))])


def test_built_in_backends_are_declared_in_the_entry_point_group():
    entry_points = {ep.name: ep.value for ep in
                    importlib.metadata.entry_points(group=plugins.ENTRY_POINT_GROUP)}
    assert entry_points["torch"] == "autotune_plugins.torch.backend"
    assert entry_points["onnxruntime"] == "autotune_plugins.onnxruntime.backend"
    assert entry_points["tensorrt"] == "autotune_plugins.tensorrt.backend"


def _plugins_listed(environment: dict[str, str]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", "from autotune.cli.main import main; main(['plugins', '--json'])"],
        capture_output=True, text=True, env=os.environ | environment, check=True)
    return sorted(row["backend"] for row in json.loads(result.stdout))


def test_load_plugins_environment_variable_restricts_loading():
    assert _plugins_listed({"AUTOTUNE_LOAD_PLUGINS": "torch,tensorrt"}) == ["tensorrt", "torch"]
    assert _plugins_listed({"AUTOTUNE_LOAD_PLUGINS": ""}) == []


def test_trace_plugins_prints_every_hook_result():
    result = subprocess.run(
        [sys.executable, "-c", "from autotune.cli.main import main; main(['plugins'])"],
        capture_output=True, text=True, env=os.environ | {"AUTOTUNE_TRACE_PLUGINS": "1"},
        check=True)
    assert "[autotune] autotune_backends from torch:" in result.stderr


def fake_inspect(source, resolutions):
    from autotune.model.stats import reference_models

    return dataclasses.replace(reference_models()["resnet18"], name=f"inspected {source.spec}")


def test_hook_autotune_model_inspectors_measures_models_of_its_kind(register_plugin):
    from autotune.model.source import ModelSource, model_stats_for

    class Inspector:
        @hookimpl
        def autotune_model_inspectors(self):
            return [ModelInspector(name="fake", framework="yaml", kinds=("callable",),
                                   inspect="tests.test_plugins:fake_inspect")]

    register_plugin(Inspector(), "fake-inspector")
    stats = model_stats_for(ModelSource("callable", "my.models:net", (3, 224, 224)))
    assert stats.name == "inspected my.models:net"
    names = [inspector.name for _, inspector in plugins.model_inspectors()]
    assert names[0] == "fake" and {"torch", "onnx"} <= set(names)


def test_a_model_kind_no_plugin_measures_is_a_user_error(register_plugin, monkeypatch):
    from autotune.model.source import ModelSource, model_stats_for

    monkeypatch.setattr(plugins, "model_inspectors", lambda: [])
    with pytest.raises(UserError, match="no installed plugin measures callable models"):
        model_stats_for(ModelSource("callable", "my.models:net"))


def test_entry_points_are_cached_per_environment(tmp_path, monkeypatch):
    first = plugins.entry_points()
    assert {"torch", "onnxruntime", "tensorrt"} <= {ep["name"] for ep in first}
    assert list((tmp_path / "xdg-cache" / "autotune").glob("entry_points-*.json"))

    def must_not_read_metadata(*args, **kwargs):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(importlib.metadata, "entry_points", must_not_read_metadata)
    assert plugins.entry_points() == first
    # A new folder on sys.path is another environment: the metadata is read again.
    monkeypatch.syspath_prepend(str(tmp_path / "elsewhere"))
    with pytest.raises(AssertionError, match="the cache should have answered"):
        plugins.entry_points()


def test_a_corrupt_or_unwritable_cache_is_only_slower(tmp_path, monkeypatch):
    cache = plugins._cache_file()
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    assert {"torch"} <= {ep["name"] for ep in plugins.entry_points()}
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/no-such-place")
    assert {"torch"} <= {ep["name"] for ep in plugins.entry_points()}


def test_a_cached_recommend_never_imports_importlib_metadata(tmp_path):
    code = ("import sys\nfrom autotune.cli.main import main\n"
            "try:\n    main(['recommend', '--gpu', 't4'])\nexcept SystemExit:\n    pass\n"
            "print('importlib.metadata' in sys.modules, file=sys.stderr)\n")
    environment = os.environ | {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                           cwd=tmp_path, check=True) for _ in range(2)]
    assert runs[0].stderr.strip().endswith("True")  # the first run reads the metadata
    assert runs[1].stderr.strip().endswith("False")  # the second is answered by the cache
