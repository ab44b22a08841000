"""A runner without a framework, for tests of the core and of plugins.

:class:`FakeRunner` is a complete :class:`~autotune.sdk.running.Runner`: its sessions sleep
``seconds_per_sample`` per sample of their batch (scaled by ``speedups`` for options that are
on) or report a scripted ``step_ms``, run out of memory above ``capacity`` samples (a
:class:`MemoryError`, which it recognises), refuse the ``unsupported`` precisions, and return
outputs that are a fixed function of the inputs — noisy for the ``corrupt`` precisions, so
the accuracy check fails them. Everything it prepared and opened is kept for assertions.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from autotune.backend_api import Preparation, RunConfig, UnsupportedConfig

#: How many output columns a fake model returns (the first features of each sample, scaled).
OUTPUT_WIDTH = 10


class FakeClock:
    """The session's clock: the scripted milliseconds when given, else the wall time between
    start and stop (as a CUDA event would time the kernels alone, a script may say less than
    the wall)."""

    def __init__(self, scripted_ms: Iterator[float] | None) -> None:
        self._scripted_ms = scripted_ms
        self._started = 0.0

    def start(self) -> None:
        self._started = time.perf_counter()

    def stop(self) -> float:
        if self._scripted_ms is not None:
            return next(self._scripted_ms)
        return (time.perf_counter() - self._started) * 1000


class FakeSession:
    """One configuration's session: each step sleeps ``step_s``; its clock reports ``step_ms``
    when given (a device time: one figure for every step, or a script of one per step), else
    the wall."""

    device_name = "fake device"

    def __init__(self, step_s: float = 0.0, step_ms: float | Iterable[float] | None = None,
                 corrupt: bool = False) -> None:
        self.step_s, self.corrupt = step_s, corrupt
        if step_ms is None or isinstance(step_ms, (int, float)):
            self._scripted_ms = None if step_ms is None else itertools.repeat(float(step_ms))
        else:
            self._scripted_ms = iter(step_ms)
        self.steps = 0
        self.closed = False

    def step(self) -> None:
        self.steps += 1
        if self.step_s:
            time.sleep(self.step_s)

    def clock(self) -> FakeClock:
        return FakeClock(self._scripted_ms)

    def outputs(self, inputs: Mapping[str, Any]) -> Any:
        import numpy as np  # noqa: PLC0415 - only an accuracy check reads outputs

        batch = next(iter(inputs.values()))
        scores = np.asarray(batch, dtype=np.float64).reshape(len(batch), -1)[:, :OUTPUT_WIDTH] * 10
        if self.corrupt:
            scores = scores + np.random.default_rng(3).normal(0, 50, scores.shape)
        return scores

    def peak_memory_bytes(self) -> int | None:
        return None

    def close(self) -> None:
        self.closed = True


class FakePrepared:
    def __init__(self, preparation: Preparation) -> None:
        self.preparation = preparation
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeRunner:
    """See the module. ``enforces_budget``: whether it says it keeps a memory budget itself."""

    def __init__(self, *, seconds_per_sample: float = 0.0, step_ms: float | None = None,
                 capacity: int | None = None, unsupported: tuple[str, ...] = (),
                 corrupt: tuple[str, ...] = (), speedups: Mapping[str, float] | None = None,
                 enforces_budget: bool = False) -> None:
        self.seconds_per_sample, self.step_ms, self.capacity = seconds_per_sample, step_ms, capacity
        self.unsupported, self.corrupt = unsupported, corrupt
        self.speedups = dict(speedups or {})
        self.enforces_budget = enforces_budget
        self.prepared: list[Preparation] = []
        self.sessions: list[FakeSession] = []

    def device(self, wanted: str) -> str:
        return "cpu"

    def is_out_of_memory(self, error: BaseException) -> bool:
        return isinstance(error, MemoryError)

    def enforces_memory_budget(self, device: str) -> bool:
        return self.enforces_budget

    def prepare(self, model: Any, preparation: Preparation, device: str, max_batch_size: int) -> FakePrepared:
        if preparation.precision in self.unsupported:
            raise UnsupportedConfig(f"the fake runner has no {preparation.precision}")
        self.prepared.append(preparation)
        return FakePrepared(preparation)

    def open(self, prepared: FakePrepared, config: RunConfig,
             memory_budget_bytes: float | None = None) -> FakeSession:
        samples = config.batch_size * (config.resolution or 1) ** 2
        if self.capacity is not None and samples > self.capacity:
            raise MemoryError(f"the fake runner holds {self.capacity} samples, not {samples}")
        step_s = self.seconds_per_sample * config.batch_size
        for option, factor in self.speedups.items():
            if config.option(option):
                step_s *= factor
        session = FakeSession(step_s, self.step_ms, corrupt=config.precision in self.corrupt)
        self.sessions.append(session)
        return session
