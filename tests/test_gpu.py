"""Checks only a GPU can make: the memory model against the real allocator, real NVML."""

from __future__ import annotations

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
    from autotune.probe import probe

    machine = probe()
    assert machine.gpus, machine.note
    gpu = machine.gpus[0]
    assert gpu.vram_total_bytes > 0 and gpu.compute_capability != "unknown"
    assert cuda.cuda.get_device_capability(0) == tuple(map(int, gpu.compute_capability.split(".")))
