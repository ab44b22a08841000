"""What TensorRT says: the process's one logger that keeps every message, the ONNX parser's
errors, and out-of-memory told in words.

TensorRT reports its failures in log messages and parser errors rather than exceptions, so
a build's or a step's reason is read from here. Only the other modules of this plugin import
it, and they hand in the ``tensorrt`` module, so tests can hand in a stand-in.
"""

from __future__ import annotations

import threading
import weakref
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from autotune.sdk import one_line

if TYPE_CHECKING:  # the stub in typings/: TensorRT is imported at run time, and handed in
    import tensorrt  # pyright: ignore[reportMissingModuleSource] - installed only where NVIDIA's index is

#: How much of TensorRT's reason a message shows.
REASON_MAX_CHARS = 200
#: How many of the latest messages the process's logger keeps: a build's VERBOSE log runs to
#: thousands of lines, and a long process builds many engines.
LOG_KEPT = 50_000


class CapturingLogger(Protocol):
    """What :func:`process_logger` gives: a ``trt.ILogger`` that keeps what it was told.

    It serves a whole process, so a caller takes a :meth:`mark` before its own call and
    reads what came ``since`` it."""

    def mark(self) -> int: ...

    def errors(self, since: int = 0) -> list[str]: ...

    def warnings(self, since: int = 0) -> list[str]: ...


_PROCESS_LOGGERS: weakref.WeakKeyDictionary[ModuleType, CapturingLogger] = weakref.WeakKeyDictionary()


def process_logger(trt: ModuleType) -> CapturingLogger:
    """The one ``trt.ILogger`` autotune hands every Builder, OnnxParser and Runtime of this
    ``tensorrt`` module (so of this process): it keeps every message, VERBOSE included,
    rather than print it on a terminal the user is not watching.

    One, because TensorRT's logger is the process's: NVIDIA's 7.x and 8.0 API references
    say it "is internally considered a singleton, and thus multiple instances of IRuntime
    and/or IBuilder must all use the same logger", where a runtime's logger made before a
    builder's gets the build's errors; 8.2 and later say each object's own logger is used
    (docs/runtimes.md). With one logger, a build's or a step's reason is found either way.
    """
    logger = _PROCESS_LOGGERS.get(trt)
    if logger is None:
        logger = _capturing_logger(trt)
        _PROCESS_LOGGERS[trt] = logger
    return logger


def _capturing_logger(trt: ModuleType) -> CapturingLogger:
    class ProcessLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[tuple[Any, str]] = []
            #: How many messages were dropped from the front (marks count from the first one).
            self.dropped = 0
            # TensorRT may log from its own threads: appends and trims are serialised.
            self.lock = threading.Lock()

        def log(self, severity, msg) -> None:
            with self.lock:
                self.messages.append((severity, msg))
                if len(self.messages) > LOG_KEPT:
                    surplus = len(self.messages) - LOG_KEPT
                    del self.messages[:surplus]
                    self.dropped += surplus

        def mark(self) -> int:
            return self.dropped + len(self.messages)

        def _since(self, since: int, wanted: tuple[Any, ...]) -> list[str]:
            start = max(0, since - self.dropped)
            return [text for severity, text in self.messages[start:] if severity in wanted]

        def errors(self, since: int = 0) -> list[str]:
            # pybind11 enums compare by identity, not order: name the severities.
            return self._since(since, (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR))

        def warnings(self, since: int = 0) -> list[str]:
            return self._since(since, (trt.ILogger.Severity.WARNING,))

    return ProcessLogger()


def is_out_of_memory(said: str) -> bool:
    """Whether TensorRT's words say it ran out of memory: it says so in words only ("Error
    Code 2: OutOfMemory (Requested size was ...)", "Cuda Runtime (out of memory)")."""
    return "outofmemory" in said.lower().replace(" ", "")


def parser_errors(parser: tensorrt.OnnxParser) -> list[str]:
    """The ONNX parser's errors, each naming the node it failed on (index, name, operator)."""
    described = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        where = ""
        if error.node() >= 0:
            where = f"node {error.node()}"
            if error.node_name():
                where += f" ({error.node_name()}"
                where += f", {error.node_operator()})" if error.node_operator() else ")"
            elif error.node_operator():
                where += f" ({error.node_operator()})"
            where += ": "
        described.append(where + one_line(error.desc()))
    return described
