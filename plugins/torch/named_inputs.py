"""The inputs of a model that takes several kinds at once, read from ``forward``'s parameter
names and the model's config: CLIP's image and tokens, Whisper's audio features and decoder
tokens.

Hugging Face names its inputs the same way across models: ``pixel_values`` (an image),
``input_features`` (audio features: mel bins x frames), ``input_values`` (a raw waveform),
``input_ids`` and ``decoder_input_ids`` (token ids), with ``attention_mask`` beside the
tokens. Each input gets its own axis (the resolution, the frames, the sequence length) and
its size from the config where it gives one (``vision_config.image_size``, ``num_mel_bins``,
``2 x max_source_positions`` frames, ``text_config.vocab_size``); what is guessed is said.
"""

from __future__ import annotations

from autotune_plugins.torch.io import forward_parameters
from torch import nn

from autotune.sdk.models import InputSpec, ModelInputs

#: forward's parameters recognised by name, and the kind of input each is.
NAMED_KINDS = {"pixel_values": "image", "input_features": "audio", "input_values": "audio",
               "input_ids": "text", "decoder_input_ids": "text"}
#: Given with the tokens they go with when forward takes them (masks of ones).
MASKS = {"input_ids": "attention_mask", "decoder_input_ids": "decoder_attention_mask"}
#: Guessed where the config says nothing.
GUESSED_RESOLUTION = 224
GUESSED_SEQUENCE_LENGTH = 128
GUESSED_FRAMES = 3000  # 30 s of 10 ms mel frames, Whisper's window
GUESSED_SAMPLES = 16000  # one second of 16 kHz audio


def config_value(module: nn.Module, name: str, *sub_configs: str) -> int | None:
    """A positive integer the model's config (or one of its ``sub_configs``) sets, else None."""
    config = getattr(module, "config", None)
    for holder in (*(getattr(config, sub, None) for sub in sub_configs), config):
        value = getattr(holder, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _first(module: nn.Module, kind: type[nn.Module]) -> nn.Module | None:
    return next((layer for layer in module.modules() if isinstance(layer, kind)), None)


def _image(module: nn.Module, name: str, size: tuple[int, int] | None) -> tuple[InputSpec, str]:
    conv = _first(module, nn.Conv2d)
    channels = (config_value(module, "num_channels", "vision_config")
                or (conv.in_channels if isinstance(conv, nn.Conv2d) else 3))
    height, width = size or (GUESSED_RESOLUTION, GUESSED_RESOLUTION)
    where = "its config" if size else f"guessed ({GUESSED_RESOLUTION} px)"
    spec = InputSpec(name, (channels, height, width), "float32", ("channels", "height", "width"))
    return spec, f"{name} {channels}x{height}x{width} (size from {where})"


def _audio(module: nn.Module, name: str) -> tuple[InputSpec, str]:
    if name == "input_values":
        spec = InputSpec(name, (GUESSED_SAMPLES,), "float32", ("frames",))
        return spec, f"{name} {GUESSED_SAMPLES} samples (guessed: 1 s at 16 kHz)"
    conv = _first(module, nn.Conv1d)
    bins = config_value(module, "num_mel_bins", "audio_config") or (
        conv.in_channels if isinstance(conv, nn.Conv1d) else 80)
    positions = config_value(module, "max_source_positions", "audio_config")
    # Whisper's two convolutions halve the frames to its encoder positions.
    frames = 2 * positions if positions else GUESSED_FRAMES
    where = "2 x config.max_source_positions" if positions else "guessed"
    spec = InputSpec(name, (bins, frames), "float32", ("channels", "frames"))
    return spec, f"{name} {bins} channels x {frames} frames (frames: {where})"


def _tokens(module: nn.Module, name: str, parameters: list[str]) -> tuple[list[InputSpec], str]:
    vocabulary = config_value(module, "vocab_size", "text_config")
    if vocabulary is None:
        embedding = _first(module, nn.Embedding)
        vocabulary = embedding.num_embeddings if isinstance(embedding, nn.Embedding) else None
    limit_name = "max_target_positions" if name.startswith("decoder") else "max_position_embeddings"
    limit = config_value(module, limit_name, "text_config")
    length = min(GUESSED_SEQUENCE_LENGTH, limit) if limit else GUESSED_SEQUENCE_LENGTH
    specs = [InputSpec(name, (length,), "int64", ("sequence",), "tokens", vocabulary)]
    if MASKS[name] in parameters:
        specs.append(InputSpec(MASKS[name], (length,), "int64", ("sequence",), "ones"))
    said = (f"the config's {limit_name} {limit}" if limit and limit <= GUESSED_SEQUENCE_LENGTH
            else f"guessed{f', the config allows {limit}' if limit else ''}")
    return specs, f"{'/'.join(spec.name for spec in specs)} S={length} (length {said})"


def named_inputs(module: nn.Module, image_size: tuple[int, int] | None) -> ModelInputs | None:
    """Every input of a model whose ``forward`` takes audio, or an image and tokens, by their
    Hugging Face names (see the module's docstring), in ``forward``'s order; None for a model
    that takes one kind (the first-layer guess describes those). ``image_size`` is the size
    the model declares, if any."""
    parameters = [p.name for p in forward_parameters(module)]
    found = [name for name in parameters if name in NAMED_KINDS]
    kinds = {NAMED_KINDS[name] for name in found}
    if "audio" not in kinds and len(kinds) < 2:
        return None
    specs: list[InputSpec] = []
    notes = []
    for name in found:
        if NAMED_KINDS[name] == "image":
            spec, note = _image(module, name, image_size)
            specs.append(spec)
        elif NAMED_KINDS[name] == "audio":
            spec, note = _audio(module, name)
            specs.append(spec)
        else:
            tokens, note = _tokens(module, name, parameters)
            specs += tokens
        notes.append(note)
    kind = "+".join(sorted(kinds))
    return ModelInputs(tuple(specs)).with_guess(
        f"{kind} inputs from forward's parameters and the model's config: {'; '.join(notes)}; "
        "pass --input-spec if the model expects others")
