"""A model's kind from what it does, not from one layer: the family by where its FLOPs go
(a CNN with one attention block stays a CNN), inputs of several kinds (an image and tokens,
audio features and decoder tokens), each with its own axis, and hints that fit the input."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
from autotune_plugins.torch.input_discovery import guess_inputs  # noqa: E402
from autotune_plugins.torch.inspect import inspect_module  # noqa: E402
from torch import nn  # noqa: E402

from autotune.errors import UserError  # noqa: E402
from autotune.model.source import model_stats_for, parse_model  # noqa: E402
from autotune.model.stats import family_from_flops  # noqa: E402
from autotune.recommendation.facts import model_facts  # noqa: E402
from tests.test_cli import run  # noqa: E402


class Attention(nn.Module):  # the class name is what marks an attention layer
    def __init__(self, dim: int):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v


class CnnWithAttention(nn.Module):
    """A YOLO11-like CNN: heavy convolutions, one small attention block on the last map."""

    def __init__(self):
        super().__init__()
        self.convs = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 32, 3, padding=1))
        self.attn = Attention(32)

    def forward(self, x):
        y = self.convs(x)
        tokens = nn.functional.adaptive_avg_pool2d(y, 2).flatten(2).transpose(1, 2)
        return self.attn(tokens)


class TinyTransformer(nn.Module):
    """A ViT-like model: a patch convolution, then attention and MLPs carry the FLOPs."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, 64, 8, stride=8)
        self.blocks = nn.Sequential(Attention(64), nn.Linear(64, 256), nn.Linear(256, 64), Attention(64))

    def forward(self, x):
        return self.blocks(self.patch(x).flatten(2).transpose(1, 2))


def test_the_family_follows_the_share_of_flops_in_convolutions():
    assert family_from_flops(0.97, has_attention=True, has_convolution=True) == "cnn"
    assert family_from_flops(0.02, has_attention=True, has_convolution=True) == "transformer"
    assert family_from_flops(0.0, has_attention=False, has_convolution=False) == "other"
    cnn = inspect_module(CnnWithAttention(), "cnn", "test", (3, 32, 32), (32,))
    assert cnn.family == "cnn" and cnn.convolution_flops_share > 0.9
    assert 0 < cnn.attention_flops_share < 0.1
    transformer = inspect_module(TinyTransformer(), "vit", "test", (3, 32, 32), (32,))
    assert transformer.family == "transformer" and transformer.attention_flops_share > 0.3


class ClipLike(nn.Module):
    """CLIP's forward: token ids, an image and a mask, all keyword with defaults."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(vision_config=SimpleNamespace(image_size=32, num_channels=3),
                                      text_config=SimpleNamespace(vocab_size=100, max_position_embeddings=16))
        self.embed = nn.Embedding(100, 64)
        self.patch = nn.Conv2d(3, 64, 8, stride=8)
        self.attn = Attention(64)

    def forward(self, input_ids=None, pixel_values=None, attention_mask=None):
        text = self.attn(self.embed(input_ids) * attention_mask.unsqueeze(-1)).mean(1)
        image = self.attn(self.patch(pixel_values).flatten(2).transpose(1, 2)).mean(1)
        return text @ image.T


class WhisperLike(nn.Module):
    """Whisper's forward: mel features through a Conv1d encoder, decoder token ids."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(num_mel_bins=8, max_source_positions=20, vocab_size=50,
                                      max_target_positions=12)
        self.conv = nn.Conv1d(8, 16, 3, stride=2, padding=1)
        self.embed = nn.Embedding(50, 16)
        self.attn = Attention(16)

    def forward(self, input_features=None, attention_mask=None, decoder_input_ids=None):
        audio = self.conv(input_features).transpose(1, 2)
        return self.attn(torch.cat([audio, self.embed(decoder_input_ids)], dim=1))


def clip_like() -> nn.Module:
    return ClipLike()


def whisper_like() -> nn.Module:
    return WhisperLike()


def signal_model() -> nn.Module:
    return nn.Sequential(nn.Conv1d(4, 8, 3), nn.Flatten(), nn.LazyLinear(2))


def test_image_and_tokens_each_get_their_own_axis():
    inputs = guess_inputs(ClipLike())
    assert inputs is not None and inputs.kinds == ("image", "text") and inputs.kind == "image+text"
    assert inputs.names == ("input_ids", "attention_mask", "pixel_values")
    assert inputs.resolution == 32 and inputs.sequence_length == 16  # the config's 16 positions
    assert inputs.inputs[0].high == 100 and inputs.inputs[1].values == "ones"
    assert "image+text inputs from forward's parameters" in inputs.guesses[0]
    stats = model_stats_for(parse_model("tests.test_model_kind:clip_like"))
    assert stats.kind == "image+text" and stats.family == "transformer"
    facts = model_facts(stats)
    assert facts["model.kinds"] == ["image", "text"] and facts["model.sequence_length"] == 16


def test_audio_features_get_frames_and_the_decoder_its_tokens():
    inputs = guess_inputs(WhisperLike())
    assert inputs is not None and inputs.kind == "audio+text"
    features, tokens = inputs.inputs[0], inputs.inputs[1]
    assert features.shape == (8, 40) and features.axes == ("channels", "frames")  # 2 x 20 positions
    assert tokens.name == "decoder_input_ids" and tokens.shape == (12,) and tokens.high == 50
    assert inputs.frames == 40 and inputs.resolution is None
    assert "attention_mask" not in inputs.names  # the audio mask is optional; not the tokens'
    assert model_stats_for(parse_model("tests.test_model_kind:whisper_like")).family == "transformer"


def test_recommend_gives_a_multi_modal_model_its_sequence_and_an_audio_model_no_resolution(capsys):
    code, out, err = run(capsys, "recommend", "--model", "tests.test_model_kind:whisper_like",
                          "--format", "json")
    assert code == 0, err
    settings = json.loads(out)["settings"]
    assert settings["resolution"] is None and settings["sequence_length"] == 12
    code, out, err = run(capsys, "recommend", "--model", "tests.test_model_kind:clip_like",
                          "--format", "json")
    assert code == 0, err
    settings = json.loads(out)["settings"]
    assert settings["resolution"] == 32 and settings["sequence_length"] == 16


def test_a_model_reading_frames_is_not_told_to_pass_an_image():
    with pytest.raises(UserError) as raised:
        model_stats_for(parse_model("tests.test_model_kind:signal_model"))
    message = str(raised.value)
    assert "first layer is a Conv1d" in message and "F=3000" in message and "C,H,W" not in message


def test_an_ultralytics_model_without_a_size_is_guessed_at_its_framework_default():
    # Ultralytics' by the package its class lives in, as a DetectionModel built from its YAML.
    detection = type("DetectionModel", (nn.Sequential,), {"__module__": "ultralytics.nn.tasks"})
    inputs = guess_inputs(detection(nn.Conv2d(3, 4, 3)))
    assert inputs is not None and inputs.resolution == 640
    assert "ultralytics defaults to 640 px" in inputs.guesses[0]


def test_inspect_gives_the_flops_at_every_axis_the_model_takes(capsys):
    code, out, err = run(capsys, "inspect", "tests.test_model_kind:whisper_like")
    assert code == 0, err
    assert "FLOPs per sample at 40 frames and 12 tokens:" in out
    code, out, err = run(capsys, "inspect", "tests.test_model_kind:clip_like")
    assert code == 0, err
    assert "FLOPs per sample at 32 px and 16 tokens:" in out
