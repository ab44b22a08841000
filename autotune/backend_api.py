"""What a backend implements to be measured: a runner that prepares a model once, then
opens sessions from it cheaply.

A plugin's :class:`autotune.types.Backend` names its runner as ``"module:Class"``; the
core imports it only when something is measured, so listing backends never imports a
framework. Everything backends share — timing, statistics, the OOM ladder, the memory
budget, the accuracy check, the batch search, exploration — lives in the core
(``harness``, ``ladder``, ``accuracy``, ``batch_search``, ``measure``, ``verify``) and
talks to backends through this protocol only.

The lifecycle fits compiled runtimes as well as eager PyTorch:

1. ``prepare(model, preparation)`` once per task, precision, input shape and options —
   where a runtime exports, converts or builds an engine (and caches it on disk, see
   :func:`autotune.cache.cached_file`). For eager PyTorch it is nearly free.
2. ``open(prepared, config, memory_budget_bytes)`` per batch size: a session from the
   prepared model. The OOM ladder, the batch search and exploration open many sessions
   from one prepared model.
3. ``session.step()`` / ``outputs()`` / ``peak_memory_bytes()`` / ``close()``.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import numpy as np

    from autotune.model_inputs import ModelInputs


@dataclass(frozen=True)
class RunConfig:
    """One configuration to run: what every runtime shares, plus the backend's own options.

    ``options`` holds the backend options (see :class:`autotune.types.BackendOption`) as
    sorted ``(name, value)`` pairs, so a configuration stays hashable and comparable.
    """

    task: str  # infer | train
    precision: str
    batch_size: int
    resolution: int | None
    cpu_threads: int | None = None
    optimizer: str = "adam"
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, name: str, default: Any = None) -> Any:
        """The option's value; ``default`` when it is absent or None (see :class:`Preparation`)."""
        value = dict(self.options).get(name)
        return default if value is None else value

    def with_options(self, **values: Any) -> RunConfig:
        return replace(self, options=tuple(sorted((dict(self.options) | values).items())))

    def with_precision(self, precision: str) -> RunConfig:
        return replace(self, precision=precision)

    def preparation(self, inputs: ModelInputs, inputs_path: Path | None = None) -> Preparation:
        """What a prepared model covers: everything but the batch size."""
        return Preparation(self.task, self.precision, inputs, self.resolution, self.options,
                           self.optimizer, self.cpu_threads, inputs_path)

    def label(self, shown: tuple[str, ...] = ()) -> str:
        """``fp16 batch 8 224px``, plus the named options (and ``cpu_threads``): a bool
        option by its name when on, any other as ``name=value``."""
        resolution = f" {self.resolution}px" if self.resolution else ""
        extra = []
        for name in shown:
            value = self.cpu_threads if name == "cpu_threads" else self.option(name)
            if name == "cpu_threads" and value:
                extra.append(f"{value} threads")
            elif value is True:
                extra.append(name)
            elif value not in (None, False):
                extra.append(f"{name}={value}")
        return f"{self.precision} batch {self.batch_size}{resolution}" + "".join(f" {e}" for e in extra)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["options"] = dict(self.options)
        return data


@dataclass(frozen=True)
class Preparation:
    """What one prepared model is for: a runner prepares once per distinct value.

    ``inputs`` describes every input the model takes (names, one sample's shape without
    the batch, dtypes, which values to feed: :class:`autotune.model_inputs.ModelInputs`),
    already at ``resolution``; ``cpu_threads`` is here because some runtimes fix their
    thread pool when a session is made. ``inputs_path`` is the user's ``--inputs`` batch
    (None: synthetic inputs), which a runner that quantises calibrates on.
    """

    task: str
    precision: str
    inputs: ModelInputs
    resolution: int | None = None
    options: tuple[tuple[str, Any], ...] = ()
    optimizer: str = "adam"
    cpu_threads: int | None = None
    inputs_path: Path | None = None

    def option(self, name: str, default: Any = None) -> Any:
        """The option's value; ``default`` when it is absent or None (None: the option means
        nothing for this precision, see :meth:`autotune.measure.measurer.Measurer.applicable`)."""
        value = dict(self.options).get(name)
        return default if value is None else value


