"""ONNX Runtime sessions on the execution provider that was asked for, and never silently elsewhere.

ONNX Runtime treats the provider list as a wish: a GPU provider whose libraries do not load
is dropped with a log line and the session runs on the CPU (onnxruntime #23372, #17801,
#27006). A benchmark that believed it measured CUDA would then report CPU numbers. Here a GPU
session lists only its GPU provider, sets ``session.disable_cpu_ep_fallback`` (creation then
fails instead of placing nodes on the CPU), turns off the Python wrapper's own retry on the
CPU, and checks ``get_providers()`` afterwards; any failure is :class:`ProviderUnavailable`
with the reason ONNX Runtime gave — which it mostly only logs, so creation runs with file
descriptor 2 redirected and the log is read back.

What onnxruntime-gpu 1.31.1 does on a machine without the CUDA 13 libraries, for the record:
the CUDA provider logs ``Failed to load library .../libonnxruntime_providers_cuda.so with
error: libcublasLt.so.13: cannot open shared object file`` and a warning ``Require cuDNN 9.*
and CUDA 13.*``, then without the fallback guard creates a CPU session; with it, creation
raises ``This session contains graph nodes that are assigned to the default CPU EP, but
fallback to CPU EP has been explicitly disabled by the user.`` The TensorRT provider raises
``RuntimeError: ... Please install TensorRT libraries ...`` from the Python binding, which the
wrapper answers by printing an "EP Error" banner to stdout and retrying on the CPU.

The guard is strict: ORT refuses the session if *any* node would run on the CPU, including
the small shape subgraphs ORT deliberately leaves there (session_state.cc,
VerifyEachNodeIsAssignedToAnEp, warns "ORT explicitly assigns shape related ops to CPU to
improve perf"), so a dynamic-batch export may be refused although its compute runs on the
GPU. Where the provider itself works (it ran a one-node model), :func:`create_session` then
makes the session with the fallback allowed and profiling on, and
:func:`.placement.node_placement` proves from one profiled run where each node ran: shape
arithmetic on the CPU is reported (``Placement.host_nodes``), compute on the CPU refused.
Which of the two a real export meets is for the first GPU run to show; the code is right for
both.

Before a GPU session, ``onnxruntime.preload_dlls()`` loads CUDA and cuDNN from the nvidia-*
pip packages (torch's among them), which the provider library would not find by itself.

What a session is made with comes from :mod:`.session_plan`. Imported only when something is
measured, so onnxruntime is imported at the top.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import onnxruntime
from autotune_plugins.common import ort_messages
from autotune_plugins.onnxruntime.session_plan import (
    DISABLE_CPU_FALLBACK,
    PROVIDER_LABELS,
    PROVIDERS,
    SessionPlan,
    ort_session_options,
)

from autotune.sdk.running import BackendUnavailable

_BY_ORT_NAME = {ort_name: name for name, ort_name in PROVIDERS.items()}

#: What the newest onnxruntime-gpu wheel on PyPI needs (1.31.1: its CUDA provider library
#: links libcublasLt.so.13 and libcudnn.so.9, its TensorRT one libnvinfer.so.10).
_GPU_BUILD_NEEDS = {"cuda": "CUDA 13 and cuDNN 9", "tensorrt": "CUDA 13, cuDNN 9 and TensorRT 10"}

#: ORT's message when a node would have gone to the CPU and the fallback is off.
_CPU_FALLBACK_REFUSED = "assigned to the default CPU EP"
_OUT_OF_MEMORY = re.compile(r"Failed to allocate memory|out of memory", re.IGNORECASE)
#: File descriptor 2 is the process's: one redirection at a time.
_STDERR_LOCK = threading.Lock()


class ProviderUnavailable(BackendUnavailable):
    """A GPU provider that cannot run here; str() is e.g.
    ``CUDA provider unavailable: libcublasLt.so.13: cannot open shared object file: ...``.

    ``log`` keeps what ONNX Runtime wrote while it tried, for a person debugging it.
    """

    def __init__(self, provider: str, reason: str, log: str = ""):
        super().__init__(f"{PROVIDER_LABELS.get(provider, provider)} provider unavailable: {reason}")
        self.provider = provider
        self.reason = reason
        self.log = log

    def __reduce__(self):  # picklable, for measurements made in a child process
        return type(self), (self.provider, self.reason, self.log)


def create_session(model_path: Path, plan: SessionPlan) -> onnxruntime.InferenceSession:
    """An InferenceSession for ``model_path`` running on ``plan.provider`` and nowhere else.

    :raises ProviderUnavailable: a GPU provider that cannot run here, or cannot run every
        node of this model (ORT would have put them on the CPU).
    :raises UserError: ONNX Runtime cannot load the model (an opset or IR version newer than
        it supports, an unknown operator, not an ONNX file): exit code 2.
    :raises: ONNX Runtime's own error, unchanged, when the GPU runs out of memory while the
        session is made (the weights alone can pass ``gpu_mem_limit``), so an out-of-memory
        check on its text still sees it.
    """
    model_path = Path(model_path)
    options = ort_session_options(plan)
    if plan.provider == "cpu":
        try:
            return onnxruntime.InferenceSession(str(model_path), options, providers=plan.providers())
        except Exception as error:  # noqa: BLE001 - ORT raises a dozen unrelated types
            if ort_messages.is_onnxruntime_error(error):
                raise ort_messages.cannot_load(model_path, error) from None
            raise
    if plan.provider == "tensorrt":
        # ORT creates the engine folder; make the timing cache's too, as older builds did not.
        for key in ("trt_engine_cache_path", "trt_timing_cache_path"):
            if key in plan.provider_options:
                Path(plan.provider_options[key]).mkdir(parents=True, exist_ok=True)
    try:
        return _strict_gpu_session(str(model_path), options, plan)
    except _GpuSessionFailed as failure:
        if not _refused_for_cpu_nodes(failure) or gpu_provider_problem(plan.provider) is not None:
            raise _explained(model_path, plan.provider, failure) from None
    # The provider works (it ran the one-node model) but leaves some of this model's nodes to
    # the CPU: allowed, and proven by profiling which ones (node_placement).
    try:
        options = _profiled(ort_session_options(_with_cpu_fallback(plan)))
        return _strict_gpu_session(str(model_path), options, plan)
    except _GpuSessionFailed as failure:
        raise _explained(model_path, plan.provider, failure) from None


def _refused_for_cpu_nodes(failure: _GpuSessionFailed) -> bool:
    """ORT's guard refused a node on the CPU, and no provider library failed to load."""
    return failure.error is not None and _CPU_FALLBACK_REFUSED in str(failure.error) \
        and not ort_messages.library_failure(failure.log)


