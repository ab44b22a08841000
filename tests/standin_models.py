"""Small stand-ins for the models users bring, each a factory ``name()`` returning a module.

Each copies one habit of real models that a naive inspector trips on: a detector that reads
values out of tensors and returns a tuple, a factory that imports its library lazily, dict
and Hugging Face ``ModelOutput`` results, token-id inputs with a mask, two inputs. All run
on the CPU in milliseconds.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

#: The detector's native input size, and the stride every input size must divide by.
DETECTOR_SIZE = 640
DETECTOR_STRIDE = 32
VOCABULARY = 1000


def _conv(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.SiLU())


class TinyDetector(nn.Module):
    """A YOLO-style detector: a stride-32 backbone, one 1x1 head per level (strides 8, 16,
    32), boxes decoded against anchor points built from a stride buffer. Returns
    ``(predictions[N, anchors, 4 + classes], [feature maps])``."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.stem = nn.Sequential(_conv(3, 8, 2), _conv(8, 8, 2), _conv(8, 16, 2))  # /8
        self.down16 = _conv(16, 16, 2)
        self.down32 = _conv(16, 16, 2)
        self.heads = nn.ModuleList(nn.Conv2d(channels, 4 + classes, 1) for channels in (16, 16, 16))
        self.register_buffer("stride", torch.tensor([8.0, 16.0, 32.0]))
        self.args = {"imgsz": 640}  # where an Ultralytics model keeps its training size

    def levels(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.shape[-1] % DETECTOR_STRIDE or images.shape[-2] % DETECTOR_STRIDE:
            raise ValueError(f"input size {tuple(images.shape[-2:])} is not a multiple of {DETECTOR_STRIDE}")
        p8 = self.stem(images)
        p16 = self.down16(p8)
        return [p8, p16, self.down32(p16)]

    def forward(self, images: torch.Tensor):
        features = self.levels(images)
        predictions = []
        for level, feature in enumerate(features):
            _, _, height, width = feature.shape
            stride = self.stride[level].item()  # a value read out of a tensor: fails on meta
            ys, xs = torch.meshgrid(torch.arange(height, dtype=feature.dtype, device=feature.device),
                                    torch.arange(width, dtype=feature.dtype, device=feature.device),
                                    indexing="ij")
            anchors = (torch.stack((xs, ys), -1).reshape(-1, 2) + 0.5) * stride
            strides = feature.new_full((height * width, 1), self.stride[level])
            out = self.heads[level](feature).flatten(2).transpose(1, 2)
            boxes = torch.cat((anchors - out[..., :2] * strides, anchors + out[..., 2:4] * strides), -1)
            predictions.append(torch.cat((boxes, out[..., 4:].sigmoid()), -1))
        return torch.cat(predictions, 1), features


class FilteringDetector(TinyDetector):
    """The detector with post-processing whose shape depends on the values: how many boxes
    pass the score threshold decides the output's size. No shape-only method can run it."""

    def forward(self, images: torch.Tensor):
        predictions, features = super().forward(images)
        scores = predictions[..., 4:].amax(-1)
        kept = max(1, int((scores > 0.5).sum()))
        return predictions[:, :kept], features


def detector():
    return TinyDetector()


def filtering_detector():
    return FilteringDetector()


class LazyGridModel(nn.Module):
    """Adds a library's class-level anchor grid to its input, then a Linear."""

    def __init__(self):
        super().__init__()
        from tests import standin_lazy_lib  # noqa: PLC0415 - lazy, as the stand-in's point

        self.library = standin_lazy_lib
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x + self.library.Anchors.GRID.to(x.device, x.dtype))


def lazy_import_model():
    return LazyGridModel()


class SmallBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(image)).mean(dim=(2, 3))


class DictOutput(SmallBackbone):
    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.features(image)
        return {"features": features, "logits": self.fc(features)}


def dict_output_model():
    return DictOutput()


class ModelOutput(OrderedDict):
    """Like ``transformers.utils.ModelOutput``: a dict of the fields that are not None,
    readable as attributes."""

    def __init__(self, loss=None, logits=None, hidden_states=None):
        super().__init__((key, value) for key, value in
                         (("loss", loss), ("logits", logits), ("hidden_states", hidden_states))
                         if value is not None)

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class ModelOutputModel(SmallBackbone):
    def forward(self, image: torch.Tensor) -> ModelOutput:
        features = self.features(image)
        return ModelOutput(loss=None, logits=self.fc(features), hidden_states=(features,))


def model_output_model():
    return ModelOutputModel()


class SelfAttention(nn.Module):
    """One head of masked self-attention, written out (no fused kernel whose FLOPs differ
    between the meta device and the CPU)."""

    def __init__(self, width: int):
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        query, key, value = self.qkv(hidden).chunk(3, dim=-1)
        scores = query @ key.transpose(1, 2) / hidden.shape[-1] ** 0.5
        scores = scores.masked_fill(mask[:, None, :] == 0, float("-inf"))
        return hidden + self.out(scores.softmax(-1) @ value)


class TokenClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCABULARY, 32)
        self.attention = SelfAttention(32)
        self.norm = nn.LayerNorm(32)
        self.classifier = nn.Linear(32, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.norm(self.attention(self.embedding(input_ids), attention_mask))
        weights = attention_mask[..., None].to(hidden.dtype)
        return self.classifier((hidden * weights).sum(1) / weights.sum(1))


def token_classifier():
    return TokenClassifier()


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 + 8, 2)

    def forward(self, image: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        pooled = torch.relu(self.conv(image)).mean(dim=(2, 3))
        return self.fc(torch.cat((pooled, extra), 1))


def two_input_model():
    return TwoInputs()


#: A module-level instance, named as ``tests.standin_models:SHARED_MODEL``: inspecting it
#: must leave it exactly as it was (on the CPU, in training mode).
SHARED_MODEL = DictOutput()


def shared_model():
    """A factory that returns the module-level instance rather than a new model."""
    return SHARED_MODEL


class FixedSize(nn.Module):
    """A classifier whose Linear reads the flattened 32 x 32 feature map: 32 px only."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 32 * 32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def fixed_size_model():
    return FixedSize()


#: A module-level detector handed out by its factory: the real CPU run must not train it.
SHARED_FILTERING_DETECTOR = FilteringDetector()


def shared_filtering_detector():
    return SHARED_FILTERING_DETECTOR
