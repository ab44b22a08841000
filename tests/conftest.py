"""Shared fixtures: a fixed host, simulated and replayed machines, a fake plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune import plugins
from autotune.config import INPUT_CHOICES
from autotune.hardware import gpu_database as gpudb
from autotune.hardware.nvml_recording import RecordedNvml
from autotune.hardware.probe import probe
from autotune.recommendation.engine import recommend
from autotune.types import Host, Machine

# Tests see the built-in plugins only (registered from plugins.DEFAULT_PLUGINS), never a
# plugin that happens to be installed on this machine; a test that wants the installed
# entry points runs autotune in a subprocess.
plugins.load_entry_points = False

RECORDINGS = Path(__file__).parent / "nvml"
REPO = Path(__file__).resolve().parent.parent
SHARED_SOURCES = REPO.parent / "shared" / "SOURCES.md"

HOST = Host(cpu_model="Test CPU", logical_cores=16, physical_cores=8, available_cores=16,
            ram_bytes=64 * 2**30, os="Linux test")


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    """No test reads the developer's own config files, project folder or GPU selection."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.chdir(tmp_path)


def simulated(*names: str) -> Machine:
    return gpudb.simulate(list(names), HOST)


def replayed(name: str) -> Machine:
    return probe(RecordedNvml.from_file(RECORDINGS / name), host=HOST)


def settings_for(machine: Machine, task="infer", objective="throughput", tier="balanced",
                 overrides=None) -> dict:
    inputs = {"task": task, "objective": objective, "tier": tier}
    assert set(inputs) == set(INPUT_CHOICES)
    return recommend(machine, inputs, overrides).settings


@pytest.fixture
def register_plugin():
    """Register plugin objects for one test; unregistered afterwards."""
    registered = []

    def register(plugin, name: str):
        plugins.load_plugins()
        plugins.pm.register(plugin, name=name)
        registered.append(plugin)
        return plugin

    yield register
    for plugin in registered:
        plugins.pm.unregister(plugin)


@pytest.fixture
def ctrl_c_on_the_second_measurement(monkeypatch):
    """Ctrl-C arrives while the second configuration is being measured."""
    from autotune.measure.measurer import Measurer

    calls = {"n": 0}
    original = Measurer.measure

    def interrupted_on_the_second(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Measurer, "measure", interrupted_on_the_second)



@pytest.fixture(autouse=True)
def idle_cpu(request, monkeypatch):
    """Other processes' load changes what verify explores (threads for the free cores) and
    says the figures may be off: a test sees an idle CPU unless it is marked real_cpu_load,
    so the suite's outcome does not depend on what else runs on the machine."""
    if request.node.get_closest_marker("real_cpu_load"):
        return
    from autotune.hardware import cpu_load  # noqa: PLC0415

    def idle(window_s: float = 0.3, *args: object, **kwargs: object) -> cpu_load.CpuLoad:
        return cpu_load.CpuLoad(usable_cores=cpu_load.usable_cores(), busy_cores=0.0, window_s=window_s)

    monkeypatch.setattr(cpu_load, "sample_load", idle)


@pytest.fixture
def quick_timing(monkeypatch):
    """Each configuration is timed for a shrunk protocol's minimum only, whatever budget it
    is given (see :mod:`tests.quick_timing`)."""
    from tests import quick_timing as quick  # noqa: PLC0415

    quick.install(monkeypatch.setitem, monkeypatch.setattr)
