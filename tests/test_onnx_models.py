"""The ONNX files users bring: batch fixed at 1, several inputs of any dtype, token ids, dynamic
sizes given by --input-spec, and errors that stay on one line."""

from __future__ import annotations

import json
import warnings

import pytest

onnx = pytest.importorskip("onnx")
from autotune_plugins.onnxruntime.graph_inputs import DEFAULT_SEQUENCE_LENGTH  # noqa: E402
from autotune_plugins.onnxruntime.inspect import METHOD, inspect_onnx, inspect_source  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from autotune.errors import UserError, one_line  # noqa: E402
from autotune.model.source import parse_model  # noqa: E402
from autotune.model_inputs import from_shape, parse_input_spec, tier_resolutions  # noqa: E402
from tests.test_cli import one_line_error, run  # noqa: E402

CONV_FLOPS = 2 * (4 * 8 * 8) * (3 * 3 * 3)  # Conv 3->4, k3, pad 1, on 8x8
GEMM_FLOPS = 2 * 5 * 256  # Gemm 256->5


def _save(tmp_path, name, nodes, inputs, outputs, initializers):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    path = tmp_path / f"{name}.onnx"
    # IR 8 (opset 17's): every onnxruntime the lock may resolve loads it, whatever IR onnx writes.
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def _zeros(name, dims, data_type=TensorProto.FLOAT):
    count = 1
    for dim in dims:
        count *= dim
    return helper.make_tensor(name, data_type, dims, [0] * count)


def _image_model(tmp_path, batch=1, name="fixed"):
    """x[batch,3,8,8] -> Conv(4, k3, pad 1) -> Reshape to [batch, 256] -> Gemm(256->5).

    The Reshape's target holds the batch as a constant, as torch.onnx.export writes it: the
    graph runs at its own batch and no other."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["c", "target"], ["f"]),
        helper.make_node("Gemm", ["f", "g", "gb"], ["out"], transB=1),
    ]
    initializers = [_zeros("w", [4, 3, 3, 3]), _zeros("g", [5, 256]), _zeros("gb", [5]),
                    helper.make_tensor("target", TensorProto.INT64, [2], [batch, 256])]
    return _save(tmp_path, name, nodes,
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
                 [helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, 5])], initializers)


def _text_model(tmp_path, vocabulary=1000, sequence="seq", batch="batch"):
    """input_ids, attention_mask int64[batch, seq] -> Gather(embedding[vocab, 16]) * mask
    -> MatMul(16 -> 4)."""
    nodes = [
        helper.make_node("Gather", ["embedding", "input_ids"], ["embedded"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_float"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_float", "last_axis"], ["mask_column"]),
        helper.make_node("Mul", ["embedded", "mask_column"], ["masked"]),
        helper.make_node("MatMul", ["masked", "head"], ["logits"]),
    ]
    initializers = [_zeros("embedding", [vocabulary, 16]), _zeros("head", [16, 4]),
                    helper.make_tensor("last_axis", TensorProto.INT64, [1], [2])]
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, [batch, sequence])
              for name in ("input_ids", "attention_mask")]
    return _save(tmp_path, "text", nodes, inputs,
                 [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, sequence, 4])],
                 initializers)


def _dynamic_image_model(tmp_path):
    """x[N,3,H,W] -> Conv(4, k3, pad 1) -> GlobalAveragePool -> Flatten -> Gemm(4->5)."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "g"], ["out"], transB=1),
    ]
    return _save(tmp_path, "dynamic", nodes,
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                 [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 5])],
                 [_zeros("w", [4, 3, 3, 3]), _zeros("g", [5, 4])])


def test_a_model_fixed_at_batch_1_is_read_at_batch_1(tmp_path):
    stats = inspect_onnx(_image_model(tmp_path), None)
    assert stats.inputs.fixed_batch == 1
    assert stats.input_shape == (3, 8, 8) and stats.kind == "image" and stats.fixed_resolution
    assert [r.resolution for r in stats.resolutions] == [8]
    assert stats.at(8).flops_per_sample == CONV_FLOPS + GEMM_FLOPS
    # Peak: the conv output with its reshaped copy (2 x 256 floats); weights are not activations.
    assert stats.at(8).infer_activation_bytes == {"fp32": 2 * 256 * 4, "fp16": 2 * 256 * 2}
    assert stats.method == METHOD and stats.trainable is False and stats.output == ""
    assert "batch fixed at 1" in stats.inputs.describe()


