"""Checks only a GPU can make: the memory model against the real allocator, real NVML."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    return torch


def test_memory_model_is_within_10_percent_of_max_memory_allocated(cuda):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from memory_model_accuracy import rows
    finally:
        sys.path.pop(0)
    misses = [row for row in rows() if abs(row["error"]) > 0.10]
    assert not misses, misses


def test_real_nvml_probe_describes_the_gpu(cuda):
    from autotune.hardware.probe import probe

    machine = probe()
    assert machine.gpus, machine.note
    gpu = machine.gpus[0]
    assert gpu.vram_total_bytes > 0 and gpu.compute_capability != "unknown"
    assert cuda.cuda.get_device_capability(0) == tuple(map(int, gpu.compute_capability.split(".")))


def test_batch_search_needs_two_trials_and_lands_near_the_true_largest(cuda):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from gpu_batch_search import autotune_search, peak_or_none, true_largest
    finally:
        sys.path.pop(0)
    from autotune_plugins.torch.runner import TorchRunner

    from autotune.backend_api import RunConfig
    from autotune.model import memory as memory_model
    from autotune.model.source import parse_model
    from autotune.model.stats import reference_models

    runner, model, stats = TorchRunner(), parse_model("resnet18"), reference_models()["resnet18"]
    config = RunConfig("train", "fp32", 1, 224)
    free, _ = cuda.cuda.mem_get_info()
    usable = memory_model.usable_bytes(free, 0.9)
    truth = true_largest(lambda b: (p := peak_or_none(
        runner, model, dataclasses.replace(config, batch_size=b))) is not None
        and p <= usable * 0.95)
    result, _, _ = autotune_search(runner, model, stats, config, usable)
    assert result.trial_count <= 2
    assert abs(result.batch_size - truth) <= 0.10 * truth
