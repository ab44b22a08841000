"""ONNX FLOPs for every operator the torch count covers, hand-counted on a small graph:
grouped and depthwise Conv, ConvTranspose, Gemm, MatMul (batched, broadcast), Einsum, the
attention operators, and a Conv whose input's shape only shape arithmetic gives (YOLO's split)."""

from __future__ import annotations

from dataclasses import replace

import pytest

onnx = pytest.importorskip("onnx")
from autotune_plugins.onnxruntime.graph_costs import per_sample_costs  # noqa: E402
from autotune_plugins.onnxruntime.inspect import inspect_onnx  # noqa: E402
from autotune_plugins.onnxruntime.node_flops import node_flops  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from autotune.model_inputs import from_shape  # noqa: E402

GROUPED = 2 * (8 * 8 * 8) * (2 * 3 * 3)  # Conv 4->8, groups 2: each output reads 2 channels x 3x3
DEPTHWISE = 2 * (8 * 8 * 8) * (1 * 3 * 3)  # Conv 8->8, groups 8
TRANSPOSED = 2 * (8 * 8 * 8) * 4 * (2 * 2)  # every input element meets 4 outputs x 2x2
SPLIT_CONV = 2 * (4 * 8 * 8) * 4  # 1x1 Conv 4->4 on the first half of the channels
PROJECTION = 2 * (4 * 32) * 256  # MatMul [1,4,256] x weight [256,32]
SCORES = 2 * (4 * 4) * 32  # MatMul of two activations, [1,4,32] x [1,32,4]
BROADCAST = 2 * (3 * 4 * 5) * 4  # MatMul [1,4,4] x weight [3,4,5] -> [3,4,5]
GEMM = 2 * 6 * 16  # Gemm transA: [16,1]^T x [16,6]
EINSUM = 2 * 1 * 4 * 32 * 4  # bij,bjk->bik
CONVOLUTIONS = GROUPED + DEPTHWISE + TRANSPOSED + SPLIT_CONV
TOTAL = CONVOLUTIONS + PROJECTION + SCORES + BROADCAST + GEMM + EINSUM


def _const(name, dims, values=None, data_type=TensorProto.FLOAT):
    count = 1
    for dim in dims:
        count *= dim
    return helper.make_tensor(name, data_type, dims, values if values is not None else [0] * count)


def every_operator(tmp_path):
    node = helper.make_node
    nodes = [
        node("Conv", ["x", "w_grouped"], ["c1"], pads=[1, 1, 1, 1], group=2),
        node("Conv", ["c1", "w_depthwise"], ["c2"], pads=[1, 1, 1, 1], group=8),
        node("ConvTranspose", ["c2", "w_transposed"], ["c3"], strides=[2, 2]),
        # YOLO's chunk: the split point computed from the tensor's own shape.
        node("Shape", ["c1"], ["shape"]),
        node("Gather", ["shape", "one"], ["channels"]),
        node("Div", ["channels", "two"], ["half"]),
        node("Unsqueeze", ["half", "axis0"], ["end"]),
        node("Slice", ["c1", "start", "end", "axis1"], ["first_half"]),
        node("Conv", ["first_half", "w_split"], ["c4"]),
        node("Reshape", ["c3", "to_tokens"], ["tokens"]),
        node("MatMul", ["tokens", "w_projection"], ["m1"]),
        node("Transpose", ["m1"], ["m1t"], perm=[0, 2, 1]),
        node("MatMul", ["m1", "m1t"], ["scores"]),
        node("MatMul", ["scores", "w_broadcast"], ["broadcast"]),
        node("Reshape", ["scores", "to_column"], ["column"]),
        node("Gemm", ["column", "w_gemm"], ["gemm"], transA=1),
        node("Einsum", ["m1", "m1t"], ["einsum"], equation="bij,bjk->bik"),
    ]
    initializers = [
        _const("w_grouped", [8, 2, 3, 3]), _const("w_depthwise", [8, 1, 3, 3]),
        _const("w_transposed", [8, 4, 2, 2]), _const("w_split", [4, 4, 1, 1]),
        _const("w_projection", [256, 32]), _const("w_broadcast", [3, 4, 5]), _const("w_gemm", [16, 6]),
        _const("one", [], [1], TensorProto.INT64), _const("two", [], [2], TensorProto.INT64),
        _const("axis0", [1], [0], TensorProto.INT64), _const("axis1", [1], [1], TensorProto.INT64),
        _const("start", [1], [0], TensorProto.INT64),
        _const("to_tokens", [3], [1, 4, 256], TensorProto.INT64),
        _const("to_column", [2], [16, 1], TensorProto.INT64),
    ]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
               for name in ("c4", "broadcast", "gemm", "einsum")]
    graph = helper.make_graph(nodes, "every_operator",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              outputs, initializers)
    path = tmp_path / "every_operator.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_every_operator_is_counted_as_torch_counts_it(tmp_path):
    path = every_operator(tmp_path)
    inputs = replace(from_shape((4, 8, 8), "x"), fixed_batch=1)
    costs = per_sample_costs(onnx.load(path), inputs, {"x": None})
    assert costs.flops == TOTAL
    assert costs.convolution_flops == CONVOLUTIONS
    assert costs.attention_flops == SCORES + EINSUM  # two activations multiplied, not a projection


def test_the_family_and_its_shares_come_from_the_graph(tmp_path):
    stats = inspect_onnx(every_operator(tmp_path), None)
    assert stats.at(stats.native_resolution).flops_per_sample == TOTAL
    assert stats.convolution_flops_share == round(CONVOLUTIONS / TOTAL, 3)
    assert stats.attention_flops_share == round((SCORES + EINSUM) / TOTAL, 3)
    assert stats.family == "transformer"  # attention, and convolutions under half the FLOPs


@pytest.mark.parametrize(("domain", "op", "shapes", "expected"), [
    # ONNX's Attention, [batch, heads, seq, head dim]: Q x K^T and weights x V.
    ("", "Attention", {"q": [2, 4, 8, 16], "k": [2, 4, 10, 16]}, 4 * (2 * 4 * 8 * 16) * 10),
    ("com.microsoft", "MultiHeadAttention", {"q": [2, 8, 64], "k": [2, 10, 64]}, 4 * (2 * 8 * 64) * 10),
    # onnxruntime's Attention projects its input to Q, K and V first.
    ("com.microsoft", "Attention", {"q": [2, 8, 64], "k": [64, 192]},
     2 * (2 * 8 * 64) * 192 + 4 * (2 * 8 * 64) * 8),
])
def test_attention_operators_count_their_products(domain, op, shapes, expected):
    node = helper.make_node(op, ["q", "k"], ["out"], domain=domain)
    tensors = {name: (dims, 4) for name, dims in shapes.items()}
    assert node_flops(node, tensors) == expected
