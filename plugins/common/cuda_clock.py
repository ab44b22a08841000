"""The clock of a CUDA runtime's steps: CUDA events on the stream the work runs on, which
time the GPU's work rather than the host's queueing of it. Shared by the PyTorch and TensorRT
runners (TensorRT's runner holds its device memory through torch)."""

from __future__ import annotations

import torch


class CudaClock:
    """CUDA events around the work; ``stop`` waits for the GPU, then reads the events.

    ``stream``: where the timed work runs (None: torch's current stream). An event times
    only the work queued before it on its own stream, so a runtime on a stream of its own
    (TensorRT) hands that stream in."""

    def __init__(self, stream: torch.cuda.Stream | None = None) -> None:
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)
        self._stream = stream

    def start(self) -> None:
        self._start.record(self._stream)

    def stop(self) -> float:
        self._end.record(self._stream)
        self._end.synchronize()
        return self._start.elapsed_time(self._end)
