"""The one place that opens a user's file: config files, NVML recordings, inputs, ONNX models.

Every problem with the file itself (missing, a directory, unreadable, empty, too large,
binary where text is expected) becomes one :class:`~autotune.errors.UserError` that
names the file, the problem and the fix, so the CLI prints one line and never a
traceback. Parsing the content stays with each reader; this module imports no
framework (numpy, torch, onnx).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, BinaryIO, Literal, overload

import yaml

from autotune.errors import UserError
from autotune.shipped_data import SafeLoader, read_yaml_text

MIB = 2**20
GIB = 2**30
# A settings file is a few lines; a megabyte of it is a wrong file (a log, a data set).
CONFIG_MAX_BYTES = 1 * MIB
# A recording is about 1 KB per GPU (a few more per MIG slice); 16 MiB is far past any machine.
NVML_RECORDING_MAX_BYTES = 16 * MIB
# Protobuf parses no single message of 2 GiB or more; larger models keep their weights in
# external data files, which autotune does not read.
ONNX_MAX_BYTES = 2**31 - 1
# The accuracy batch is a few dozen samples, read whole into memory; 4 GiB is a wrong file.
INPUTS_MAX_BYTES = 4 * GIB


def _size_text(size_bytes: int) -> str:
    if size_bytes >= GIB:
        return f"{size_bytes / GIB:.1f} GiB"
    if size_bytes >= MIB:
        return f"{size_bytes / MIB:.1f} MiB"
    return f"{size_bytes:,} bytes"


def _reason(error: OSError) -> str:
    """``Permission denied``: the OS's words, without the errno and path around them."""
    return error.strerror or str(error)


def check_user_file(path: Path, what: str, *, max_bytes: int, fix: str) -> int:
    """The size in bytes of ``path``, once it is known to be a regular, non-empty file
    within ``max_bytes``; else a UserError naming ``what`` (e.g. "config file"), ``path``,
    the problem and ``fix``. Only stats the file: a FIFO or a huge file is never opened."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"cannot read {what} {path}: it does not exist; {fix}") from None
    except OSError as error:
        raise UserError(f"cannot read {what} {path}: {_reason(error)}; {fix}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"cannot read {what} {path}: it is a directory; {fix}")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"cannot read {what} {path}: it is not a regular file (a device, pipe or "
                        f"socket); {fix}")
    if info.st_size == 0:
        raise UserError(f"cannot read {what} {path}: it is empty; {fix}")
    if info.st_size > max_bytes:
        size, limit = _size_text(info.st_size), _size_text(max_bytes)
        if size == limit:  # just over: the rounded sizes would read the same
            size, limit = f"{info.st_size:,} bytes", f"{max_bytes:,} bytes"
        raise UserError(f"cannot read {what} {path}: it is {size}, and autotune reads at most {limit} "
                        f"here; is it the right file? {fix}")
    return info.st_size


def open_user_file(path: Path, what: str, *, max_bytes: int, fix: str) -> BinaryIO:
    """``path`` opened for reading bytes, after :func:`check_user_file`; the caller closes it.

    For readers (numpy, torch) that read a file object themselves, without a second copy.
    """
    check_user_file(path, what, max_bytes=max_bytes, fix=fix)
    return _open(path, what, fix)


def _open(path: Path, what: str, fix: str) -> BinaryIO:
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as error:
        hint = "check its permissions" if isinstance(error, PermissionError) else fix
        raise UserError(f"cannot read {what} {path}: {_reason(error)}; {hint}") from None


def _decode(data: bytes, path: Path, what: str, fix: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # What Windows PowerShell's `>` writes.
        raise UserError(f"cannot read {what} {path}: it is UTF-16 text; save it as UTF-8")
    if b"\x00" in data:
        raise UserError(f"cannot read {what} {path}: it is binary, not text "
                        f"(a NUL byte at offset {data.index(0)}); is it the right file? {fix}")
    try:
        text = data.decode("utf-8-sig")  # a BOM, as Notepad writes, is not part of the text
    except UnicodeDecodeError as error:
        raise UserError(f"cannot read {what} {path}: it is not UTF-8 text (byte {data[error.start]:#04x} "
                        f"at offset {error.start}); save it as UTF-8") from None
    if not text.strip():
        raise UserError(f"cannot read {what} {path}: it holds only whitespace; {fix}")
    return text


@overload
def read_user_file(path: Path, what: str, *, max_bytes: int, text: Literal[True], fix: str) -> str: ...
@overload
def read_user_file(path: Path, what: str, *, max_bytes: int, text: Literal[False], fix: str) -> bytes: ...
def read_user_file(path: Path, what: str, *, max_bytes: int, text: bool, fix: str) -> str | bytes:
    """The whole content of ``path``: ``str`` (UTF-8) when ``text``, else ``bytes``.

    Raises UserError, naming ``what``, ``path``, the problem and ``fix``, when the file does
    not exist, is a directory or not a regular file, cannot be read, is empty, is larger
    than ``max_bytes`` (checked before reading), or, for text, is binary or not UTF-8.
    """
    size_bytes = check_user_file(path, what, max_bytes=max_bytes, fix=fix)
    with _open(path, what, fix) as file:
        try:
            data = file.read(size_bytes + 1)
            if len(data) > size_bytes:  # it grew since the stat: read on, one byte past the limit
                data += file.read(max_bytes + 1 - len(data))
        except OSError as error:
            raise UserError(f"cannot read {what} {path}: {_reason(error)}; {fix}") from None
    if len(data) > max_bytes:
        raise UserError(f"cannot read {what} {path}: it is larger than the {_size_text(max_bytes)} "
                        f"autotune reads here; is it the right file? {fix}")
    if not data:
        raise UserError(f"cannot read {what} {path}: it is empty; {fix}")
    return _decode(data, path, what, fix) if text else data


# Settings and recordings nest two levels; libyaml's loader recurses once per level and
# crashes the whole process (no exception) somewhere past 20,000.
MAX_YAML_DEPTH = 64


def parse_user_yaml(text: str) -> Any:
    """YAML from a user's file, with the safe loader, refusing absurd nesting first.

    Raises ``yaml.YAMLError`` (a ``MarkedYAMLError`` with the line, for nesting) like
    the loader itself, so callers report both the same way.
    """
    depth = 0
    for event in yaml.parse(text, Loader=SafeLoader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise yaml.MarkedYAMLError(problem=f"nested more than {MAX_YAML_DEPTH} levels deep",
                                           problem_mark=event.start_mark)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1
    return read_yaml_text(text)


def yaml_error_text(error: yaml.YAMLError) -> str:
    """Where and what went wrong, on one line: `` at line 3 (found unexpected ':')``."""
    where = getattr(error, "problem_mark", None)
    line = f" at line {where.line + 1}" if where else ""
    problem = " ".join(str(getattr(error, "problem", None) or "").split())
    return f"{line} ({problem})" if problem else line