class MemoryFigure(enum.Enum):
    """Which figure a session's :meth:`Session.peak_memory_bytes` is. They differ by what
    they count, so peaks of different kinds are not comparable."""

    #: The framework allocator's peak of live tensors (``torch.cuda.max_memory_allocated``):
    #: no CUDA context, no library workspaces, no allocator cache.
    ALLOCATOR = "allocator"
    #: NVML's figure for this process, its peak minus the figure just before the session
    #: opened: what the session added (the CUDA context too, when it came with the session).
    NVML_PROCESS_INCREMENT = "nvml_process_increment"
    #: NVML's whole figure for this process: the CUDA context and every session alive in it.
    NVML_PROCESS = "nvml_process"
    #: The runtime's own account of the device memory it took (e.g. an engine's), where NVML
    #: cannot name this process (a container's PID namespace, a driver reporting 0).
    RUNTIME = "runtime"
    #: The whole device's (or MIG instance's) used memory, its peak minus before the session
    #: opened, where NVML cannot name this process: other processes' changes are in it too.
    NVML_DEVICE_INCREMENT = "nvml_device_increment"


class BudgetCheck(enum.Enum):
    """How a memory budget was held, in every measurement made under one."""

    #: The runtime itself fails above it (an allocator cap such as ORT's ``gpu_mem_limit``).
    RUNTIME_LIMIT = "runtime_limit"
    #: The core compared the measured peak after a step (:class:`MemoryFigure` says which).
    MEASURED_PEAK = "measured_peak"
    #: No measured figure: the core compared the memory model's prediction.
    PREDICTED_PEAK = "predicted_peak"


class Clock(Protocol):
    def start(self) -> None: ...

    def stop(self) -> float:
        """Milliseconds since ``start``, after the device finished the work."""
        ...


#: ``Session.math`` in the words every backend uses, so rows of different runtimes compare:
#: an FP32 session whose matmuls and convolutions ran in IEEE FP32, and one where they
#: were allowed TF32 (a GPU's Tensor Cores round the inputs to 10-bit mantissas).
IEEE_MATH = "IEEE matmul and conv"
TF32_MATH = "TF32 matmul and conv"