def _with_cpu_fallback(plan: SessionPlan) -> SessionPlan:
    entries = {key: value for key, value in plan.session_options.get("config_entries", {}).items()
               if key != DISABLE_CPU_FALLBACK}
    return dataclasses.replace(plan, session_options={**plan.session_options, "config_entries": entries})


def _profiled(options: onnxruntime.SessionOptions) -> onnxruntime.SessionOptions:
    options.enable_profiling = True
    # ORT appends a timestamp and ".json"; node_placement removes the file once read.
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / f"autotune-ort-placement-{os.getpid()}")
    return options


def is_out_of_memory(error: BaseException) -> bool:
    """ONNX Runtime raises one exception type for everything; the CUDA arena's failure is
    marked only by its text."""
    return bool(_OUT_OF_MEMORY.search(str(error)))


def provider_that_ran(session: onnxruntime.InferenceSession) -> str:
    """"cpu" | "cuda" | "tensorrt": the first of ``session.get_providers()`` (ORT's own name
    for a provider this module does not know)."""
    first = session.get_providers()[0]
    return _BY_ORT_NAME.get(first, first)


@functools.cache
def gpu_provider_problem(provider: str) -> str | None:
    """None when ``provider`` (cuda | tensorrt) runs a one-node model here, with every
    fallback off; else the reason it does not, in one line. Cached for the process."""
    if provider not in PROVIDERS or provider == "cpu":
        raise ValueError(f"not a GPU provider: {provider!r}; one of cuda, tensorrt")
    # No engine cache for a throwaway model: just the device.
    plan = SessionPlan(provider, {"config_entries": {DISABLE_CPU_FALLBACK: "1"}}, {"device_id": "0"})
    try:
        _strict_gpu_session(ort_messages.identity_model(), ort_session_options(plan), plan)
    except _GpuSessionFailed as failure:
        return _provider_reason(provider, failure)
    return None


# --- strict GPU sessions ------------------------------------------------------------------


