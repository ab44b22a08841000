"""Paths pyright found wrong (see [tool.pyright] in pyproject.toml), each held by a test
that runs without a GPU."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from autotune_plugins.tensorrt import engine_build as trt_build

from autotune.measure.measurement import Measurement, Outcome
from autotune.measure.verify import select_backends


def test_all_backends_are_selected_from_any_sequence_the_api_takes():
    registered = {name: ("1.0", SimpleNamespace(name=name)) for name in ("onnxruntime", "tensorrt", "torch")}
    for names in ("all", ["all"], ("all",)):
        chosen = [name for name, _ in select_backends(names, registered, ["torch"])]
        assert chosen == ["torch", "onnxruntime", "tensorrt"]
    chosen = [name for name, _ in select_backends(("tensorrt", "torch"), registered, [])]
    assert chosen == ["tensorrt", "torch"]


class _Config:
    """An IBuilderConfig whose timing caches TensorRT cannot make (None, as the binding may return)."""

    def __init__(self) -> None:
        self.set: list[object] = []

    def create_timing_cache(self, data: bytes) -> None:
        return None

    def set_timing_cache(self, cache: object, ignore_mismatch: bool) -> bool:
        self.set.append(cache)
        return True

    def get_timing_cache(self) -> None:
        return None


def test_a_timing_cache_tensorrt_cannot_make_is_neither_set_nor_written(tmp_path, monkeypatch):
    monkeypatch.setattr(trt_build, "cache_root", lambda: tmp_path)
    request = trt_build.EngineRequest(Path("m.onnx"), "0" * 64, "fp32", {}, 2**30, 3, False, "GPU", "8.9")
    config = _Config()
    with trt_build._timing_cache(SimpleNamespace(__version__="10.16.1.11"), config, request) as timing:
        timing.keep()
    assert config.set == [] and not list(tmp_path.rglob("*.cache"))


def test_a_measurement_without_timing_says_so_where_a_timing_is_needed():
    from autotune.backend_api import RunConfig  # noqa: PLC0415

    failed = Measurement("torch", "cpu", RunConfig("infer", "fp32", 4, None), Outcome.FAILED, "boom")
    with pytest.raises(ValueError, match="has no timing"):
        failed.timed  # noqa: B018
