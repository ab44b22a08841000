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
makes the session with the fallback allowed and profiling on, and :func:`node_placement`
proves from one profiled run where each node ran: shape arithmetic on the CPU is reported
(``Placement.host_nodes``), compute on the CPU refused. Which of the two a real export
meets is for the first GPU run to show; the code is right for both.

Before a GPU session, ``onnxruntime.preload_dlls()`` loads CUDA and cuDNN from the nvidia-*
pip packages (torch's among them), which the provider library would not find by itself.

Imported only when something is measured, so onnxruntime is imported at the top.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime
from autotune_plugins.common import ort_messages

from autotune.sdk.files import cache_root
from autotune.sdk.running import IEEE_MATH, TF32_MATH, BackendUnavailable, UnsupportedConfig

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider"}
#: An input's (min, opt, max) full shapes, batch included.
ShapeRange = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
_LABELS = {"cpu": "CPU", "cuda": "CUDA", "tensorrt": "TensorRT"}
_BY_ORT_NAME = {ort_name: name for name, ort_name in PROVIDERS.items()}

#: What the newest onnxruntime-gpu wheel on PyPI needs (1.31.1: its CUDA provider library
#: links libcublasLt.so.13 and libcudnn.so.9, its TensorRT one libnvinfer.so.10).
_GPU_BUILD_NEEDS = {"cuda": "CUDA 13 and cuDNN 9", "tensorrt": "CUDA 13, cuDNN 9 and TensorRT 10"}

_GRAPH_OPTIMIZATION = {
    "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "disabled": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
}
_EXECUTION_MODE = {
    "sequential": onnxruntime.ExecutionMode.ORT_SEQUENTIAL,
    "parallel": onnxruntime.ExecutionMode.ORT_PARALLEL,
}
_CUDNN_CONV_ALGO_SEARCH = {"heuristic": "HEURISTIC", "exhaustive": "EXHAUSTIVE", "default": "DEFAULT"}
_TENSORRT_PRECISION_FLAG = {"fp32": None, "tf32": None, "fp16": "trt_fp16_enable",
                            "bf16": "trt_bf16_enable", "int8": "trt_int8_enable"}
_DISABLE_CPU_FALLBACK = "session.disable_cpu_ep_fallback"
#: Warnings and errors, whatever the process-wide default: info level would bury the line
#: naming the missing library under hundreds of optimizer lines without saying more.
_GPU_SESSION_LOG_SEVERITY = 2

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
        super().__init__(f"{_LABELS.get(provider, provider)} provider unavailable: {reason}")
        self.provider = provider
        self.reason = reason
        self.log = log

    def __reduce__(self):  # picklable, for measurements made in a child process
        return type(self), (self.provider, self.reason, self.log)


@dataclass(frozen=True)
class SessionPlan:
    """Everything a session is made with, as plain data a test or a person can read."""

    provider: str  # cpu | cuda | tensorrt
    #: Our own description: ``intra_op_threads`` (None: ORT's default), ``graph_optimization``
    #: (all | extended | basic | disabled), ``execution_mode`` (sequential | parallel) and
    #: ``config_entries`` (passed to ``SessionOptions.add_session_config_entry``).
    session_options: dict[str, Any]
    #: Exactly what is passed to ORT for the provider (string values).
    provider_options: dict[str, str]

    def providers(self) -> list[tuple[str, dict[str, str]]]:
        """The list for ``InferenceSession(providers=...)``: the asked provider only. For a GPU
        plan that is the point: CPUExecutionProvider listed beside it would let ORT place nodes
        there (and ORT rejects it together with the fallback guard)."""
        return [(PROVIDERS[self.provider], dict(self.provider_options))]


def plan_session(provider: str, *, cpu_threads: int | None = None, graph_optimization: str = "all",
                 execution_mode: str = "sequential", device_id: int = 0,
                 memory_budget_bytes: float | None = None, tf32: bool = False,
                 cudnn_conv_algo_search: str = "heuristic", prefer_nhwc: bool = False,
                 cuda_graph: bool = False, precision: str = "fp32",
                 input_shapes: Mapping[str, ShapeRange] | None = None,
                 cache_dir: Path | None = None) -> SessionPlan:
    """The session to make for ``provider`` (cpu | cuda | tensorrt); nothing is created yet.

    :param cpu_threads: ``intra_op_num_threads``; None leaves ORT's default.
    :param memory_budget_bytes: CUDA: the arena's ``gpu_mem_limit``; TensorRT: half of it is
        the builder's workspace.
    :param tf32: CUDA only (``use_tf32``). TensorRT builds with TF32 allowed, as TensorRT does
        by default; its ORT provider has no option to turn it off (how that was verified:
        :func:`fp32_math`).
    :param precision: TensorRT only (fp32 | tf32 | fp16 | bf16 | int8): the builder flag to
        set. The CUDA provider runs whatever types the model file holds.
    :param input_shapes: every model input's (min, opt, max) full shape, batch included.
        CUDA: CUDA graphs only when all are static; TensorRT: the optimisation profile.
    :param cache_dir: TensorRT's engine and timing caches go in ``trt-engines`` and
        ``trt-timing`` under it (default :func:`autotune.cache.cache_root`). ORT names an
        engine by the model's file name, graph and precision, not its weights: keep models
        with equal names and architectures apart (ours are named by content hash).
    :raises ValueError: an unknown provider, word or inconsistent shape.
    :raises UnsupportedConfig: a precision the TensorRT provider cannot be asked for.
    """
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; one of {', '.join(PROVIDERS)}")
    _check_word("graph_optimization", graph_optimization, _GRAPH_OPTIMIZATION)
    _check_word("execution_mode", execution_mode, _EXECUTION_MODE)
    if memory_budget_bytes is not None and memory_budget_bytes <= 0:
        raise ValueError(f"memory_budget_bytes must be positive, not {memory_budget_bytes}")
    shapes = _checked_shapes(input_shapes)
    session_options: dict[str, Any] = {
        "intra_op_threads": cpu_threads,
        "graph_optimization": graph_optimization,
        "execution_mode": execution_mode,
        "config_entries": {} if provider == "cpu" else {_DISABLE_CPU_FALLBACK: "1"},
    }
    if provider == "cpu":
        options: dict[str, str] = {}
    elif provider == "cuda":
        _check_word("cudnn_conv_algo_search", cudnn_conv_algo_search, _CUDNN_CONV_ALGO_SEARCH)
        options = _cuda_options(device_id, memory_budget_bytes, tf32, cudnn_conv_algo_search, prefer_nhwc,
                                cuda_graph, shapes)
    else:
        options = _tensorrt_options(device_id, memory_budget_bytes, precision, shapes,
                                    cache_dir if cache_dir is not None else cache_root())
    return SessionPlan(provider, session_options, options)


#: What an FP32 or TF32 session on the TensorRT provider computes in, reason included: the
#: row of an "fp32" baseline there must not read as IEEE FP32.
TENSORRT_FP32_MATH = (f"{TF32_MATH} (TensorRT's default, which ONNX Runtime's TensorRT provider "
                      "has no option to turn off)")


def fp32_math(plan: SessionPlan, precision: str) -> str:
    """What an FP32 or TF32 session made from ``plan`` computes its matmuls and convolutions
    in (``Session.math``); "" for the CPU provider (no TF32) and for the other precisions.

    CUDA: ``use_tf32`` as the plan passes it, always, since ONNX Runtime's own default is on
    (``OrtCUDAProviderOptionsV2.use_tf32 = 1``, ``CUDAExecutionProviderInfo::use_tf32{true}``
    in its sources; the 1.31.1 library names the option and passes ``UseTF32()`` to its
    cuBLAS calls, as its strings show).

    TensorRT: TF32. TensorRT's builder allows it by default (``BuilderFlag.TF32``, "Enabled
    by default" in its API reference) and ONNX Runtime's provider has no option to clear it.
    Verified on onnxruntime-gpu 1.31.1, without a GPU: its provider library holds 46 ``trt_*``
    option names and 37 ``ORT_TENSORRT_*`` variables, no string with "tf32" in any case, and
    no instruction loading ``BuilderFlag::kTF32`` (6) as a first argument; its ``setFlag``
    calls load 0, 1, 3, 7, 17, 19 and 20 (FP16, INT8, GPU_FALLBACK, SPARSE_WEIGHTS, BF16,
    STRIP_PLAN, REFIT_IDENTICAL)::

        lib=$(python -c 'import onnxruntime as o, pathlib; print(pathlib.Path(o.__file__).parent / "capi")')
        strings -n 4 "$lib/libonnxruntime_providers_tensorrt.so" | grep -ci tf32           # 0
        strings -n 4 "$lib/libonnxruntime_providers_tensorrt.so" | grep -x 'trt_.*' | sort -u  # 46 options
        objdump -d "$lib/libonnxruntime_providers_tensorrt.so" | grep -cE 'mov +[$]0x6,%esi'    # 0
        objdump -d "$lib/libonnxruntime_providers_tensorrt.so" | grep -cE 'mov +[$]0x11,%esi'   # 2 (BF16)
        strings -n 4 "$lib/libonnxruntime_providers_cuda.so" | grep -x use_tf32             # use_tf32

    Only ``NVIDIA_TF32_OVERRIDE=0`` in the environment would stop TF32 there: NVIDIA's
    debugging switch for all its libraries, which autotune neither sets nor reads.
    """
    if precision not in ("fp32", "tf32") or plan.provider == "cpu":
        return ""
    if plan.provider == "cuda":
        return TF32_MATH if plan.provider_options.get("use_tf32") == "1" else IEEE_MATH
    return TENSORRT_FP32_MATH


def uses_cuda_graph(plan: SessionPlan) -> bool:
    """Whether a session made from ``plan`` replays a CUDA graph: every run after the capture
    reads the input buffers bound when it was captured, so new inputs must be copied into
    those buffers, at the captured shape, rather than passed to ``run``."""
    return plan.provider == "cuda" and plan.provider_options.get("enable_cuda_graph") == "1"


def _check_word(name: str, value: str, choices: Mapping[str, Any]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; one of {', '.join(choices)}")


def _checked_shapes(input_shapes: Mapping[str, ShapeRange] | None) -> dict[str, ShapeRange] | None:
    if input_shapes is None:
        return None
    shapes = {}
    for name, (low, opt, high) in input_shapes.items():
        low, opt, high = tuple(map(int, low)), tuple(map(int, opt)), tuple(map(int, high))
        ranks_agree = len(low) == len(opt) == len(high)
        if not ranks_agree or not all(a <= b <= c for a, b, c in zip(low, opt, high, strict=True)):
            raise ValueError(f"input {name!r}: shapes must have one rank and min <= opt <= max, "
                             f"not {low}, {opt}, {high}")
        shapes[name] = (low, opt, high)
    return shapes


def _cuda_options(device_id: int, memory_budget_bytes: float | None, tf32: bool, conv_algo_search: str,
                  prefer_nhwc: bool, cuda_graph: bool,
                  shapes: Mapping[str, ShapeRange] | None) -> dict[str, str]:
    # Keys and spellings as in onnxruntime's cuda_execution_provider_info.cc.
    options = {"device_id": str(device_id)}
    if memory_budget_bytes is not None:
        # gpu_mem_limit caps the BFC arena only (cuDNN/cuBLAS workspaces and the CUDA context
        # come on top). The default extension strategy rounds each growth up to the next power
        # of two, so a 5 GiB budget could be asked for 8 GiB in one step: grow by what is asked.
        options["gpu_mem_limit"] = str(int(memory_budget_bytes))
        options["arena_extend_strategy"] = "kSameAsRequested"
    # ORT's default is EXHAUSTIVE, which benchmarks every cuDNN algorithm again for each new
    # input shape: one report measured 634 ms per new shape against 1.9 ms with HEURISTIC
    # (PaddleX PR #5057). A quick benchmark that changes the batch would time that search,
    # so heuristic is the default here; measuring on a GPU decides whether EXHAUSTIVE pays.
    options["cudnn_conv_algo_search"] = _CUDNN_CONV_ALGO_SEARCH[conv_algo_search]
    options["prefer_nhwc"] = "1" if prefer_nhwc else "0"
    # ORT turns TF32 on unless told: always say which, so "fp32" means FP32.
    options["use_tf32"] = "1" if tf32 else "0"
    # A CUDA graph replays the kernels captured for one shape (and needs IO binding to fixed
    # buffers); with a dynamic input the next shape would replay the wrong graph, so it is on
    # only when every input's min equals its max.
    static = shapes is not None and all(low == high for low, _, high in shapes.values())
    options["enable_cuda_graph"] = "1" if cuda_graph and static else "0"
    return options


def _tensorrt_options(device_id: int, memory_budget_bytes: float | None, precision: str,
                      shapes: Mapping[str, ShapeRange] | None, cache_dir: Path) -> dict[str, str]:
    # Keys as in onnxruntime's tensorrt_execution_provider_info.cc. The Python binding parses
    # the boolean ones itself and accepts only "True"/"true"/"False"/"false": "1" raises
    # "The value for the key 'trt_fp16_enable' should be 'True' or 'False'".
    if precision not in _TENSORRT_PRECISION_FLAG:
        raise UnsupportedConfig(f"the TensorRT provider cannot be asked for {precision}; "
                                f"one of {', '.join(_TENSORRT_PRECISION_FLAG)}")
    options = {"device_id": str(device_id)}
    flag = _TENSORRT_PRECISION_FLAG[precision]
    if flag is not None:
        # int8: the model is a QDQ model whose scales are in the graph (explicit
        # quantization), so no calibration table is needed.
        options[flag] = "True"
    options["trt_engine_cache_enable"] = "True"
    options["trt_engine_cache_path"] = str(cache_dir / "trt-engines")
    options["trt_timing_cache_enable"] = "True"
    options["trt_timing_cache_path"] = str(cache_dir / "trt-timing")
    if memory_budget_bytes is not None:
        # trt_max_workspace_size is the provider's one memory limit: TensorRT's workspace,
        # scratch for its tactics (https://onnxruntime.ai/docs/execution-providers/
        # TensorRT-ExecutionProvider.html#trt_max_workspace_size). The engine's weights and
        # activations come on top, uncapped, so the core checks the measured peak against the
        # budget (OrtSession.enforces_memory_budget); half leaves them the rest.
        options["trt_max_workspace_size"] = str(int(memory_budget_bytes // 2))
    if shapes:
        # Every input in the profile: without one, ORT builds the engine for the first shape
        # it sees and rebuilds it for each new one (onnxruntime #16889, #18272).
        for key, index in (("trt_profile_min_shapes", 0), ("trt_profile_opt_shapes", 1),
                           ("trt_profile_max_shapes", 2)):
            options[key] = ",".join(f"{name}:{'x'.join(map(str, bounds[index]))}"
                                    for name, bounds in shapes.items())
    return options


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
    options = _session_options(plan)
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
        options = _profiled(_session_options(_with_cpu_fallback(plan)))
        return _strict_gpu_session(str(model_path), options, plan)
    except _GpuSessionFailed as failure:
        raise _explained(model_path, plan.provider, failure) from None


def _refused_for_cpu_nodes(failure: _GpuSessionFailed) -> bool:
    """ORT's guard refused a node on the CPU, and no provider library failed to load."""
    return failure.error is not None and _CPU_FALLBACK_REFUSED in str(failure.error) \
        and not ort_messages.library_failure(failure.log)


def _with_cpu_fallback(plan: SessionPlan) -> SessionPlan:
    entries = {key: value for key, value in plan.session_options.get("config_entries", {}).items()
               if key != _DISABLE_CPU_FALLBACK}
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
    plan = SessionPlan(provider, {"config_entries": {_DISABLE_CPU_FALLBACK: "1"}}, {"device_id": "0"})
    try:
        _strict_gpu_session(ort_messages.identity_model(), _session_options(plan), plan)
    except _GpuSessionFailed as failure:
        return _provider_reason(provider, failure)
    return None


# --- session options ----------------------------------------------------------------------


def _session_options(plan: SessionPlan) -> onnxruntime.SessionOptions:
    described = plan.session_options
    options = onnxruntime.SessionOptions()
    if described.get("intra_op_threads") is not None:
        options.intra_op_num_threads = int(described["intra_op_threads"])
    options.graph_optimization_level = _GRAPH_OPTIMIZATION[described.get("graph_optimization", "all")]
    options.execution_mode = _EXECUTION_MODE[described.get("execution_mode", "sequential")]
    for key, value in described.get("config_entries", {}).items():
        options.add_session_config_entry(key, value)
    if plan.provider != "cpu":
        options.log_severity_level = _GPU_SESSION_LOG_SEVERITY
    return options


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
        super().__init__(f"this onnxruntime build has no {_LABELS[provider]} provider; pip install "
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




# --- node placement -------------------------------------------------------------------------

_KERNEL_SUFFIX = "_kernel_time"
#: Output element types of shape arithmetic, what the CUDA provider leaves on the CPU on
#: purpose. A CPU node with an output of any other type is the model's compute on the CPU.
_SHAPE_TYPES = frozenset({"int64", "int32", "bool"})


@dataclass(frozen=True)
class Placement:
    """Where ONNX Runtime ran each node of one run, read from its profile.

    ``nodes`` maps each provider (ORT's name) to its nodes, ``"op_type name"``, in the order
    they first ran. ``host_nodes`` are those on the CPU provider; ``host_compute_nodes`` those
    of them with an output that is not shape arithmetic (a type other than int64, int32 or
    bool, or none recorded): compute that did not run on the GPU.
    """

    nodes: dict[str, tuple[str, ...]]
    host_nodes: tuple[str, ...]
    host_compute_nodes: tuple[str, ...]


def placement_from_profile(events: Sequence[Mapping[str, Any]]) -> Placement:
    """The placement in an ONNX Runtime profile (the JSON list ``end_profiling()`` writes).

    Each node's run is one event with ``"cat": "Node"``, a name ending ``_kernel_time`` and
    ``args`` holding ``op_name``, ``provider`` and ``output_type_shape`` (a list of
    ``{element_type: shape}``), as onnxruntime 1.31.1 writes them (tests/ort_profiles holds
    one from a CPU session); other events (session phases, older builds' fences) are skipped.
    """
    nodes: dict[str, list[str]] = {}
    seen: set[str] = set()
    host_compute: list[str] = []
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith(_KERNEL_SUFFIX) or name in seen:
            continue
        seen.add(name)
        args = event.get("args") or {}
        node = f"{args.get('op_name', '?')} {name.removesuffix(_KERNEL_SUFFIX)}"
        provider = str(args.get("provider", "unknown"))
        nodes.setdefault(provider, []).append(node)
        if provider == PROVIDERS["cpu"]:
            types = {element for output in args.get("output_type_shape") or [] for element in output}
            if not types or types - _SHAPE_TYPES:
                host_compute.append(node)
    return Placement({provider: tuple(names) for provider, names in nodes.items()},
                     tuple(nodes.get(PROVIDERS["cpu"], ())), tuple(host_compute))


def node_placement(session: onnxruntime.InferenceSession, feed: Mapping[str, Any]) -> Placement | None:
    """Where ``session`` runs its nodes, from one profiled run on ``feed`` (host arrays);
    None for a session made without profiling: a strict GPU session, where ORT's guard
    already refused any node on the CPU.

    Ends the session's profiling, so the timed runs after it are not profiled; the file is
    removed once read.
    """
    if not session.get_session_options().enable_profiling:
        return None
    session.run(None, dict(feed))
    path = Path(session.end_profiling())
    try:
        events = json.loads(path.read_text())
    finally:
        path.unlink(missing_ok=True)
    return placement_from_profile(events)


def placement_problem(placement: Placement | None, provider: str) -> str | None:
    """Why ``placement`` does not count as running on ``provider``'s GPU, or None when it
    does: every node but shape arithmetic ran on the GPU provider."""
    if placement is None or not placement.host_compute_nodes:
        return None
    shown = ", ".join(placement.host_compute_nodes[:5])
    more = len(placement.host_compute_nodes) - 5
    label = _LABELS.get(provider, provider)
    return (f"{len(placement.host_compute_nodes)} compute node(s) ran on the CPU, not the {label} "
            f"provider: {shown}" + (f" and {more} more" if more > 0 else ""))
