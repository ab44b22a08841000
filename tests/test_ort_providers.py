"""ONNX Runtime sessions on the provider asked for: the plans, the CPU session, and a GPU
request that must fail loudly rather than run on the CPU."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

from autotune_plugins.onnxruntime import session_plan, sessions  # noqa: E402
from autotune_plugins.onnxruntime.session_plan import PROVIDERS, plan_session  # noqa: E402
from autotune_plugins.onnxruntime.sessions import (  # noqa: E402
    ProviderUnavailable,
    create_session,
    gpu_provider_problem,
    provider_that_ran,
)
from onnx import TensorProto, helper  # noqa: E402

from autotune.backend_api import UnsupportedConfig  # noqa: E402
from autotune.errors import UserError  # noqa: E402

IMAGE = ((1, 3, 224, 224), (8, 3, 224, 224), (16, 3, 224, 224))
MASK = ((1, 224, 224), (8, 224, 224), (16, 224, 224))

# What onnxruntime-gpu 1.31.1 writes to stderr when the CUDA 13 libraries are missing.
REAL_CUDA_LOG = (
    "\x1b[1;31m2026-11-23 13:33:33.644353437 [E:onnxruntime:Default, provider_bridge_ort.cc:2458 operator()] "
    "/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:2043 onnxruntime::Provider& "
    "onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library "
    "/venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime_providers_cuda.so with error: "
    "libcublasLt.so.13: cannot open shared object file: No such file or directory\n\x1b[m\n"
    "\x1b[0;93m2026-11-23 13:33:33.644401321 [W:onnxruntime:Default, onnxruntime_pybind_state.cc:1295 "
    "CreateExecutionProviderFactoryInstance] Failed to create CUDAExecutionProvider. Require cuDNN 9.* and "
    "CUDA 13.*. Please install all dependencies as mentioned in the GPU requirements page "
    "(https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html#requirements), make sure "
    "they're in the PATH, and that your GPU is supported.\x1b[m\n"
    "\x1b[1;31m2026-11-23 13:33:33.925109755 [E:onnxruntime:, inference_session.cc:3181 operator()] This "
    "session contains graph nodes that are assigned to the default CPU EP, but fallback to CPU EP has been "
    "explicitly disabled by the user.\x1b[m\n"
)


def _model(path: Path, *, op: str = "Identity", opset: int = 17, domain: str = "",
           shape: tuple = ("batch", 4)) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], domain=domain)], "g", [x], [y])
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def _conv_model(path: Path) -> Path:
    """Conv + Relu on a static 1x3x8x8 input: small, and every GPU provider takes both."""
    rng = np.random.default_rng(0)
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], rng.standard_normal(108).tolist())
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    graph = helper.make_graph(nodes, "conv", [x], [y], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


# --- plans ----------------------------------------------------------------------------------


def test_cpu_plan_describes_threads_and_levels_and_has_no_provider_options():
    plan = plan_session("cpu", cpu_threads=3, graph_optimization="basic", execution_mode="parallel")
    assert plan.provider_options == {}
    assert plan.session_options == {"intra_op_threads": 3, "graph_optimization": "basic",
                                    "execution_mode": "parallel", "config_entries": {}}
    assert plan.providers() == [("CPUExecutionProvider", {})]
    assert plan_session("cpu").session_options["intra_op_threads"] is None


def test_cuda_options_with_a_budget_cap_the_arena_and_leave_tf32_off():
    plan = plan_session("cuda", memory_budget_bytes=4.5e9, input_shapes={"image": IMAGE})
    assert plan.provider_options == {
        "device_id": "0",
        "gpu_mem_limit": "4500000000",
        "arena_extend_strategy": "kSameAsRequested",
        "cudnn_conv_algo_search": "HEURISTIC",
        "prefer_nhwc": "0",
        "use_tf32": "0",
        "enable_cuda_graph": "0",
    }


def test_cuda_options_without_a_budget_leave_the_arena_alone():
    options = plan_session("cuda", device_id=1, tf32=True, cudnn_conv_algo_search="exhaustive",
                           prefer_nhwc=True).provider_options
    assert options == {"device_id": "1", "cudnn_conv_algo_search": "EXHAUSTIVE", "prefer_nhwc": "1",
                       "use_tf32": "1", "enable_cuda_graph": "0"}
    assert plan_session("cuda", cudnn_conv_algo_search="default").provider_options["cudnn_conv_algo_search"] \
        == "DEFAULT"


def test_cuda_graph_only_when_every_input_is_static():
    static = {"image": ((4, 3, 224, 224),) * 3, "mask": ((4, 224, 224),) * 3}
    def cuda_graph(**arguments):
        return plan_session("cuda", **arguments).provider_options["enable_cuda_graph"]

    assert cuda_graph(cuda_graph=True, input_shapes=static) == "1"
    assert cuda_graph(cuda_graph=True, input_shapes={**static, "mask": MASK}) == "0"
    assert cuda_graph(cuda_graph=True) == "0"  # shapes unknown
    assert cuda_graph(input_shapes=static) == "0"


def test_tensorrt_options_list_every_input_in_the_profile(tmp_path):
    plan = plan_session("tensorrt", precision="fp16", memory_budget_bytes=8 * 2**30,
                        input_shapes={"image": IMAGE, "mask": MASK}, cache_dir=tmp_path)
    assert plan.provider_options == {
        "device_id": "0",
        "trt_fp16_enable": "True",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(tmp_path / "trt-engines"),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(tmp_path / "trt-timing"),
        "trt_max_workspace_size": str(4 * 2**30),
        "trt_profile_min_shapes": "image:1x3x224x224,mask:1x224x224",
        "trt_profile_opt_shapes": "image:8x3x224x224,mask:8x224x224",
        "trt_profile_max_shapes": "image:16x3x224x224,mask:16x224x224",
    }


@pytest.mark.parametrize(("precision", "flag"), [("fp32", None), ("tf32", None), ("fp16", "trt_fp16_enable"),
                                                 ("bf16", "trt_bf16_enable"), ("int8", "trt_int8_enable")])
def test_tensorrt_precision_sets_one_flag_spelled_true(tmp_path, precision, flag):
    options = plan_session("tensorrt", precision=precision, cache_dir=tmp_path).provider_options
    flags = {key: value for key, value in options.items()
             if key in ("trt_fp16_enable", "trt_bf16_enable", "trt_int8_enable")}
    assert flags == ({flag: "True"} if flag else {})
    # The Python binding takes "True"/"False" for booleans and raises on "1".
    assert "1" not in [value for key, value in options.items() if key.endswith("_enable")]
    assert not any(key.startswith("trt_profile") for key in options)
    assert "trt_int8_calibration_table_name" not in options
    assert "trt_max_workspace_size" not in options


def test_tensorrt_cache_defaults_under_the_autotune_cache(tmp_path):
    # conftest points XDG_CACHE_HOME at tmp_path / "xdg-cache".
    options = plan_session("tensorrt").provider_options
    assert Path(options["trt_engine_cache_path"]).parent.parent == tmp_path / "xdg-cache"


def test_tensorrt_refuses_a_precision_it_cannot_be_asked_for():
    with pytest.raises(UnsupportedConfig, match="fp8"):
        plan_session("tensorrt", precision="fp8")


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_gpu_plans_list_only_their_provider_and_forbid_cpu_fallback(tmp_path, provider):
    plan = plan_session(provider, cache_dir=tmp_path)
    assert [name for name, _ in plan.providers()] == [PROVIDERS[provider]]
    assert plan.session_options["config_entries"] == {"session.disable_cpu_ep_fallback": "1"}


@pytest.mark.parametrize("arguments", [
    {"provider": "rocm"},
    {"provider": "cpu", "graph_optimization": "max"},
    {"provider": "cpu", "execution_mode": "async"},
    {"provider": "cuda", "cudnn_conv_algo_search": "fast"},
    {"provider": "cuda", "memory_budget_bytes": 0},
    {"provider": "tensorrt", "input_shapes": {"x": ((8, 4), (4, 4), (16, 4))}},
    {"provider": "tensorrt", "input_shapes": {"x": ((1, 4), (4, 4, 1), (16, 4))}},
])
def test_plan_rejects_unknown_words_and_inconsistent_shapes(arguments):
    provider = arguments.pop("provider")
    with pytest.raises(ValueError):
        plan_session(provider, **arguments)


# --- CPU sessions ---------------------------------------------------------------------------


def test_cpu_session_runs_with_the_threads_asked_for(tmp_path):
    plan = plan_session("cpu", cpu_threads=2, graph_optimization="extended", execution_mode="parallel")
    session = create_session(_model(tmp_path / "identity.onnx"), plan)
    assert provider_that_ran(session) == "cpu"
    options = session.get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    assert options.execution_mode == onnxruntime.ExecutionMode.ORT_PARALLEL
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], x)


# --- models ONNX Runtime cannot load --------------------------------------------------------


def test_a_model_with_a_too_new_opset_is_a_user_error(tmp_path):
    path = _model(tmp_path / "future.onnx", opset=1000)
    with pytest.raises(UserError) as caught:
        create_session(path, plan_session("cpu"))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"ONNX Runtime {onnxruntime.__version__} cannot load {path}: ")
    newest = int(re.search(r"re-export with opset <= (\d+)$", message).group(1))
    assert 17 <= newest < 1000
    assert "opset 1000" in message
    assert "[ONNXRuntimeError]" not in message and "/onnxruntime_src" not in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(("kind", "hint"), [
    ({"op": "NoSuchOperator"}, r"re-export with opset <= \d+$"),
    ({"op": "Foo", "domain": "com.example"}, "re-export it with standard ONNX operators$"),
])
def test_an_unknown_operator_is_a_user_error(tmp_path, kind, hint):
    with pytest.raises(UserError, match=hint) as caught:
        create_session(_model(tmp_path / "odd.onnx", **kind), plan_session("cpu"))
    assert "\n" not in str(caught.value) and kind["op"] in str(caught.value)


def test_not_an_onnx_file_is_a_user_error(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("not a model")
    with pytest.raises(UserError, match=r"cannot load .*notes\.onnx: "):
        create_session(path, plan_session("cpu"))
    with pytest.raises(UserError, match="no such file$"):
        create_session(tmp_path / "absent.onnx", plan_session("cpu"))


# --- GPU requests never run on the CPU ------------------------------------------------------


@pytest.mark.parametrize(("provider", "label"), [("cuda", "CUDA"), ("tensorrt", "TensorRT")])
def test_an_unusable_gpu_provider_raises_instead_of_running_on_the_cpu(tmp_path, capfd, provider, label):
    if gpu_provider_problem(provider) is None:
        pytest.skip(f"the {label} provider works here")
    with pytest.raises(ProviderUnavailable) as caught:
        create_session(_model(tmp_path / "identity.onnx"), plan_session(provider, cache_dir=tmp_path))
    message = str(caught.value)
    assert message.startswith(f"{label} provider unavailable: ")
    reason = message.removeprefix(f"{label} provider unavailable: ")
    assert reason.strip() and "\n" not in message and caught.value.provider == provider
    assert not re.search(r"\d{4}-\d\d-\d\d|\x1b|\[ONNXRuntimeError\]|/onnxruntime_src", message)
    assert isinstance(caught.value, UnsupportedConfig)
    # ORT's log was read, not leaked, and descriptor 2 is ours again.
    os.write(2, b"after\n")
    out, err = capfd.readouterr()
    assert err == "after\n" and "EP Error" not in out


def test_a_cpu_only_build_says_which_package_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    expected = (r"^CUDA provider unavailable: this onnxruntime build has no CUDA provider; "
                r"pip install onnxruntime-gpu \(it needs CUDA")
    with pytest.raises(ProviderUnavailable, match=expected):
        create_session(_model(tmp_path / "identity.onnx"), plan_session("cuda"))


class _SessionOnTheCpu:
    """What ONNX Runtime hands back when a GPU provider dropped out silently."""

    made_with: dict = {}

    def __init__(self, model, options, providers=None, **kwargs):
        _SessionOnTheCpu.made_with = {"options": options, "providers": providers, **kwargs}
        self.fallback = True

    def disable_fallback(self):
        self.fallback = False

    def get_providers(self):
        return ["CPUExecutionProvider"]


def test_a_session_that_landed_on_the_cpu_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime, "InferenceSession", _SessionOnTheCpu)
    monkeypatch.setattr(sessions, "_preload_gpu_libraries", lambda: None)
    with pytest.raises(ProviderUnavailable, match="^CUDA provider unavailable: .*CPUExecutionProvider"):
        create_session(tmp_path / "any.onnx", plan_session("cuda"))
    made = _SessionOnTheCpu.made_with
    assert made["providers"] == [("CUDAExecutionProvider", plan_session("cuda").provider_options)]
    assert made["enable_fallback"] == 0
    assert made["options"].get_session_config_entry("session.disable_cpu_ep_fallback") == "1"


def test_running_out_of_gpu_memory_while_creating_stays_onnxruntimes_own_error(tmp_path, monkeypatch):
    from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

    out_of_memory = RuntimeException("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory "
                                     "for requested buffer of size 411041792")

    def failing(*args, **kwargs):
        raise out_of_memory

    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime, "InferenceSession", failing)
    monkeypatch.setattr(sessions, "_preload_gpu_libraries", lambda: None)
    with pytest.raises(RuntimeException) as caught:
        create_session(tmp_path / "big.onnx", plan_session("cuda", memory_budget_bytes=2**28))
    assert caught.value is out_of_memory


def test_provider_unavailable_survives_pickling():
    reason = "libnvinfer.so.10: missing"
    error = pickle.loads(pickle.dumps(ProviderUnavailable("tensorrt", reason, "log")))
    assert str(error) == f"TensorRT provider unavailable: {reason}"
    assert (error.provider, error.reason, error.log) == ("tensorrt", reason, "log")


def test_the_reason_is_the_library_that_did_not_load():
    refused = RuntimeError("assigned to the default CPU EP")
    failure = sessions._GpuSessionFailed(REAL_CUDA_LOG, error=refused)
    assert sessions._provider_reason("cuda", failure) == (
        "libcublasLt.so.13: cannot open shared object file: No such file or directory "
        f"(ONNX Runtime {onnxruntime.__version__} needs cuDNN 9.* and CUDA 13.*)")


def test_without_a_library_line_the_reason_is_the_first_error_logged():
    log = ("2026-11-23 13:33:33.1 [E:onnxruntime:Default, cuda_call.cc:123 CudaCall] CUDA failure 100: "
           "no CUDA-capable device is detected ; GPU=0\n" + REAL_CUDA_LOG.splitlines()[-1])
    failure = sessions._GpuSessionFailed(log, error=RuntimeError("assigned to the default CPU EP"))
    assert sessions._provider_reason("cuda", failure) == (
        "CUDA failure 100: no CUDA-capable device is detected ; GPU=0")


# --- on a GPU -------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_gpu_sessions_run_on_the_provider_asked_for(tmp_path, provider):
    problem = gpu_provider_problem(provider)
    if problem is not None:
        pytest.skip(problem)
    path = _conv_model(tmp_path / "conv.onnx")
    shapes = {"x": ((1, 3, 8, 8),) * 3}
    session = create_session(path, plan_session(provider, input_shapes=shapes, cache_dir=tmp_path,
                                                memory_budget_bytes=2 * 2**30))
    assert provider_that_ran(session) == provider
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    expected = create_session(path, plan_session("cpu")).run(None, {"x": x})[0]
    np.testing.assert_allclose(session.run(None, {"x": x})[0], expected, rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
def test_a_cuda_graph_session_replays_a_static_shape(tmp_path):
    problem = gpu_provider_problem("cuda")
    if problem is not None:
        pytest.skip(problem)
    path = _conv_model(tmp_path / "conv.onnx")
    plan = plan_session("cuda", cuda_graph=True, input_shapes={"x": ((1, 3, 8, 8),) * 3})
    assert plan.provider_options["enable_cuda_graph"] == "1"
    session = create_session(path, plan)
    assert provider_that_ran(session) == "cuda"
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    # CUDA graphs need inputs and outputs bound to fixed device buffers.
    binding = session.io_binding()
    binding.bind_ortvalue_input("x", onnxruntime.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
    binding.bind_output("y", "cuda")
    session.run_with_iobinding(binding)  # captures
    session.run_with_iobinding(binding)  # replays
    expected = create_session(path, plan_session("cpu")).run(None, {"x": x})[0]
    np.testing.assert_allclose(binding.copy_outputs_to_cpu()[0], expected, rtol=1e-3, atol=1e-3)


def test_fp32_math_is_what_the_cuda_plan_passes_and_tf32_on_tensorrt(tmp_path):
    assert session_plan.fp32_math(plan_session("cuda", tf32=False), "fp32") == "IEEE matmul and conv"
    assert session_plan.fp32_math(plan_session("cuda", tf32=True), "tf32") == "TF32 matmul and conv"
    # TensorRT allows TF32 and the provider cannot say otherwise, whatever was asked: the
    # "fp32" row says so with the reason.
    for tf32 in (False, True):
        assert session_plan.fp32_math(plan_session("tensorrt", tf32=tf32, cache_dir=tmp_path), "fp32") == (
            "TF32 matmul and conv (TensorRT's default, which ONNX Runtime's TensorRT provider has no "
            "option to turn off)")
    assert session_plan.fp32_math(plan_session("cpu"), "fp32") == ""  # the CPU has no TF32
    assert session_plan.fp32_math(plan_session("cuda", tf32=True), "fp16") == ""
    fp16_engine = plan_session("tensorrt", precision="fp16", cache_dir=tmp_path)
    assert session_plan.fp32_math(fp16_engine, "fp16") == ""


def test_the_installed_tensorrt_provider_still_has_no_tf32_option():
    """fp32_math's TensorRT answer rests on the provider offering no way to clear TF32: an
    onnxruntime that gains one fails here, and the answer must be read from the plan instead."""
    library = Path(onnxruntime.__file__).parent / "capi" / "libonnxruntime_providers_tensorrt.so"
    if not library.exists():
        pytest.skip(f"this onnxruntime has no TensorRT provider library ({library.name})")
    binary = library.read_bytes()
    options = set(re.findall(rb"(?<=\x00)trt_[a-z0-9_]+(?=\x00)", binary))
    assert {b"trt_fp16_enable", b"trt_bf16_enable", b"trt_int8_enable"} <= options  # the names are readable
    assert b"tf32" not in binary.lower()


def test_only_a_cuda_plan_with_static_shapes_and_the_option_replays_a_cuda_graph(tmp_path):
    static, dynamic = {"x": ((2, 3, 8, 8),) * 3}, {"x": ((1, 3, 8, 8), (4, 3, 8, 8), (4, 3, 8, 8))}
    assert session_plan.uses_cuda_graph(plan_session("cuda", cuda_graph=True, input_shapes=static))
    assert not session_plan.uses_cuda_graph(plan_session("cuda", cuda_graph=True, input_shapes=dynamic))
    assert not session_plan.uses_cuda_graph(plan_session("cuda", input_shapes=static))
    assert not session_plan.uses_cuda_graph(plan_session("tensorrt", input_shapes=static,
                                                          cache_dir=tmp_path))