def test_a_fixed_batch_is_divided_out(tmp_path):
    one = inspect_onnx(_image_model(tmp_path, batch=1, name="one"), None)
    four = inspect_onnx(_image_model(tmp_path, batch=4, name="four"), None)
    assert four.inputs.fixed_batch == 4
    assert four.at(8) == one.at(8)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_torch_export_at_its_default_batch_1(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(256, 5)).eval()
    path = tmp_path / "exported.onnx"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.randn(1, 3, 8, 8),), str(path), dynamo=False)
    except (TypeError, ImportError, ModuleNotFoundError) as error:  # exporter unavailable
        pytest.skip(f"torch.onnx.export unavailable here: {error}")
    stats = inspect_onnx(path, None)
    assert stats.inputs.fixed_batch == 1 and stats.input_shape == (3, 8, 8)
    assert stats.at(8).flops_per_sample == CONV_FLOPS + GEMM_FLOPS


def test_token_ids_and_a_mask_read_from_the_graph(tmp_path):
    stats = inspect_onnx(_text_model(tmp_path), None)
    ids, mask = stats.inputs.inputs
    assert (ids.name, ids.dtype, ids.shape, ids.axes) == ("input_ids", "int64", (128,), ("sequence",))
    assert (ids.values, ids.high) == ("tokens", 1000)  # the embedding table's rows
    assert (mask.name, mask.dtype, mask.shape, mask.values) == ("attention_mask", "int64", (128,), "ones")
    assert stats.kind == "text" and stats.inputs.fixed_batch is None and not stats.fixed_resolution
    assert [r.resolution for r in stats.resolutions] == [None]
    assert stats.at(None).flops_per_sample == 2 * DEFAULT_SEQUENCE_LENGTH * 4 * 16
    assert len(stats.inputs.guesses) == 1
    guess = stats.inputs.guesses[0]
    assert "sequence length 128" in guess and "input_ids, attention_mask" in guess and "--input-spec" in guess
    # The first float activation: 128 x 16 embeddings, per sample (batch 2 minus batch 1).
    assert stats.at(None).infer_activation_bytes["fp32"] >= 128 * 16 * 4


def test_a_user_sequence_length_reaches_every_input_sharing_the_dim(tmp_path):
    source = parse_model(str(_text_model(tmp_path)), input_spec="input_ids:int64[S=64]")
    stats = inspect_source(source, (224,))
    assert [spec.shape for spec in stats.inputs.inputs] == [(64,), (64,)]
    assert stats.inputs.guesses == ()
    assert stats.at(None).flops_per_sample == 2 * 64 * 4 * 16
    # The user's vocabulary wins over the graph's.
    given = parse_input_spec("input_ids:int64[S=32]:tokens<50; attention_mask:int64[S=32]:ones")
    assert inspect_onnx(_text_model(tmp_path), given).inputs.primary.high == 50


def test_a_spec_naming_an_input_the_graph_lacks(tmp_path):
    with pytest.raises(UserError, match="has no input named 'ids'; its inputs are input_ids, attention_mask"):
        inspect_onnx(_text_model(tmp_path), parse_input_spec("ids:int64[S=64]"))
    with pytest.raises(UserError, match="does not fit"):
        inspect_onnx(_text_model(tmp_path), parse_input_spec("input_ids:int64[S=64,2]"))


def test_a_fixed_batch_text_model(tmp_path):
    stats = inspect_onnx(_text_model(tmp_path, sequence=16, batch=1), None)
    assert stats.inputs.fixed_batch == 1 and stats.inputs.guesses == ()
    assert stats.at(None).flops_per_sample == 2 * 16 * 4 * 16


def test_a_one_dimensional_token_input(tmp_path):
    """ids[N] -> Gather(embedding[50, 8]) -> MatMul(8 -> 3): no image, no sequence."""
    path = _save(tmp_path, "ids", [
        helper.make_node("Gather", ["embedding", "ids"], ["embedded"]),
        helper.make_node("MatMul", ["embedded", "head"], ["out"]),
    ], [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])],
        [_zeros("embedding", [50, 8]), _zeros("head", [8, 3])])
    stats = inspect_onnx(path, None)
    assert stats.input_shape == () and stats.inputs.primary.high == 50 and stats.kind == "other"
    assert stats.at(None).flops_per_sample == 2 * 3 * 8
    assert stats.at(None).infer_activation_bytes["fp32"] > 0
    assert stats.parameters == 50 * 8 + 8 * 3


