"""What a backend implements to be measured, what it is handed, and how its steps are timed.

A backend's runner (:class:`Runner`) prepares a model once per precision (:class:`Preparation`),
opens a :class:`Session` per configuration (:class:`RunConfig`), and says what it cannot do
with :class:`UnsupportedConfig` / :class:`BackendUnavailable`; the core times the session's
steps by the shared protocol (:func:`protocol`) with the session's :class:`Clock`
(:class:`WallClock` on the host).
"""

from autotune.backend_api import (
    IEEE_MATH,
    TF32_MATH,
    BackendUnavailable,
    BudgetCheck,
    Clock,
    MemoryFigure,
    ModelFile,
    OutOfMemory,
    PrecisionEvidence,
    Preparation,
    PreparedModel,
    RunConfig,
    Runner,
    Session,
    UnsupportedConfig,
)
from autotune.measure.protocol import WallClock, protocol

__all__ = ["IEEE_MATH", "TF32_MATH", "BackendUnavailable", "BudgetCheck", "Clock", "MemoryFigure",
           "ModelFile", "OutOfMemory", "Preparation", "PrecisionEvidence", "PreparedModel", "RunConfig",
           "Runner", "Session", "UnsupportedConfig", "WallClock", "protocol"]