class _GpuSessionFailed(Exception):
    """Creation raised (``error``) or ran elsewhere (``providers``); ``log`` is what ORT wrote."""

    def __init__(self, log: str, error: Exception | None = None, providers: Sequence[str] | None = None):
        super().__init__(str(error) if error is not None else f"ran on {providers}")
        self.log, self.error, self.providers = log, error, providers


def _strict_gpu_session(model: str | bytes, options: onnxruntime.SessionOptions,
                        plan: SessionPlan) -> onnxruntime.InferenceSession:
    wanted = PROVIDERS[plan.provider]
    if wanted not in onnxruntime.get_available_providers():
        raise _GpuSessionFailed("", error=_NotInBuild(plan.provider))
    _preload_gpu_libraries()
    session: onnxruntime.InferenceSession | None = None
    failure: Exception | None = None
    with _stderr_captured() as captured:
        try:
            # enable_fallback=0: otherwise the wrapper answers a provider error by printing an
            # "EP Error" banner to stdout and retrying with CPUExecutionProvider.
            session = onnxruntime.InferenceSession(model, options, providers=plan.providers(),
                                                   enable_fallback=0)
        except Exception as error:  # noqa: BLE001 - ORT raises a dozen unrelated types
            failure = error
    if session is None:
        raise _GpuSessionFailed(captured.text, error=failure)
    session.disable_fallback()  # and no retry on the CPU when run() meets a provider error
    providers = session.get_providers()
    if not providers or providers[0] != wanted:
        raise _GpuSessionFailed(captured.text, providers=providers)
    # Nothing hidden when all went well: the provider's warnings still reach the terminal.
    if captured.text:
        with contextlib.suppress(OSError):
            os.write(2, captured.text.encode())
    return session


class _NotInBuild(Exception):
    def __init__(self, provider: str):
        super().__init__(f"this onnxruntime build has no {PROVIDER_LABELS[provider]} provider; pip install "
                         f"onnxruntime-gpu (it needs {_GPU_BUILD_NEEDS[provider]}), after pip uninstall "
                         "onnxruntime if both are installed")


@functools.cache
def _preload_gpu_libraries() -> None:
    """CUDA and cuDNN from the nvidia-* pip packages, where the provider library would not
    find them by itself (ORT >= 1.21; importing torch first does the same)."""
    preload = getattr(onnxruntime, "preload_dlls", None)
    if preload is None:
        return
    # It prints what it could not load; the provider's own log says it better.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
        preload()


class _Captured:
    text = ""


@contextlib.contextmanager
def _stderr_captured() -> Iterator[_Captured]:
    """What ORT's C++ logger writes to file descriptor 2 meanwhile, in ``.text``."""
    captured = _Captured()
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2 at all: nothing to capture
            saved = None
        if saved is not None:
            os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            if saved is not None:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                captured.text = sink.read().decode("utf-8", "replace")


# --- reasons --------------------------------------------------------------------------------


def _explained(model_path: Path, provider: str, failure: _GpuSessionFailed) -> Exception:
    error = failure.error
    if error is not None and ort_messages.is_model_error(error):
        return ort_messages.cannot_load(model_path, error)
    if error is not None and ort_messages.is_onnxruntime_error(error) and _OUT_OF_MEMORY.search(str(error)):
        return error
    if _refused_for_cpu_nodes(failure):
        # create_session retries a working provider with the fallback on: only a provider
        # that does not run the one-node model comes here.
        problem = gpu_provider_problem(provider)
        if problem is not None:
            return ProviderUnavailable(provider, problem, failure.log)
    return ProviderUnavailable(provider, _provider_reason(provider, failure), failure.log)


def _provider_reason(provider: str, failure: _GpuSessionFailed) -> str:
    """The most informative line: the library that did not load, else ORT's own error."""
    library = ort_messages.library_failure(failure.log)
    if library:
        return library
    if isinstance(failure.error, _NotInBuild):
        return str(failure.error)
    errors = [message for severity, message in ort_messages.log_messages(failure.log) if severity in "EF"
              and _CPU_FALLBACK_REFUSED not in message]
    if errors:
        return errors[0]
    if failure.error is not None:
        return ort_messages.ort_message(str(failure.error)) or type(failure.error).__name__
    return f"ONNX Runtime ran the session on {', '.join(failure.providers or ['no provider'])}"
