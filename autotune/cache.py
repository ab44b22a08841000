"""Files that are slow to make and the same every time for the same inputs, kept on disk.

A converted model (an ``.onnx`` file exported from PyTorch, later a TensorRT engine) takes
seconds to minutes to build and depends only on what the caller puts in its key: the
model's content hash, the conversion settings, the framework versions and, for an engine,
the GPU. :func:`cached_file` names the file after the sha256 of that key, so a second run
with the same key finds it, and a changed weight or setting finds nothing and builds anew.

Layout, under the platform cache folder (``~/.cache/autotune`` on Linux, or
``$XDG_CACHE_HOME/autotune``)::

    <kind>/<sha256>.<suffix>   the artifact, complete or absent
    <kind>/<sha256>.json       its key, for a person wondering what the file is
    <kind>/<sha256>.lock       filelock's empty lock file (see below)

``profiles/<name>.<sha256>.pyyaml-<version>.json`` holds a shipped profile parsed once
(:func:`autotune.shipped_data.parsed_once`): loading JSON is much quicker than parsing YAML.

Deleting the folder is always safe: everything in it is rebuilt on demand.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import platformdirs

from autotune.errors import UserError

_HASH_CHUNK_BYTES = 2**20


def cache_root() -> Path:
    """The folder every kind of cached file lives under."""
    return Path(platformdirs.user_cache_dir("autotune"))


def key_digest(key: Mapping[str, Any]) -> str:
    """sha256 of the key as canonical JSON (sorted keys, no spaces), so the same key gives the
    same name in every process. Values must be JSON (tuples become lists): a ``str()``
    fallback would let object addresses into the key and make every run a miss."""
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes (a model a cached artifact is made from), read in chunks and
    remembered per path, modification time and size."""
    status = path.stat()
    return _file_sha256(str(path.resolve()), status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(_HASH_CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _unwritable(folder: Path, error: OSError) -> UserError:
    reason = error.strerror or type(error).__name__
    return UserError(f"cannot write the autotune cache folder {folder} ({reason}); make it writable, "
                     "or set XDG_CACHE_HOME to a writable folder")


def _fsync(path: Path) -> None:
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def cached_file(kind: str, key: Mapping[str, Any], suffix: str, build: Callable[[Path], None],
                *, note: str | None = None) -> Path:
    """The path of the file ``build`` makes for ``key``, built only when it is not cached yet.

    :param kind: the subfolder, one per sort of artifact (``"onnx"``).
    :param key: everything the file depends on, as JSON values; the file is named after its
        sha256, and the key is written beside it as ``<name>.json``.
    :param suffix: the file's extension with its dot (``".onnx"``); the temporary path
        handed to ``build`` ends with it too, since some writers pick the format from it.
    :param build: writes the file at the path it is given (a temporary one in the same
        folder). If it raises, or the user presses Ctrl-C, the temporary is removed and the
        error goes on; only a complete file, flushed to disk, is moved into place with
        ``os.replace``, so a reader never sees half a file.
    :param note: written in the sidecar, not hashed: what a person would call the file
        (``"resnet18 at 3x224x224"``), since the key holds only the model's content hash.

    Several processes may ask for the same key at once (a fleet of jobs, or ``verify`` beside
    ``bench``): a file lock per key lets one build while the others wait, then find its
    file. The lock files stay: removing a lock file another process is waiting on is how
    lock files stop locking.

    :raises UserError: the cache folder cannot be created or written.
    """
    folder = cache_root() / kind
    digest = key_digest(key)
    path = folder / f"{digest}{suffix}"
    if path.is_file():
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock  # noqa: PLC0415 - 23 ms to import; only a build needs it

        lock = FileLock(folder / f"{digest}.lock")
        lock.acquire()
    except OSError as error:
        raise _unwritable(folder, error) from None
    try:
        if path.is_file():  # another process built it while this one waited
            return path
        # A name of our own rather than mkstemp's empty file: a build that writes nothing
        # must not leave an empty file to be cached as the artifact.
        temporary = folder / f".{digest}.{os.getpid()}.{secrets.token_hex(4)}.tmp{suffix}"
        try:
            build(temporary)
            if not temporary.is_file():
                raise RuntimeError(f"building the cached {kind} file wrote nothing to {temporary}")
            try:
                _fsync(temporary)
                sidecar = temporary.with_name(temporary.name + ".json")
                about = {"kind": kind, "file": path.name, "note": note, "key": key}
                sidecar.write_text(json.dumps(about, indent=2, sort_keys=True) + "\n", "utf-8")
                os.replace(sidecar, folder / f"{digest}.json")
                os.replace(temporary, path)
            except OSError as error:
                raise _unwritable(folder, error) from None
        finally:
            # The temporary, its sidecar, and whatever else the builder wrote beside it
            # (an exporter's external-data file): nothing of a failed build stays.
            for leftover in folder.glob(f"{temporary.name}*"):
                leftover.unlink(missing_ok=True)
    finally:
        lock.release()
    return path
