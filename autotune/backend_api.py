"""What a backend implements to be measured: a runner that opens sessions.

A plugin's :class:`autotune.types.Backend` names its runner as ``"module:Class"``; the
core imports it only when something is measured, so listing backends never imports a
framework. Everything backends share — timing, statistics, the OOM ladder, the accuracy
check, the batch search — lives in the core (``harness``, ``ladder``, ``accuracy``,
``batch_search``) and talks to backends through this protocol only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class RunConfig:
    """One configuration to run: what a recommendation fixes for a backend."""

    task: str  # infer | train
    precision: str
    batch_size: int
    resolution: int | None
    amp: bool = False
    amp_dtype: str = "none"
    grad_scaler: bool = False
    tf32: bool = False
    cudnn_benchmark: bool = False
    channels_last: bool = False
    compile: bool = False
    optimizer: str = "adam"
    cpu_threads: int | None = None

    @classmethod
    def from_settings(cls, settings: dict[str, Any], task: str, resolution: int | None,
                      optimizer: str = "adam", compile: bool = False) -> RunConfig:
        return cls(task=task, precision=settings["precision"], batch_size=settings["batch_size"],
                   resolution=resolution, amp=settings["amp"], amp_dtype=settings["amp_dtype"],
                   grad_scaler=settings["grad_scaler"], tf32=settings["tf32"],
                   cudnn_benchmark=settings["cudnn_benchmark"],
                   channels_last=settings["channels_last"], compile=compile, optimizer=optimizer,
                   cpu_threads=settings.get("cpu_threads"))

    def with_precision(self, precision: str) -> RunConfig:
        """The same run in another precision, with AMP set the way the rules set it."""
        half = precision in ("fp16", "bf16")
        train_amp = self.task == "train" and half
        return replace(self, precision=precision, amp=train_amp,
                       amp_dtype={"fp16": "float16", "bf16": "bfloat16"}[precision] if train_amp else "none",
                       grad_scaler=train_amp and precision == "fp16",
                       channels_last=self.channels_last and half)

    def label(self) -> str:
        resolution = f" {self.resolution}px" if self.resolution else ""
        return f"{self.precision} batch {self.batch_size}{resolution}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Clock(Protocol):
    def start(self) -> None: ...

    def stop(self) -> float:
        """Milliseconds since ``start``, after the device finished the work."""


class Session(Protocol):
    """A model loaded in one configuration, ready to run steps."""

    device_name: str

    def step(self) -> None:
        """One inference forward or one training step on the session's own batch."""

    def clock(self) -> Clock:
        """A clock that times device work (CUDA events on a GPU, a monotonic clock on a CPU)."""

    def outputs(self, inputs: np.ndarray) -> np.ndarray:
        """The model's outputs for ``inputs`` in this configuration, as FP32 numpy."""

    def peak_memory_bytes(self) -> int | None:
        """Peak device memory since the session opened, or None where not measurable."""

    def close(self) -> None:
        """Free everything the session holds (device memory included)."""


class Runner(Protocol):
    """A backend's entry point for measurement."""

    def device(self, wanted: str) -> str:
        """The device this runner will use when ``wanted`` ("cuda" or "cpu") is asked."""

    def open(self, model: Any, config: RunConfig, device: str,
             memory_budget_bytes: float | None = None,
             predicted_peak_bytes: float | None = None) -> Session:
        """Load ``model`` (a ModelSource) in ``config``. Raises the framework's own
        out-of-memory error (see :meth:`is_out_of_memory`) when it does not fit, and
        :class:`UnsupportedConfig` for a configuration this backend cannot run."""

    def is_out_of_memory(self, error: BaseException) -> bool: ...


class UnsupportedConfig(Exception):
    """A configuration this backend cannot run here (e.g. INT8 in eager PyTorch on CUDA)."""
