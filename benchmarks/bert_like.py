"""A small BERT-like text classifier built from a config, in plain torch (no ``transformers``):
a transformer that autotune can inspect, export to ONNX and measure on both backends.

    autotune verify --model benchmarks.bert_like:small_bert --backend all \\
        --input-spec 'input_ids:int64[S=128]:tokens<30522; attention_mask:int64[S=128]:ones'

The layout is BERT's: token embeddings plus learned positions, LayerNorm; then encoder
layers with post-LayerNorm residuals (attention, then a GELU feed-forward); a tanh pooler
on the first token and a linear classifier. Attention is written with matmuls, as BERT's
eager attention is, so the ONNX graph holds plain MatMuls that ONNX Runtime's quantiser
and fusions see (``nn.MultiheadAttention``'s fused inference path exports less plainly).
Token types and dropout are left out: one segment, inference only.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

#: BERT-base's vocabulary and positions, at a quarter of its width and a third of its depth.
SMALL_BERT: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "max_position_embeddings": 512,
    "num_labels": 2,
    "layer_norm_eps": 1e-12,
    "initializer_range": 0.02,
}


class SelfAttention(nn.Module):
    def __init__(self, hidden_size: int, heads: int):
        super().__init__()
        if hidden_size % heads:
            raise ValueError(f"hidden size {hidden_size} is not a multiple of {heads} heads")
        self.heads, self.head_size = heads, hidden_size // heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.output = nn.Linear(hidden_size, hidden_size)

    def _split(self, states: torch.Tensor) -> torch.Tensor:
        """[batch, sequence, hidden] -> [batch, heads, sequence, head size]."""
        batch, sequence, _ = states.shape
        return states.view(batch, sequence, self.heads, self.head_size).transpose(1, 2)

    def forward(self, states: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        query, key, value = self._split(self.query(states)), self._split(self.key(states)), \
            self._split(self.value(states))
        scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_size) + additive_mask
        context = torch.matmul(scores.softmax(dim=-1), value)
        batch, _, sequence, _ = context.shape
        return self.output(context.transpose(1, 2).reshape(batch, sequence, self.heads * self.head_size))


class EncoderLayer(nn.Module):
    """Post-LN, as BERT: each sublayer's output is added to its input, then normalised."""

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        hidden, eps = config["hidden_size"], config["layer_norm_eps"]
        self.attention = SelfAttention(hidden, config["num_attention_heads"])
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.feed_forward = nn.Sequential(nn.Linear(hidden, config["intermediate_size"]), nn.GELU(),
                                          nn.Linear(config["intermediate_size"], hidden))
        self.output_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, states: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        states = self.attention_norm(states + self.attention(states, additive_mask))
        return self.output_norm(states + self.feed_forward(states))


class BertLikeClassifier(nn.Module):
    """``forward(input_ids, attention_mask)`` -> logits ``[batch, num_labels]``."""

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        hidden = config["hidden_size"]
        self.token_embeddings = nn.Embedding(config["vocab_size"], hidden)
        self.position_embeddings = nn.Embedding(config["max_position_embeddings"], hidden)
        self.embedding_norm = nn.LayerNorm(hidden, eps=config["layer_norm_eps"])
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config["num_hidden_layers"]))
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, config["num_labels"])
        self._initialise(config["initializer_range"])

    def _initialise(self, std: float) -> None:
        """BERT's initialisation: normal weights, zero biases, unit LayerNorms. The random
        state is the caller's (autotune seeds its build, so every consumer gets the same)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=std)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        states = self.embedding_norm(self.token_embeddings(input_ids) + self.position_embeddings(positions))
        # 0 where a token may be attended to, a large negative number where it is padding;
        # [batch, 1, 1, sequence] broadcasts over heads and query positions.
        additive_mask = (1.0 - attention_mask[:, None, None, :].to(states.dtype)) \
            * torch.finfo(states.dtype).min
        for layer in self.layers:
            states = layer(states, additive_mask)
        pooled = torch.tanh(self.pooler(states[:, 0]))
        return self.classifier(pooled)


def small_bert() -> nn.Module:
    """The :data:`SMALL_BERT` classifier with fresh weights (autotune seeds the build)."""
    return BertLikeClassifier(SMALL_BERT)
