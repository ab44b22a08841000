"""What a PyTorch model takes: the user's description, the reference models' image, or a guess.

A model whose ``forward`` takes inputs of several kinds by their Hugging Face names
(CLIP's ``pixel_values`` and ``input_ids``, Whisper's ``input_features`` and
``decoder_input_ids``) gets each of them, sized from its config (:func:`named_inputs`).
Otherwise a guess reads the first layer (a Conv2d, an Embedding or a Linear) and names the
inputs after ``forward``'s parameters; an image's size is the one the model declares (a
Hugging Face config, timm's or Ultralytics' settings) where it declares one. Every guess is said
in the inputs' ``guesses``, with the option that overrides it. Works on a model built on
meta: only layer attributes are read.
"""

from __future__ import annotations

from autotune_plugins.torch.detection import as_image_list
from autotune_plugins.torch.io import forward_parameters
from autotune_plugins.torch.named_inputs import config_value, named_inputs
from torch import nn

from autotune.sdk import UserError
from autotune.sdk.models import InputSpec, ModelInputs, ModelSource, default_values, from_shape

#: What the torchvision reference models take.
REFERENCE_INPUT_SHAPE = (3, 224, 224)
#: Guessed when nothing says: the reference models' size, a common tokenizer window.
GUESSED_RESOLUTION = 224
GUESSED_SEQUENCE_LENGTH = 128
#: forward parameters with a default that a text model is still given (Hugging Face's).
TOKEN_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
#: The size a framework trains and predicts at when the model itself says none (an
#: Ultralytics model built from its YAML carries no ``args['imgsz']``; ``imgsz`` defaults to 640).
FRAMEWORK_DEFAULT_RESOLUTIONS = {"ultralytics": 640}


def _first_layer(module: nn.Module) -> nn.Module | None:
    for layer in module.modules():
        if isinstance(layer, (nn.modules.conv._ConvNd, nn.Linear, nn.Embedding)):
            return layer
    return None


def declared_image_size(module: nn.Module) -> tuple[tuple[int, int] | None, str]:
    """(height, width) where the model says its own input size, and where it says it: a
    Hugging Face ``config.image_size``, timm's ``pretrained_cfg['input_size']``, an
    Ultralytics model's ``args['imgsz']``. (None, "") when it does not."""
    def pair(value: object) -> tuple[int, int] | None:
        if isinstance(value, int) and value > 0:
            return value, value
        if isinstance(value, (tuple, list)) and len(value) in (2, 3) and all(
                isinstance(v, int) and v > 0 for v in value):
            return int(value[-2]), int(value[-1])
        return None

    config = getattr(module, "config", None)
    found = [(pair(getattr(config, "image_size", None)), "config.image_size"),
             (pair(config_value(module, "image_size", "vision_config")), "config.vision_config.image_size")]
    for attribute in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(module, attribute, None)
        if isinstance(cfg, dict):
            found.append((pair(cfg.get("input_size")), f"{attribute}['input_size']"))
    args = getattr(module, "args", None)
    if isinstance(args, dict):
        found.append((pair(args.get("imgsz")), "args['imgsz']"))
    return next(((size, where) for size, where in found if size is not None), (None, ""))


