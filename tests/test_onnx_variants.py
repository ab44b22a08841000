"""The ONNX Runtime backend's precision variants: real conversions of two small models, run on
ONNX Runtime's CPU provider (conftest gives every test its own cache folder)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxconverter_common")

from autotune_plugins.common import onnx_variants, variant_builders  # noqa: E402
from autotune_plugins.common.onnx_op_mix import OpMix, op_mix  # noqa: E402
from autotune_plugins.common.onnx_variants import INT8_METHODS, Variant, make_variant  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from autotune.backend_api import UnsupportedConfig  # noqa: E402
from autotune.cache import cache_root  # noqa: E402
from autotune.errors import UserError  # noqa: E402
from autotune.model_inputs import InputSpec, ModelInputs, synthetic_batch  # noqa: E402

CONV_INPUTS = ModelInputs((InputSpec("x", (3, 32, 32), "float32", ("channels", "height", "width")),))
TOKEN_INPUTS = ModelInputs((InputSpec("ids", (16,), "int64", ("sequence",), "tokens", 1000),))
STATIC_METHODS = tuple(method for method in INT8_METHODS if method != "dynamic")


def _model(nodes, inputs, initializers, opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "test", inputs,
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
                              initializers)
    # onnx 1.23 writes IR version 14 by default, newer than ONNX Runtime 1.31 reads.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=8 if opset < 21 else 10)
    onnx.checker.check_model(model)
    return model


def conv_net() -> onnx.ModelProto:
    """Three 3x3 convolutions of 64 channels, global pooling, a Linear head: ~300 KB of weights."""
    rng = np.random.default_rng(0)
    channels = (3, 64, 64, 64)
    nodes, weights, previous = [], [], "x"
    for layer in range(3):
        fan_in = channels[layer] * 9
        kernel = rng.standard_normal((channels[layer + 1], channels[layer], 3, 3)) * (2 / fan_in) ** 0.5
        weights += [numpy_helper.from_array(kernel.astype(np.float32), f"conv{layer}.weight"),
                    numpy_helper.from_array((rng.standard_normal(channels[layer + 1]) * 0.1)
                                            .astype(np.float32), f"conv{layer}.bias")]
        nodes += [helper.make_node("Conv", [previous, f"conv{layer}.weight", f"conv{layer}.bias"],
                                   [f"conv{layer}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"conv{layer}"], [f"relu{layer}"])]
        previous = f"relu{layer}"
    nodes += [helper.make_node("GlobalAveragePool", [previous], ["pooled"]),
              helper.make_node("Flatten", ["pooled"], ["flat"]),
              helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], transB=1)]
    head = (rng.standard_normal((10, 64)) * 0.2).astype(np.float32)
    weights += [numpy_helper.from_array(head, "fc.weight"),
                numpy_helper.from_array(np.zeros(10, np.float32), "fc.bias")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 32, 32])]
    return _model(nodes, inputs, weights, opset=17)


def token_net(opset: int = 17) -> onnx.ModelProto:
    """A transformer's weight pattern on token ids: an embedding (Gather on a [1000, 64]
    initializer), MatMul up to 256, Relu, MatMul down to 64, mean over the sequence, MatMul
    to 10 classes."""
    rng = np.random.default_rng(1)

    def weight(shape, name):
        values = rng.standard_normal(shape) / shape[0] ** 0.5
        return numpy_helper.from_array(values.astype(np.float32), name)

    weights = [weight((1000, 64), "embed"), weight((64, 256), "up"), weight((256, 64), "down"),
               weight((64, 10), "head")]
    if opset >= 18:  # ReduceMean's axes became an input at opset 18
        weights.append(numpy_helper.from_array(np.array([1], np.int64), "axes"))
        mean = helper.make_node("ReduceMean", ["down_out", "axes"], ["pooled"], keepdims=0)
    else:
        mean = helper.make_node("ReduceMean", ["down_out"], ["pooled"], axes=[1], keepdims=0)
    nodes = [helper.make_node("Gather", ["embed", "ids"], ["embedded"]),
             helper.make_node("MatMul", ["embedded", "up"], ["up_out"]),
             helper.make_node("Relu", ["up_out"], ["hidden"]),
             helper.make_node("MatMul", ["hidden", "down"], ["down_out"]), mean,
             helper.make_node("MatMul", ["pooled", "head"], ["logits"])]
    inputs = [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 16])]
    return _model(nodes, inputs, weights, opset)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    paths = {"conv": folder / "conv.onnx", "tokens": folder / "tokens.onnx",
             "tokens21": folder / "tokens21.onnx"}
    onnx.save(conv_net(), str(paths["conv"]))
    onnx.save(token_net(), str(paths["tokens"]))
    onnx.save(token_net(opset=21), str(paths["tokens21"]))
    return paths


def inputs_for(name: str) -> ModelInputs:
    return CONV_INPUTS if name == "conv" else TOKEN_INPUTS


def calibration_for(name: str, samples: int = 8) -> dict:
    return synthetic_batch(inputs_for(name), samples, seed=1)


def run(path: Path, feed: dict) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def runs_conv_integer_with_int8_weights() -> bool:
    """Whether this ONNX Runtime loads ConvInteger(uint8 input, int8 weight) on the CPU."""
    import onnxruntime  # noqa: PLC0415

    node = helper.make_node("ConvInteger", ["x", "w"], ["y"])
    graph = helper.make_graph(
        [node], "conv_integer", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 1, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
        [numpy_helper.from_array(np.ones((1, 1, 2, 2), dtype=np.int8), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    model.ir_version = 7
    try:
        onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - any refusal to load means no kernel here
        return False
    return True


def variant_files() -> list[Path]:
    folder = cache_root() / onnx_variants.CACHE_KIND
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_op_mix_tells_a_conv_net_from_a_transformer(models):
    conv = op_mix(models["conv"])
    assert conv == OpMix(conv=3, matmul=0, gemm=1, gather_weights=0)
    assert not conv.matmul_heavy and not conv.has_nbits_targets
    tokens = op_mix(models["tokens"])
    assert tokens == OpMix(conv=0, matmul=3, gemm=0, gather_weights=1)
    assert tokens.matmul_heavy and tokens.has_nbits_targets
    assert OpMix(conv=0, matmul=0, gemm=0, gather_weights=1).has_nbits_targets  # an embedding alone


def test_fp32_is_the_file_itself(models):
    variant = make_variant(models["conv"], "fp32")
    assert variant.path == models["conv"] and variant.method == ""
    assert variant.size_bytes == variant.fp32_size_bytes == models["conv"].stat().st_size
    assert variant_files() == []


@pytest.mark.parametrize("name", ["conv", "tokens"])
@pytest.mark.parametrize(("precision", "method", "least_cosine"), [
    ("fp16", "", 0.999), *(("int8", method, 0.9) for method in INT8_METHODS)])
def test_each_variant_runs_close_to_fp32(models, tmp_path, name, precision, method, least_cosine):
    calibration = calibration_for(name) if method in STATIC_METHODS else None
    if (precision, method, name) == ("int8", "dynamic", "conv") and not runs_conv_integer_with_int8_weights():
        # Dynamic INT8 writes ConvInteger with int8 weights, which older ONNX Runtime releases
        # (1.23, the last for Python 3.10) have no CPU kernel for: the precision is refused.
        with pytest.raises(UnsupportedConfig, match="the converter wrote a model ONNX Runtime cannot load"):
            make_variant(models[name], precision, method, calibration=calibration)
        return
    variant = make_variant(models[name], precision, method, calibration=calibration)
    assert (variant.precision, variant.method) == (precision, method)
    assert variant.path.parent == cache_root() / "onnx-variants"
    assert variant.size_bytes == variant.path.stat().st_size < variant.fp32_size_bytes
    feed = synthetic_batch(inputs_for(name), 4, seed=7)
    expected = run(models[name], feed)
    assert cosine(run(variant.path, feed), expected) > least_cosine
    # ONNX Runtime's temporary models (augmented, shape-inferred) went to temporary folders,
    # not the working directory (conftest's tmp_path).
    assert {path.name for path in tmp_path.iterdir()} <= {"xdg", "xdg-cache"}
    assert [path for path in variant_files() if path.name.startswith(".")] == []


def test_static_int8_of_a_conv_net_is_about_four_times_smaller(models):
    for method in STATIC_METHODS:
        variant = make_variant(models["conv"], "int8", method, calibration=calibration_for("conv"))
        assert 3 < variant.fp32_size_bytes / variant.size_bytes < 4.5, variant.model_file.describe()


def test_describe_says_the_size_and_the_saving():
    variant = Variant("int8", "qdq", Path("x.onnx"), 11_700_000, 46_800_000)
    assert variant.model_file.describe() == "11.7 MB (FP32 46.8 MB)"
    assert Variant("fp32", "", Path("x.onnx"), 46_800_000, 46_800_000).model_file.describe() == "46.8 MB"


def test_int4_quantises_matmul_weights(models):
    variant = make_variant(models["tokens"], "int4")
    assert variant.method == "matmul_nbits"
    ops = [node.op_type for node in onnx.load(str(variant.path)).graph.node]
    assert ops.count("MatMulNBits") == 3
    # Below opset 21 the embedding stays: the quantiser would stamp opset 21 on the model
    # without converting ReduceMean-13, and ONNX Runtime would refuse the file.
    assert "Gather" in ops and "GatherBlockQuantized" not in ops
    feed = synthetic_batch(TOKEN_INPUTS, 4, seed=7)
    assert cosine(run(variant.path, feed), run(models["tokens"], feed)) > 0.9


def test_int4_quantises_the_embedding_of_an_opset_21_model(models):
    variant = make_variant(models["tokens21"], "int4", "matmul_nbits")
    ops = [node.op_type for node in onnx.load(str(variant.path)).graph.node]
    assert "GatherBlockQuantized" in ops and ops.count("MatMulNBits") == 3
    feed = synthetic_batch(TOKEN_INPUTS, 4, seed=7)
    assert cosine(run(variant.path, feed), run(models["tokens21"], feed)) > 0.9


def test_int4_of_a_conv_net_is_unsupported(models):
    with pytest.raises(UnsupportedConfig, match="S000-3") as caught:
        make_variant(models["conv"], "int4")
    assert "MatMul and Gather weights only" in str(caught.value) and "\n" not in str(caught.value)
    assert variant_files() == []


@pytest.mark.parametrize(("calibration", "words"), [
    ({"x": np.zeros((4, 3, 28, 28), np.float32)},
     "'x' has shape [4, 3, 28, 28], the model expects [batch, 3, 32, 32]"),
    ({"x": np.zeros((4, 32, 32, 3), np.float32)}, "pass --inputs with a batch of shape [batch, 3, 32, 32]"),
    ({"x": np.zeros((3, 32, 32), np.float32)}, "has shape [3, 32, 32]"),
    ({"x": np.zeros((4, 3, 32, 32), np.float64)}, "is float64, the model expects float32"),
    ({"image": np.zeros((4, 3, 32, 32), np.float32)}, "'image', which the model does not take"),
    ({}, "no input 'x'"),
    ({"x": np.zeros((0, 3, 32, 32), np.float32)}, "has 0 sample(s)"),
])
def test_a_calibration_batch_that_does_not_fit_is_a_user_error(models, calibration, words):
    with pytest.raises(UserError) as caught:
        make_variant(models["conv"], "int8", "qdq", calibration=calibration)
    message = str(caught.value)
    assert words in message and "\n" not in message
    assert not (cache_root() / onnx_variants.CACHE_KIND).exists()


def test_a_model_fixed_at_batch_2_is_calibrated_two_samples_at_a_time(tmp_path):
    model = conv_net()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    path = tmp_path / "batch2.onnx"
    onnx.save(model, str(path))
    variant = make_variant(path, "int8", "qdq", calibration=calibration_for("conv", samples=5))
    feed = synthetic_batch(CONV_INPUTS, 2, seed=7)
    assert cosine(run(variant.path, feed), run(path, feed)) > 0.9
    with pytest.raises(UserError, match=r"has 1 sample\(s\), the model runs batches of 2"):
        make_variant(path, "int8", "qdq", calibration=calibration_for("conv", samples=1))


def test_int8_without_pre_processing_when_it_fails(models, monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError("symbolic shape inference failed")

    monkeypatch.setattr(variant_builders, "quant_pre_process", fails)
    variant = make_variant(models["conv"], "int8", "qdq", calibration=calibration_for("conv"))
    feed = synthetic_batch(CONV_INPUTS, 2, seed=7)
    assert cosine(run(variant.path, feed), run(models["conv"], feed)) > 0.9


def test_static_int8_needs_a_calibration_batch(models):
    with pytest.raises(ValueError, match="calibration"):
        make_variant(models["conv"], "int8", "qdq")
    with pytest.raises(ValueError, match="method"):
        make_variant(models["conv"], "int8", "")
    with pytest.raises(ValueError, match="precision"):
        make_variant(models["conv"], "bf16")
    with pytest.raises(ValueError, match="providers_hint"):
        make_variant(models["conv"], "fp16", providers_hint="rocm")


def test_a_second_call_finds_the_cached_file(models, monkeypatch):
    calibration = calibration_for("conv")
    first = make_variant(models["conv"], "int8", "qdq", calibration=calibration)
    built_at = first.path.stat().st_mtime_ns

    def not_again(*args, **kwargs):
        raise AssertionError("the cached variant was built again")

    monkeypatch.setattr(variant_builders, "quantize_static", not_again)
    again = make_variant(models["conv"], "int8", "qdq", calibration={"x": calibration["x"].copy()})
    assert again == first and again.path.stat().st_mtime_ns == built_at
    # Other calibration data is another variant, and the library's failure is one line.
    with pytest.raises(UnsupportedConfig, match=r"^int8 qdq: the cached variant was built again$"):
        make_variant(models["conv"], "int8", "qdq", calibration=calibration_for("conv", samples=4))
    assert [path.suffix for path in variant_files() if path.suffix == ".onnx"] == [".onnx"]


def test_a_converter_failure_is_unsupported_in_one_line(models, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] something broke\n  at line 2")

    monkeypatch.setattr(variant_builders.float16, "convert_float_to_float16", broken)
    with pytest.raises(UnsupportedConfig, match=r"^fp16: \[ONNXRuntimeError\] something broke$"):
        make_variant(models["conv"], "fp16")
    assert not [path for path in variant_files() if path.suffix == ".onnx"]


def test_a_variant_onnx_runtime_cannot_load_is_unsupported_and_not_cached(models, monkeypatch):
    # The quantiser gave a bias shared by two nodes (as the TorchScript exporter shares equal
    # initializers) a uint8 type in a QGemm: a file written, and refused by ONNX Runtime.
    def unloadable(model, target):
        model = onnx.ModelProto()
        model.CopyFrom(conv_net())
        model.graph.node[0].op_type = "NoSuchOperator"
        onnx.save(model, str(target))

    monkeypatch.setattr(variant_builders, "build_fp16", unloadable)
    with pytest.raises(UnsupportedConfig, match=r"^fp16: the converter wrote a model ONNX Runtime cannot"):
        make_variant(models["conv"], "fp16")
    assert not [path for path in variant_files() if path.suffix == ".onnx"]


def test_the_quantisers_warnings_stay_off_the_terminal(models, caplog):
    def noisy(*args, **kwargs):
        import logging  # noqa: PLC0415

        logging.warning("Axis 1 is out-of-range for weight 'embedding_norm.weight' with rank 1")
        raise RuntimeError("gave up")

    with pytest.MonkeyPatch.context() as patch, caplog.at_level("WARNING"):
        patch.setattr(variant_builders.float16, "convert_float_to_float16", noisy)
        with pytest.raises(UnsupportedConfig):
            make_variant(models["conv"], "fp16")
    assert "out-of-range" not in caplog.text
    import logging  # noqa: PLC0415

    assert logging.root.manager.disable == logging.NOTSET


def test_an_unsorted_fp16_graph_is_unsupported_not_sorted_by_hand(models, monkeypatch):
    def unsorted(model, full_check=False):
        raise onnx.checker.ValidationError("Nodes in a graph must be topologically sorted, however input "
                                           "'x' of node: name: Cast is not output of any previous nodes.")

    monkeypatch.setattr(variant_builders.onnx.checker, "check_model", unsorted)
    with pytest.raises(UnsupportedConfig, match="#208"):
        make_variant(models["conv"], "fp16")


def test_a_model_with_external_weights_is_unsupported(tmp_path):
    path = tmp_path / "external.onnx"
    onnx.save(conv_net(), str(path), save_as_external_data=True, size_threshold=0)
    with pytest.raises(UnsupportedConfig, match="external data"):
        make_variant(path, "fp16")


def test_importing_the_module_leaves_logging_alone():
    # onnxruntime's matmul_nbits_quantizer calls logging.basicConfig(level=INFO) when imported:
    # in a fresh process, the root logger must be as Python left it.
    code = ("import logging, autotune_plugins.common.onnx_variants; root = logging.getLogger(); "
            "print(root.level, len(root.handlers))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [str(logging.WARNING), "0"]
