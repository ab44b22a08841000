"""FLOPs of one ONNX node, counted as PyTorch's FlopCounterMode counts the same operator.

A multiply-add counts 2, bias and activations are ignored. Covered: Conv (grouped and
depthwise by the weight's ``C/groups``), ConvTranspose, Gemm, MatMul (batched, with
broadcasting), Einsum (two operands, as ``torch.einsum`` runs it through ``bmm``), the
attention operators (ONNX ``Attention``, onnxruntime's ``Attention`` and
``MultiHeadAttention``), their fused (``FusedConv``, ``FusedMatMul``, ``FusedGemm``) and
quantised forms (``QLinearConv``, ``ConvInteger``, ``QLinearMatMul``, ``MatMulInteger``).
Every other node counts 0, as elementwise operators count 0 in torch.

Each node is also sorted for the model's family: convolution, attention (an attention
operator, a MatMul or Einsum of two activations, e.g. Q x K^T, or a node inside a layer
the exporter named ``attn``/``attention``), or neither.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import onnx

#: Tensor name -> (dims, None where unknown; element size).
Tensors = dict[str, tuple[list[int | None], int]]
CONVOLUTIONS = ("Conv", "ConvTranspose", "FusedConv", "QLinearConv", "ConvInteger")
ATTENTION_OPS = ("Attention", "MultiHeadAttention")
#: Where each operator's two matrix operands (or input and weight) are among its inputs.
_OPERANDS = {"Conv": (0, 1), "FusedConv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3),
             "ConvTranspose": (0, 1), "Gemm": (0, 1), "FusedGemm": (0, 1), "MatMul": (0, 1),
             "FusedMatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "Einsum": (0, 1)}
_ATTENTION_LAYER = re.compile(r"(attn|attention)", re.IGNORECASE)


def _attribute(node: onnx.NodeProto, name: str, default):
    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


def _conv(node, a, w, out) -> int:
    if node.op_type == "ConvTranspose":  # every input element meets C_out/groups x kernel weights
        return 2 * math.prod(a) * w[1] * math.prod(w[2:])
    return 2 * math.prod(out) * math.prod(w[1:])  # each output: (C_in/groups) x kernel


def _gemm(node, a, w, out) -> int:
    trans_a = _attribute(node, "transA", 0)
    return 2 * math.prod(out) * (a[0] if trans_a else a[-1])


def _matmul(node, a, w, out) -> int:
    trans_a = _attribute(node, "transA", 0)  # FusedMatMul's
    inner = a[-2] if trans_a and len(a) > 1 else a[-1]
    return 2 * math.prod(out) * inner


def _einsum(node, a, b, out) -> int:
    """2 x the product of every index's size, for a two-operand contraction."""
    equation = _attribute(node, "equation", b"")
    equation = equation.decode() if isinstance(equation, bytes) else str(equation)
    operands = equation.replace(" ", "").split("->")[0].split(",")
    if len(operands) != 2:
        return 0
    sizes: dict[str, int] = {}
    ellipsis = 1
    for letters, dims in zip(operands, (a, b), strict=True):
        named = letters.replace("...", "")
        if "..." in letters:
            skipped = dims[letters.index("..."):len(dims) - (len(named) - letters.index("..."))]
            ellipsis = max(ellipsis, math.prod(skipped))
            dims = [*dims[:letters.index("...")], *dims[len(dims) - (len(named) - letters.index("...")):]]
        for letter, size in zip(named, dims, strict=False):
            sizes[letter] = max(sizes.get(letter, 1), size)
    return 2 * math.prod(sizes.values()) * ellipsis


_FORMULAS: dict[str, Callable[..., int]] = {
    "Conv": _conv, "FusedConv": _conv, "ConvInteger": _conv, "QLinearConv": _conv, "ConvTranspose": _conv,
    "Gemm": _gemm, "FusedGemm": _gemm, "MatMul": _matmul, "FusedMatMul": _matmul,
    "MatMulInteger": _matmul, "QLinearMatMul": _matmul, "Einsum": _einsum}


def _attention(node: onnx.NodeProto, dims: Callable[[int], list[int]]) -> int:
    """Q x K^T and weights x V: 4 x Q's elements x the keys' length; onnxruntime's
    ``Attention`` also projects its input to Q, K and V (input x weights[hidden, 3 x hidden])."""
    query = dims(0)
    if node.domain == "com.microsoft" and node.op_type == "Attention":
        weights = dims(1)
        if len(query) != 3 or len(weights) != 2:
            return 0
        projections = 2 * math.prod(query) * weights[1]
        return projections + 4 * math.prod(query) * query[1]
    key = dims(1)
    if not query or not key:
        return 0
    keys_length = key[-2] if len(key) == 4 else key[1] if len(key) == 3 else 0
    return 4 * math.prod(query) * keys_length


def node_flops(node: onnx.NodeProto, tensors: Tensors) -> int:
    """The node's FLOPs at the shapes in ``tensors``; 0 for an operator that does no
    multiply-adds or whose shapes are unknown."""
    def dims(index: int) -> list[int]:
        if index >= len(node.input) or node.input[index] not in tensors:
            return []
        known = [d for d in tensors[node.input[index]][0] if d is not None]
        return known if len(known) == len(tensors[node.input[index]][0]) else []

    if node.op_type in ATTENTION_OPS:
        return _attention(node, dims)
    if node.op_type not in _FORMULAS or not node.output or node.output[0] not in tensors:
        return 0
    out = tensors[node.output[0]][0]
    first, second = _OPERANDS[node.op_type]
    a, b = dims(first), dims(second)
    if not a or not b or any(d is None for d in out):
        return 0
    return _FORMULAS[node.op_type](node, a, b, [int(d) for d in out if d is not None])


def node_kind(node: onnx.NodeProto, constants: set[str]) -> str:
    """convolution, attention or "" (see the module's docstring). ``constants`` are the
    graph's initializers and Constant outputs: a MatMul with one of them is a projection."""
    if node.op_type in CONVOLUTIONS and not _ATTENTION_LAYER.search(node.name):
        return "convolution"
    if node.op_type in ATTENTION_OPS or _ATTENTION_LAYER.search(node.name):
        return "attention"
    if node.op_type in ("MatMul", "FusedMatMul", "Einsum") and not (set(node.input[:2]) & constants):
        return "attention"
    return ""
