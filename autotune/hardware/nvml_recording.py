"""Record a machine's NVML answers, and replay them in place of the real library.

The probe takes its NVML source as a parameter: the real ``pynvml`` module, or a
:class:`RecordedNvml` built from a file that ``autotune probe --record FILE`` wrote on a
real machine. Tests and bug reports use recordings, so no test patches the probe's
internals. A recording is flat YAML, one line per call the probe made::

    nvmlDeviceGetCount: 1
    nvmlDeviceGetHandleByIndex(0): {handle: gpu0}
    nvmlDeviceGetName(gpu0): NVIDIA T4
    nvmlDeviceGetMemoryInfo(gpu0): {total: 16106127360, free: 15642329088, used: 463798272}
    nvmlDeviceGetPowerManagementLimit(gpu0): {error: NotSupported}
    nvmlInit: {error: LibraryNotFound}     # a machine without the NVIDIA driver
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml
import yaml

from autotune.errors import UserError
from autotune.files import NVML_RECORDING_MAX_BYTES, parse_user_yaml, read_user_file, yaml_error_text


def _error_name(error: pynvml.NVMLError) -> str:
    """``NVMLError_NotSupported`` -> ``NotSupported``."""
    return type(error).__name__.removeprefix("NVMLError_") or "Unknown"


def _error_from_name(name: str) -> pynvml.NVMLError:
    error_class = getattr(pynvml, f"NVMLError_{name}", None)
    if error_class is None:
        return pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)
    return error_class()


_RECORD_FIX = "record a new one with `autotune probe --record FILE`"


def _is_answer(key: Any, answer: Any) -> bool:
    """Whether one line of a recording has the shape RecordingNvml writes: a call's name
    (``nvml...``) and a plain answer; a mapping (a structure, an error, a handle) has
    names for keys, and an error or a handle is named by text."""
    if not isinstance(key, str) or not key.startswith("nvml"):
        return False
    if isinstance(answer, dict):
        return all(isinstance(name, str) for name in answer) and all(
            isinstance(answer[name], str) for name in ("error", "handle") if name in answer)
    return True


def _call_key(function: str, args: tuple[Any, ...]) -> str:
    return function if not args else f"{function}({', '.join(str(a) for a in args)})"


class _Handle(str):
    """A replayed device handle: just its recorded name (``gpu0``, ``gpu0-mig1``)."""


class RecordedNvml:
    """Answers NVML calls from a recording; has the ``pynvml`` names the probe uses.

    A call the recording does not hold raises ``NVMLError_FunctionNotFound``, as an
    older driver without that function would.
    """

    def __init__(self, answers: dict[str, Any], origin: str = "recording"):
        self._answers = answers
        self.origin = origin

    @classmethod
    def from_file(cls, path: str | Path) -> RecordedNvml:
        """The recording in ``path``; a UserError naming the file when it is not one."""
        path = Path(path)
        text = read_user_file(path, "NVML recording", max_bytes=NVML_RECORDING_MAX_BYTES, text=True,
                              fix=_RECORD_FIX)
        try:
            answers = parse_user_yaml(text)
        except yaml.YAMLError as error:
            raise UserError(f"NVML recording {path} is not valid YAML{yaml_error_text(error)}; "
                            f"is it cut short? {_RECORD_FIX}") from None
        if not isinstance(answers, dict):
            raise UserError(f"NVML recording {path} is not a mapping of calls to answers; {_RECORD_FIX}")
        for key, answer in answers.items():
            if not _is_answer(key, answer):
                shown = f"{key}: {answer!r}" if isinstance(key, str) else repr(key)
                raise UserError(f"NVML recording {path} holds {shown[:80]!r}, not an NVML call and its "
                                f"answer (e.g. `nvmlDeviceGetCount: 1`); {_RECORD_FIX}")
        return cls(answers, origin=str(path))

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("nvml"):
            # Constants and error classes are the real library's.
            return getattr(pynvml, name)

        def replay(*args: Any) -> Any:
            key = _call_key(name, args)
            if key not in self._answers:
                raise pynvml.NVMLError_FunctionNotFound()
            answer = self._answers[key]
            if isinstance(answer, dict):
                if "error" in answer:
                    raise _error_from_name(answer["error"])
                if "handle" in answer:
                    return _Handle(answer["handle"])
                return SimpleNamespace(**answer)
            if isinstance(answer, list):
                # A list of structures (nvmlDeviceGetComputeRunningProcesses' processes)
                # replays as objects with the fields' names, as pynvml returns them.
                return tuple(SimpleNamespace(**item) if isinstance(item, dict) else item for item in answer)
            return answer

        return replay


class RecordingNvml:
    """Wraps the real ``pynvml`` and writes down every answer the probe gets."""

    def __init__(self, nvml: Any = pynvml):
        self._nvml = nvml
        self.answers: dict[str, Any] = {}
        self._handle_names: dict[int, str] = {}
        self._handles: list[Any] = []  # keeps handles alive so their ids stay unique

    def _name_handle(self, handle: Any, name: str) -> dict[str, str]:
        self._handles.append(handle)
        self._handle_names[id(handle)] = name
        return {"handle": name}

    def _plain(self, value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        if isinstance(value, (tuple, list)):
            return [self._plain(v) for v in value]
        if hasattr(value, "_fields_"):  # a ctypes structure such as nvmlMemory_t
            return {field[0]: self._plain(getattr(value, field[0])) for field in value._fields_}
        if isinstance(value, (SimpleNamespace, pynvml.nvmlFriendlyObject)):
            # A replayed structure when re-recording, or pynvml's friendly object (a
            # process of nvmlDeviceGetComputeRunningProcesses): its fields are its attributes.
            return {key: self._plain(item) for key, item in vars(value).items()}
        return value

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._nvml, name)
        if not name.startswith("nvml") or not callable(target):
            return target

        def record(*args: Any) -> Any:
            named_args = tuple(self._handle_names.get(id(a), a) for a in args)
            key = _call_key(name, named_args)
            try:
                result = target(*args)
            except self._nvml.NVMLError as error:
                self.answers[key] = {"error": _error_name(error)}
                raise
            if name == "nvmlDeviceGetHandleByIndex":
                self.answers[key] = self._name_handle(result, f"gpu{args[0]}")
            elif name == "nvmlDeviceGetMigDeviceHandleByIndex":
                parent = named_args[0]
                self.answers[key] = self._name_handle(result, f"{parent}-mig{args[1]}")
            else:
                self.answers[key] = self._plain(result)
            return result

        return record

    def dump(self) -> str:
        return yaml.safe_dump(self.answers, sort_keys=False, default_flow_style=None)