class Session(Protocol):
    """A prepared model opened at one batch size, ready to run steps.

    Optional: ``math``, a ``str`` saying what an FP32 or TF32 session's matmuls and
    convolutions computed in (:data:`IEEE_MATH` or :data:`TF32_MATH`, with the reason
    after it where the runtime gave no choice), shown beside the result and as ``"math"``
    in JSON; a session without it, or with "", shows nothing."""

    device_name: str

    def step(self) -> None:
        """One inference forward or one training step on the session's own batch."""

    def clock(self) -> Clock:
        """A clock that times device work (CUDA events on a GPU, a monotonic clock on a CPU)."""
        ...

    def outputs(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The model's output for ``inputs`` (one array per named input, a batch of any
        size) in this configuration, as FP32 numpy: the one output the accuracy check
        compares (``logits`` where the model returns several)."""
        ...

    def peak_memory_bytes(self) -> int | None:
        """Peak device memory since the session opened, or None where the runtime has no
        counter (the core then searches the batch by out-of-memory alone).

        Optional attributes the core reads where a session has them: ``peak_memory_figure``
        (a :class:`MemoryFigure`, after a read: which figure this is), ``enforces_memory_budget``
        (a bool overriding :meth:`Runner.enforces_memory_budget` once the session knows, e.g.
        which provider it runs on) and ``host_nodes`` (a tuple of the graph nodes the runtime
        ran on the CPU beside the device, as ``"op_type name"``)."""

    def close(self) -> None:
        """Free everything the session holds (device memory included)."""


class PrecisionEvidence(enum.Enum):
    """What shows that a compiled file runs the precision asked: a field, never a phrase."""

    #: The runtime's own per-layer types show it.
    LAYERS = "layers"
    #: Fused layers (TensorRT's Myelin/ForeignNode) hide their precision behind FP32 inputs
    #: and outputs: the measured speed-up over the FP32 file and the accuracy check carry it.
    FUSED = "fused"


@dataclass(frozen=True)
class ModelFile:
    """The file a compiled runtime runs (a quantised ONNX model, an engine) and the size of
    the FP32 file it was made from, so a measurement can say what the precision saved."""

    size_bytes: int
    fp32_size_bytes: int
    #: What the runtime says the file runs, where it says (``TensorRT engine: 48 layers
    #: fp16, 3 fp32``), and why it was rebuilt, if it was.
    detail: str = ""
    #: What shows the file runs the precision asked, where the runtime proves it.
    precision_evidence: PrecisionEvidence | None = None
    #: FUSED evidence: how many times faster than the FP32 file it ran, as measured.
    speedup_over_fp32: float | None = None

    def describe(self) -> str:
        """``11.8 MB (FP32 46.7 MB)``, then the detail and the evidence after semicolons."""
        if self.size_bytes == self.fp32_size_bytes:
            text = f"{self.size_bytes / 1e6:.1f} MB"
        else:
            text = f"{self.size_bytes / 1e6:.1f} MB (FP32 {self.fp32_size_bytes / 1e6:.1f} MB)"
        if self.detail:
            text += f"; {self.detail}"
        if self.precision_evidence is PrecisionEvidence.FUSED:
            text += "; fused, precision not visible"
            if self.speedup_over_fp32 is not None:
                text += f": {self.speedup_over_fp32:.2f}x the FP32 file's speed"
        return text


class PreparedModel(Protocol):
    """A model made ready for one :class:`Preparation` (an engine, a converted file, a module).

    Optional: ``model_file`` (a :class:`ModelFile`), for a runtime that runs a file it made.
    """

    def close(self) -> None:
        """Free what the prepared model holds; sessions opened from it are closed first."""


class Runner(Protocol):
    """A backend's entry point for measurement."""

    def device(self, wanted: str) -> str:
        """The device this runner will use when ``wanted`` ("cuda" or "cpu") is asked."""
        ...

    def prepare(self, model: Any, preparation: Preparation, device: str,
                max_batch_size: int) -> PreparedModel:
        """Make ``model`` (a :class:`autotune.model.source.ModelSource`) ready to run as
        ``preparation`` says, for batches up to ``max_batch_size``. Raises
        :class:`UnsupportedConfig` for what this backend cannot run here."""
        ...

    def open(self, prepared: PreparedModel, config: RunConfig,
             memory_budget_bytes: float | None = None) -> Session:
        """A session at ``config.batch_size``. Raises the framework's own out-of-memory
        error (see :meth:`is_out_of_memory`) or :class:`OutOfMemory` when it does not fit.
        Where :meth:`enforces_memory_budget` is true it holds the device to
        ``memory_budget_bytes``; elsewhere the core enforces the budget on the memory
        model's prediction."""
        ...

    def enforces_memory_budget(self, device: str) -> bool:
        """True when :meth:`open` can make the device fail above a memory budget."""
        ...

    def is_out_of_memory(self, error: BaseException) -> bool: ...

    # Optional: ``precisions(device, device_precisions) -> tuple[str, ...]``, the precisions
    # this runner runs on ``device``, given those the device runs well (see
    # :func:`autotune.measure.run_config.runner_precisions`). Without it, the device's are taken.


class UnsupportedConfig(Exception):
    """A configuration this backend cannot run here (e.g. INT8 in eager PyTorch on CUDA)."""


class BackendUnavailable(UnsupportedConfig):
    """The backend cannot run this at all here (a GPU provider whose libraries do not load,
    a task it does not do): no precision, batch or resolution will do, so the OOM ladder
    stops and the backend is reported skipped with this reason — never measured somewhere
    else instead."""


class OutOfMemory(Exception):
    """Does not fit: raised by the core's memory-budget check, and by runners whose
    framework has no out-of-memory error of its own."""
