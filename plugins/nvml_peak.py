"""A process's peak GPU memory from NVML, for runtimes that keep no counter of their own
(ONNX Runtime's CUDA provider, TensorRT): their allocators keep what they took, so the
largest reading after the steps is the peak."""

from __future__ import annotations

import functools
import os

from autotune.machine_probe import probe


@functools.cache
def first_visible_gpu_index() -> int | None:
    """NVML's index of the GPU CUDA's device 0 is: the first one ``CUDA_VISIBLE_DEVICES``
    leaves (indexes or UUIDs), as the probe reads it."""
    gpus = probe().gpus
    return gpus[0].index if gpus else None


class ProcessPeakMemory:
    """This process's memory on CUDA's device 0, the largest NVML reading so far."""

    def __init__(self) -> None:
        self.peak: int | None = None
        self._nvml = None
        index = first_visible_gpu_index()
        if index is None:
            return
        try:
            import pynvml  # noqa: PLC0415 - NVML is there wherever a GPU runtime runs

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._nvml = pynvml
        except Exception:  # noqa: BLE001 - no NVML: the peak stays unknown
            pass

    def read(self) -> int | None:
        if self._nvml is None:
            return None
        try:
            processes = self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        except Exception:  # noqa: BLE001 - a driver without per-process accounting
            return None
        used = [p.usedGpuMemory for p in processes if p.pid == os.getpid() and p.usedGpuMemory]
        if used:
            self.peak = max(self.peak or 0, max(used))
        return self.peak