def test_a_dynamic_image_is_measured_at_the_tiers_around_its_given_size(tmp_path):
    path = _dynamic_image_model(tmp_path)
    stats = inspect_onnx(path, from_shape((3, 64, 64)))
    assert not stats.fixed_resolution and stats.native_resolution == 64
    assert [r.resolution for r in stats.resolutions] == sorted({*tier_resolutions(64), 64})
    conv_at = {r.resolution: r.flops_per_sample - 2 * 5 * 4 for r in stats.resolutions}
    assert conv_at[64] == 2 * 4 * 64 * 64 * 27
    assert conv_at[32] * 4 == conv_at[64]


def test_a_dynamic_image_without_a_size_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError) as error:
        inspect_onnx(_dynamic_image_model(tmp_path), None)
    message = str(error.value)
    assert "dynamic input dimensions (x: 3,?,?" in message and "\n" not in message
    assert "--input-shape 3,224,224" in message and "--input-spec 'x:float32[C=3,H=224,W=224]'" in message


def test_a_shape_the_graph_cannot_take_is_one_line_not_cut_mid_word(tmp_path):
    # A fixed Gemm after a Flatten: 3x5x5 passes the declared dims but not shape inference.
    path = _save(tmp_path, "flat", [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["c"], ["f"]),
        helper.make_node("Gemm", ["f", "g"], ["out"], transB=1),
    ], [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 5])],
        [_zeros("w", [4, 3, 3, 3]), _zeros("g", [5, 256])])
    with pytest.raises(UserError, match="does not fit this ONNX model") as error:
        inspect_onnx(path, from_shape((3, 5, 5)))
    message = str(error.value)
    assert "\n" not in message and message.endswith("as the model expects")


def test_one_line_cuts_at_a_word_boundary():
    assert one_line("short reason") == "short reason"
    assert one_line("first line\nsecond line") == "first line"
    long = "the node Gemm_3 expects its input to have 256 columns " * 10
    cut = one_line(long, 60)
    assert cut.endswith("…") and len(cut) <= 61
    assert long.startswith(cut[:-1]) and long[len(cut) - 1] == " "


def test_inspect_onnx_files_from_the_command_line(tmp_path, capsys):
    code, out, _ = run(capsys, "inspect", str(_image_model(tmp_path)), "--json")
    assert code == 0, out
    assert json.loads(out)["flops_per_sample"] == CONV_FLOPS + GEMM_FLOPS
    code, out, err = run(capsys, "inspect", str(_text_model(tmp_path)), "--input-spec",
                         "input_ids:int64[S=64]; attention_mask:int64[S=64]")
    assert code == 0, err
    error = one_line_error(capsys, "inspect", str(_dynamic_image_model(tmp_path)))
    assert "--input-shape" in error and "--input-spec" in error


def test_an_input_shape_for_a_model_of_several_inputs(tmp_path):
    with pytest.raises(UserError, match=r"--input-shape describes one input, but .* has 2 \(input_ids, "
                                        r"attention_mask\); describe them with --input-spec 'input_ids"):
        inspect_onnx(_text_model(tmp_path), (64,))


def test_the_re_export_hint_makes_every_input_s_batch_dynamic(tmp_path, capsys):
    path = _text_model(tmp_path, batch=1)
    message = one_line_error(capsys, "recommend", "--model", str(path), "--set", "batch_size=4")
    assert "dynamic_axes={'input_ids': {0: 'batch'}, 'attention_mask': {0: 'batch'}}" in message


def test_bench_of_an_onnx_file_runs_on_onnx_runtime_without_being_told(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    path = _dynamic_image_model(tmp_path)
    code, out, err = run(capsys, "bench", "--model", str(path), "--input-shape", "3,8,8", "--sweep",
                         "batch=1,2", "--precision", "fp32",
                         "--json", "--plot", str(tmp_path / "bench.png"))
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert {row["backend"] for row in rows} == {"onnxruntime"}
    assert all(row["status"] == "ok" for row in rows)