def _guess(module: nn.Module) -> tuple[ModelInputs | None, str]:
    """The inputs the first layer says the model takes, or None and why not."""
    several_kinds = named_inputs(module, declared_image_size(module)[0])
    if several_kinds is not None:
        return several_kinds, ""
    parameters = forward_parameters(module)
    required = [p.name for p in parameters if p.default is p.empty]
    layer = _first_layer(module)
    if isinstance(layer, nn.Embedding):
        names = [p.name for p in parameters
                 if p.default is p.empty or p.name in TOKEN_INPUT_NAMES] or ["input_ids"]
        specs = []
        for name in names:
            values = default_values(name, "int64")
            high = layer.num_embeddings if values == "tokens" else None
            specs.append(InputSpec(name, (GUESSED_SEQUENCE_LENGTH,), "int64", ("sequence",), values, high))
        guess = (f"inputs guessed from the first Embedding ({layer.num_embeddings} tokens) as "
                 f"{', '.join(names)}: int64[S={GUESSED_SEQUENCE_LENGTH}], the sequence length "
                 f"{GUESSED_SEQUENCE_LENGTH} guessed; pass --input-spec if the model expects others")
        return ModelInputs(tuple(specs)).with_guess(guess), ""
    if layer is None:
        return None, "it has no Conv2d, Linear or Embedding layer to read them from"
    if len(required) > 1:
        return None, (f"its forward takes {', '.join(required)}, and the first layer says what "
                      "only one of them is")
    name = parameters[0].name if parameters else "input"
    if isinstance(layer, nn.Conv2d):
        declared, where = declared_image_size(module)
        shape = (layer.in_channels, *(declared or (GUESSED_RESOLUTION, GUESSED_RESOLUTION)))
        if declared is not None:
            return from_shape(shape, name).with_guess(
                f"input {'x'.join(map(str, shape))}: the size from the model's {where}, the channels "
                "from the first Conv2d"), ""
        package = type(module).__module__.partition(".")[0]
        default = FRAMEWORK_DEFAULT_RESOLUTIONS.get(package)
        if default is not None:
            shape = (layer.in_channels, default, default)
            return from_shape(shape, name).with_guess(
                f"input guessed as {'x'.join(map(str, shape))}: the model declares no size, and "
                f"{package} defaults to {default} px; pass --input-shape if it was trained at another"), ""
        return from_shape(shape, name).with_guess(
            f"input guessed as {'x'.join(map(str, shape))} from the first Conv2d; pass "
            "--input-shape or --input-spec if the model expects another size"), ""
    if isinstance(layer, nn.Linear):
        return from_shape((layer.in_features,), name).with_guess(
            f"input guessed as {layer.in_features} features from the first Linear; pass "
            "--input-shape or --input-spec if the model expects another shape"), ""
    return None, f"its first layer is a {type(layer).__name__}"


def guess_inputs(module: nn.Module) -> ModelInputs | None:
    """The inputs the first layer says the model takes, named after ``forward``'s parameters,
    each guess said in ``guesses``: a Conv2d -> one C x 224 x 224 image; an Embedding ->
    int64 token ids (below its vocabulary) and masks of ones, 128 long; a Linear -> its
    features. None when the first layer is another kind, or ``forward`` takes more inputs
    than the first layer describes."""
    return _guess(module)[0]


def model_inputs_for(source: ModelSource, module: nn.Module) -> ModelInputs:
    """What ``source`` takes: what the user said, the reference models' 3 x 224 x 224
    image, or a guess from ``module`` (built on meta is fine); marked as a list of images
    for a detector that takes one (:func:`~autotune_plugins.torch.detection.as_image_list`)."""
    if source.inputs is not None:
        return as_image_list(module, source.inputs, guessed=False)
    if source.kind == "reference":
        return from_shape(REFERENCE_INPUT_SHAPE)
    guessed, why_not = _guess(module)
    if guessed is not None:
        guessed = as_image_list(module, guessed, guessed=True)
    if guessed is None:
        raise UserError(f"cannot guess the inputs of {source.spec} ({why_not}); {_hint(module)}")
    return guessed


def _hint(module: nn.Module) -> str:
    """What to pass instead, fitted to what the first layer takes (never an image's C,H,W to
    a model whose first layer reads frames)."""
    layer = _first_layer(module)
    names = [p.name for p in forward_parameters(module) if p.default is p.empty] or ["x"]
    if isinstance(layer, nn.Conv1d):
        return (f"its first layer reads {layer.in_channels} channels of frames (audio or a signal): "
                f"pass --input-spec, e.g. --input-spec '{names[0]}:float32[{layer.in_channels},F=3000]'")
    if isinstance(layer, nn.Conv3d):
        return (f"its first layer reads {layer.in_channels}-channel volumes or clips: pass --input-spec, "
                f"e.g. --input-spec '{names[0]}:float32[{layer.in_channels},16,H=112,W=112]'")
    specs = "; ".join(f"{name}:float32[...]" for name in names)
    return ("pass --input-spec with one item per input of its forward, e.g. "
            f"--input-spec '{specs}' (dims as numbers, H=/W= for an image's size, S= for a "
            "sequence, F= for audio frames), or --input-shape C,H,W if it takes one image")
