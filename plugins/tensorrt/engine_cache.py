"""The engine cache: each serialized engine kept on disk, read back rather than built again,
and rebuilt where the cached one does not load.

Engines are cached (``autotune.sdk.files.cached_file``) under a key naming the GPU and its
compute capability, the TensorRT version, the precision, the shapes and the ONNX file's
sha256 (``engine_build.EngineRequest.cache_key``), written atomically under a file lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from autotune_plugins.tensorrt import engine_build
from autotune_plugins.tensorrt.messages import REASON_MAX_CHARS

from autotune.sdk import one_line
from autotune.sdk.files import cached_file

ENGINE_CACHE_KIND = "tensorrt-engines"


@dataclass(frozen=True)
class CachedEngine:
    path: Path
    #: Why the engine was rebuilt rather than read from the cache, or "" (built anew or read).
    rebuilt_because: str = ""


def cached_engine(trt: ModuleType, request: engine_build.EngineRequest, loads) -> tuple[CachedEngine, Any]:
    """The engine for ``request`` from the cache, or built (``engine_build.build_engine``) and
    cached; ``loads(plan_bytes)`` deserializes one (None, or an exception, when it cannot). A
    cached engine that does not load (corrupt, cut short, from another TensorRT build or GPU
    whose key collided) is removed and rebuilt, and :attr:`CachedEngine.rebuilt_because`
    says why.

    Returns (where it is, the deserialized engine).

    :raises engine_build.BuildFailed: the build failed, or its engine does not load either.
    """
    key = request.cache_key(str(trt.__version__))
    note = f"{request.precision} engine of {request.onnx_path.name} for {request.gpu_name}"

    def build(target: Path) -> None:
        target.write_bytes(engine_build.build_engine(trt, request))

    path = cached_file(ENGINE_CACHE_KIND, key, ".engine", build, note=note)
    engine, why = _load(path, loads)
    if engine is not None:
        return CachedEngine(path), engine
    # Removed first, so that cached_file builds it again; the sidecar goes with it.
    path.unlink(missing_ok=True)
    path.with_suffix(".json").unlink(missing_ok=True)
    path = cached_file(ENGINE_CACHE_KIND, key, ".engine", build, note=note)
    engine, why_again = _load(path, loads)
    if engine is None:
        raise engine_build.BuildFailed(f"TensorRT cannot load the engine it just built ({why_again})")
    return CachedEngine(path, rebuilt_because=f"the cached engine could not be loaded ({why})"), engine


def _load(path: Path, loads) -> tuple[Any, str]:
    try:
        engine = loads(path.read_bytes())
    except Exception as error:  # noqa: BLE001 - the runtime's failure, whatever its type
        return None, one_line(str(error), REASON_MAX_CHARS) or type(error).__name__
    return engine, "" if engine is not None else "TensorRT returned no engine"
