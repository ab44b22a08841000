"""The measurement plan: what one model's measurement on this machine is asked to do, built
once from the request by :mod:`autotune.api` and passed on whole to ``verify`` and
``bench`` (and through ``verify``, to ``autotune profile --verify`` and a fleet's workers).

Each budget has one meaning (:class:`MeasurementBudget`); the memory a configuration may
plan with is one figure in bytes, the device's usable share held under the user's memory
budget (:attr:`MeasurementPlan.usable_bytes`); the largest batch the memory model allows is
computed in one place (:meth:`MeasurementPlan.largest_batch`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.backend_api import RunConfig
from autotune.config import VERIFY_BUDGET_S
from autotune.files import GIB
from autotune.hardware.cpu_load import CpuLoad
from autotune.measure.measurement import Measurement
from autotune.model import memory as memory_model
from autotune.model.source import ModelSource
from autotune.model.stats import ModelStats, memory_constants
from autotune.types import Recommendation


@dataclass(frozen=True)
class MeasurementBudget:
    """The budgets a measurement keeps, each with one meaning."""

    #: ``verify``: wall seconds per backend — its runner, the model's build or export, the
    #: batch search and every measurement.
    backend_s: float = VERIFY_BUDGET_S
    #: ``bench``: wall seconds per point of the sweep (None: the protocol's ``config_budget_s``).
    point_s: float | None = None
    #: The device memory one configuration may take, in bytes (``--memory-budget-gb``; None:
    #: the device's own).
    memory_bytes: float | None = None
    #: The accuracy loss allowed against FP32 (None: the protocol's, S002-6).
    accuracy_loss: float | None = None

    @classmethod
    def from_request(cls, *, backend_s: float = VERIFY_BUDGET_S, point_s: float | None = None,
                     memory_gb: float | None = None, accuracy_loss: float | None = None) -> MeasurementBudget:
        """From the API's arguments: ``--memory-budget-gb`` in bytes (None or 0: no budget)."""
        return cls(backend_s, point_s, memory_gb * GIB if memory_gb else None, accuracy_loss)


@dataclass(frozen=True)
class MeasurementPlan:
    """One model's measurement: the rules' proposal it starts from, the model, this
    machine's facts, the budgets, and what the user fixed."""

    #: The rules' recommendation, which measurement starts from and decides over.
    proposed: Recommendation
    model: ModelSource
    stats: ModelStats
    facts: Mapping[str, Any]
    optimizer: str
    latency_budget_ms: float
    budget: MeasurementBudget
    #: A ``.npy``/``.pt`` batch for the accuracy check (None: synthetic inputs).
    inputs_path: Path | None = None
    #: Decisions the user set (and ``batch_size`` for a graph exported at a fixed batch):
    #: measurement keeps them.
    user_fixed: frozenset[str] = frozenset()
    #: backend name -> option name -> value, as the user set them.
    user_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    on_measurement: Callable[[Measurement], None] | None = None
    on_iteration: Callable[[], None] | None = None
    #: The share of free GPU memory a plan may fill (``--headroom``; None: the memory
    #: model's default), the same figure the recommendation planned with.
    headroom: float | None = None
    #: How busy this process's CPUs were before measuring (a CPU measurement only).
    cpu_load: CpuLoad | None = None

    @property
    def task(self) -> str:
        return self.proposed.inputs["task"]

    @property
    def usable_bytes(self) -> float:
        """The memory a configuration may plan with: the memory model's usable share of the
        GPU's free memory (half the host's RAM on a CPU), never above the memory budget."""
        if self.facts["gpu.count"] == 0:
            usable = self.facts["host.ram_gb"] * GIB * 0.5  # the CPU shares RAM with everything else
        else:
            headroom = memory_constants()["headroom_fraction"] if self.headroom is None else self.headroom
            usable = memory_model.usable_bytes(self.facts["gpu.free_vram_gb"] * GIB, headroom)
        return min(usable, self.budget.memory_bytes) if self.budget.memory_bytes else usable

    def largest_batch(self, config: RunConfig) -> int:
        """The memory model's largest batch for ``config``'s resolution, precision and task
        within :attr:`usable_bytes` (0: not even batch 1)."""
        return memory_model.max_batch(self.stats, self.usable_bytes, config.resolution, config.precision,
                                      config.task, self.optimizer)

    def options_for(self, backend: str) -> Mapping[str, Any]:
        """The options the user set for ``backend``."""
        return self.user_options.get(backend, {})
