"""The OOM ladder on real sessions: open a configuration at the first rung of S000-7 that
opens and runs a step.

:mod:`autotune.model.oom_ladder` says which rungs to try and in what order; this walks them
with a measurer's sessions and says, rung by rung, why each one passed over did not run.
A precision the backend does not run is not stepped down from (verify tries its
alternatives instead); running out of memory is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from autotune.backend_api import BackendUnavailable, RunConfig, Session, UnsupportedConfig
from autotune.errors import UserError
from autotune.measure.measurement import Outcome
from autotune.model import oom_ladder as ladder
from autotune.model.stats import ModelStats


class RunFailed(Exception):
    """The model raised something other than out-of-memory in this configuration."""


class NothingFits(Exception):
    """Every rung of the OOM ladder ran out of memory or could not run."""

    def __init__(self, steps: list[str], outcome: Outcome):
        super().__init__("; ".join(steps))
        self.steps = steps
        self.outcome = outcome


def first_line(error: BaseException) -> str:
    """``OutOfMemory: CUDA out of memory``: the error's type and its first line, for a reason."""
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"


class LadderSessions(Protocol):
    """What the ladder needs of a :class:`~autotune.measure.measurer.Measurer`."""

    backend: str
    precisions: tuple[str, ...]
    stats: ModelStats

    def open_session(self, config: RunConfig) -> Session: ...

    def inputs(self, resolution: int | None) -> Any: ...

    def first_step(self, session: Session, config: RunConfig) -> int | None: ...

    def is_out_of_memory(self, error: BaseException) -> bool: ...


@dataclass
class Opened:
    """A session open at the first rung that ran a step."""

    session: Session
    #: The rung that ran: the configuration asked for, or one stepped down from it.
    config: RunConfig
    #: One line per rung passed over, and why.
    steps: list[str]
    #: The outputs on the accuracy inputs, taken before the first step (None unless asked).
    outputs: Any
    #: The first step's wall time: a cold step (compilation and caches land there).
    first_step_s: float


def open_first_fitting(sessions: LadderSessions, config: RunConfig, with_outputs: bool = False) -> Opened:
    """The first rung of the S000-7 ladder from ``config`` that opens and runs a step.

    With ``with_outputs``, also the outputs on the accuracy inputs, taken before the first
    step: a training step changes the weights the reference was made with.

    :raises NothingFits: every rung ran out of memory, or the precision asked for does not run.
    :raises RunFailed: a rung failed for another reason (the model's own code).
    :raises UserError, BackendUnavailable: bad input, or a backend that cannot run here at all.
    """
    steps: list[str] = []
    unsupported: set[str] = set()
    ran_out = False
    for rung in ladder.rungs(config, sessions.precisions, sessions.stats.fixed_resolution,
                             sessions.stats.native_resolution):
        if rung.precision in unsupported:
            continue
        session = None
        try:
            session = sessions.open_session(rung)
            outputs = session.outputs(sessions.inputs(rung.resolution)) if with_outputs else None
            stepped = time.monotonic()
            sessions.first_step(session, rung)
            return Opened(session, rung, steps, outputs, time.monotonic() - stepped)
        except (UserError, BackendUnavailable):
            # Bad input (a corrupt file, a calibration batch of the wrong shape) or a
            # provider that cannot load: no rung further down would fare better.
            if session is not None:
                session.close()
            raise
        except UnsupportedConfig as error:
            unsupported.add(rung.precision)
            steps.append(f"{rung.precision}: not supported by the {sessions.backend} backend ({error})")
            if not ran_out:
                # The precision asked for does not run here. A lower one is the ladder's
                # remedy for memory, not a stand-in for it (verify tries its alternatives).
                if session is not None:
                    session.close()
                raise NothingFits(steps, Outcome.UNSUPPORTED) from None
        except Exception as error:  # the model's own code runs here
            if not sessions.is_out_of_memory(error):
                if session is not None:
                    session.close()
                raise RunFailed(f"{rung.label()}: {first_line(error)}") from error
            ran_out = True
            steps.append(ladder.describe_step(rung, "out of memory"))
        if session is not None:
            session.close()
    raise NothingFits(steps, Outcome.OUT_OF_MEMORY if ran_out else Outcome.UNSUPPORTED)
