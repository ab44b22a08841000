"""The errors autotune's functions raise: typed, so a caller decides on the type, and each
with the exit code the command line gives it.

The CLI prints ``autotune: error: <message>`` on one line and exits with ``exit_code``;
the Python API (:mod:`autotune.api`) raises them as they are.
"""

from __future__ import annotations

import re
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def one_line(text: str, limit: int | None = None) -> str:
    """A library's message as one line for ours: its first non-empty line, terminal colours
    removed, cut at a word boundary with "…" when longer than ``limit``."""
    lines = [line.strip() for line in _ANSI.sub("", text).splitlines() if line.strip()]
    line = lines[0] if lines else ""
    if limit is None or len(line) <= limit:
        return line
    cut = line[:limit + 1].rsplit(maxsplit=1)[0] if " " in line[:limit + 1] else line[:limit]
    return cut.rstrip(" ,;:.-(") + "…"


class AutotuneError(Exception):
    """Base of every error autotune raises on purpose."""

    exit_code = 1


class UserError(AutotuneError):
    """Bad input from the user: the CLI prints the message on one line and exits 2.

    The message names the problem and how to fix it, e.g.
    ``unknown GPU 't5'; did you mean: t4, a10? (autotune gpus lists them all)``.
    """

    exit_code = 2


class DoesNotFit(UserError):
    """The model fits at no batch, resolution and precision: exit code 3.

    ``measurements`` holds what was measured on the way, when measuring found it out.
    """

    exit_code = 3

    def __init__(self, message: str, measurements: tuple[Any, ...] = ()):
        super().__init__(message)
        self.measurements = measurements


class NoBackend(AutotuneError):
    """No backend (or no configuration) could run here: exit code 1. ``measurements``
    and ``reports`` say what was tried and why each failed."""

    exit_code = 1

    def __init__(self, message: str, measurements: tuple[Any, ...] = (), reports: tuple[Any, ...] = ()):
        super().__init__(message)
        self.measurements = measurements
        self.reports = reports


class Interrupted(AutotuneError):
    """Ctrl-C during measurement: carries what was measured so far; nothing was written."""

    exit_code = 130

    def __init__(self, measurements: list[Any] | tuple[Any, ...] = ()):
        super().__init__("interrupted")
        self.measurements = list(measurements)
