"""The plan of an ONNX Runtime session, as plain data: the provider asked for, the session
options and exactly what is passed to ONNX Runtime for that provider (CUDA's arena limit,
TF32 and CUDA graphs; TensorRT's precision flag, engine cache and optimisation profile), and
what a session made from it computes its FP32 matmuls in.

Nothing is created here: :mod:`.sessions` makes the session from a plan and refuses to let a
GPU provider fall back to the CPU. Imported only when something is measured, so onnxruntime
is imported at the top.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime

from autotune.sdk.files import cache_root
from autotune.sdk.running import IEEE_MATH, TF32_MATH, UnsupportedConfig

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider"}
#: An input's (min, opt, max) full shapes, batch included.
ShapeRange = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
#: How a provider is named to a person ("CUDA provider unavailable: ...").
PROVIDER_LABELS = {"cpu": "CPU", "cuda": "CUDA", "tensorrt": "TensorRT"}

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
#: The session option that makes creation fail rather than place nodes on the CPU.
DISABLE_CPU_FALLBACK = "session.disable_cpu_ep_fallback"
#: Warnings and errors, whatever the process-wide default: info level would bury the line
#: naming the missing library under hundreds of optimizer lines without saying more.
_GPU_SESSION_LOG_SEVERITY = 2


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
        "config_entries": {} if provider == "cpu" else {DISABLE_CPU_FALLBACK: "1"},
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


def ort_session_options(plan: SessionPlan) -> onnxruntime.SessionOptions:
    """ONNX Runtime's ``SessionOptions`` for ``plan.session_options``; a GPU plan's log
    severity is warnings and errors, whatever the process-wide default."""
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

