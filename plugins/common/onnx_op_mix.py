"""What kind of compute an ONNX graph's weights feed (convolutions, weighted MatMuls and
Gemms, embeddings) and the opset it declares: what decides whether INT4 has anything to
quantise and which of its targets the quantiser can store.

Imports onnx; external weights are never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx


@dataclass(frozen=True)
class OpMix:
    """What kind of compute a graph's weights feed: node counts, subgraphs included."""

    conv: int  # Conv and ConvTranspose nodes
    matmul: int  # MatMul nodes whose second input is an initializer (a weight, not attention's QK)
    gemm: int  # Gemm nodes whose second input is an initializer
    gather_weights: int  # Gather nodes reading an initializer: embeddings

    @property
    def matmul_heavy(self) -> bool:
        """True when weighted MatMul and Gemm nodes outnumber Conv nodes (``matmul + gemm >
        conv``): a transformer (a ViT's one patch-embedding Conv included), not a CNN with a
        Linear head."""
        return self.matmul + self.gemm > self.conv

    @property
    def has_nbits_targets(self) -> bool:
        """True when INT4 (``MatMulNBitsQuantizer``) has something to quantise: a MatMul with
        a constant weight or a Gather on an initializer. Gemm and Conv are not its targets."""
        return self.matmul > 0 or self.gather_weights > 0


def op_mix(path: Path) -> OpMix:
    """Count the weighted ops of the ONNX file at ``path`` (external weights are not read)."""
    return graph_op_mix(onnx.load(str(path), load_external_data=False))


def graph_op_mix(model: onnx.ModelProto) -> OpMix:
    """:func:`op_mix` of a loaded model."""
    counts = {"conv": 0, "matmul": 0, "gemm": 0, "gather_weights": 0}
    _count_ops(model.graph, frozenset(), counts)
    return OpMix(**counts)


def _count_ops(graph: onnx.GraphProto, outer_weights: frozenset[str], counts: dict[str, int]) -> None:
    # A subgraph (If, Loop, Scan) sees the initializers of the graphs around it.
    weights = outer_weights | {initializer.name for initializer in graph.initializer}
    for node in graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            counts["conv"] += 1
        elif node.op_type == "MatMul" and len(node.input) > 1 and node.input[1] in weights:
            counts["matmul"] += 1
        elif node.op_type == "Gemm" and len(node.input) > 1 and node.input[1] in weights:
            counts["gemm"] += 1
        elif node.op_type == "Gather" and node.input and node.input[0] in weights:
            counts["gather_weights"] += 1
        for attribute in node.attribute:
            for subgraph in (attribute.g,) if attribute.HasField("g") else attribute.graphs:
                _count_ops(subgraph, weights, counts)


def onnx_opset(model: onnx.ModelProto) -> int:
    """The default (ai.onnx) domain's opset the model imports; 0 when it names none."""
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)
