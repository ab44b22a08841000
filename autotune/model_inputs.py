"""What a model takes: one or more named inputs, each with its shape, dtype and meaning.

The one input description the model stats, the memory model, every runner and the
accuracy check share. Read from the model where it can be (an ONNX graph's inputs, a torch
model's ``forward`` signature and first layer), from ``--input-shape`` (one float input)
or ``--input-spec`` (any inputs) where it cannot; every guess is kept in ``guesses`` and
said in one line of the output.

Every input's first dimension is the batch, so ``shape`` is one sample's. ``axes`` labels
the dimensions a decision changes: ``height``/``width`` (the resolution), ``sequence``
(the sequence length), ``frames`` (an audio input's time axis), ``channels``; other
dimensions are left unlabelled (``""``). A model may take several kinds at once (CLIP an
image and tokens, Whisper audio features and decoder tokens): ``ModelInputs.kinds``.
Synthetic data fits the dtype: normal floats, token ids below ``high``, masks of ones.
numpy is imported inside :func:`synthetic_batch` and :func:`padded_batch`, so importing this
module costs nothing.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from autotune.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    import numpy

#: Element types an input may have (numpy's names, which torch and ONNX share).
DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")
FLOAT_DTYPES = ("float32", "float16", "float64")
#: How synthetic values are drawn: ``tokens`` are ids in [0, high), ``ones`` fit attention masks.
VALUE_KINDS = ("normal", "tokens", "ones", "zeros")
_AXIS_LETTERS = {"C": "channels", "H": "height", "W": "width", "S": "sequence", "F": "frames"}
#: The kinds of input, in the order ``ModelInputs.kind`` joins them, and the axis that marks each.
INPUT_KINDS = {"image": "height", "audio": "frames", "text": "sequence"}
#: Token ids are drawn below this when the vocabulary is unknown: valid for any embedding.
SAFE_TOKEN_HIGH = 2
#: The input resolutions of the S000-5 tiers (low-resource, balanced, accuracy), written
#: for 224 px classifiers; a model with another native size gets them scaled (scale_tier).
TIER_RESOLUTIONS = (160, 224, 320)
TIER_REFERENCE_RESOLUTION = 224
#: Scaled resolutions are rounded to this multiple: the stride of common detectors.
RESOLUTION_STEP = 32


def scale_tier(native: int | None, tier: int) -> int:
    """A tier's resolution for a model whose native size is ``native``: 320 px on a 224 px
    classifier is 928 px on a 640 px detector (the same ratio, a multiple of 32)."""
    if native is None or native == TIER_REFERENCE_RESOLUTION:
        return tier
    scaled = native * tier / TIER_REFERENCE_RESOLUTION
    return max(RESOLUTION_STEP, round(scaled / RESOLUTION_STEP) * RESOLUTION_STEP)


def tier_resolutions(native: int | None) -> tuple[int, ...]:
    """Every tier's resolution around ``native`` (the S000-5 tiers when it is unknown)."""
    return tuple(scale_tier(native, tier) for tier in TIER_RESOLUTIONS)


def shape_at_resolution(shape: tuple[int, ...], resolution: int | None,
                        axes: tuple[str, ...] | None = None) -> tuple[int, ...]:
    """One sample's shape with its height set to ``resolution`` and its width scaled to keep
    the aspect ratio: the one shape helper the inspectors, the runners and the accuracy
    inputs share. ``axes`` says which dimensions are height and width (by default a 3-D
    shape is C, H, W); a shape without a height keeps its size."""
    axes = image_axes(tuple(shape)) if axes is None else axes
    if resolution is None or "height" not in axes:
        return tuple(shape)
    resized = list(shape)
    height = axes.index("height")
    if "width" in axes:
        width = axes.index("width")
        resized[width] = max(1, round(shape[width] * resolution / shape[height]))
    resized[height] = resolution
    return tuple(resized)


@dataclass(frozen=True)
class InputSpec:
    """One named input, one sample of it (the batch is the leading dimension, not here)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    axes: tuple[str, ...] = ()  # one label per dimension of ``shape``, or () for none
    values: str = "normal"  # normal | tokens | ones | zeros
    high: int | None = None  # tokens: ids drawn from [0, high)

    def axis(self, label: str) -> int | None:
        return self.axes.index(label) if label in self.axes else None

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    def at(self, resolution: int | None = None, sequence_length: int | None = None) -> InputSpec:
        """This input with its height set to ``resolution`` (the width scaled to keep the
        aspect ratio) and its sequence axis set to ``sequence_length``."""
        shape = list(shape_at_resolution(self.shape, resolution, self.axes))
        sequence = self.axis("sequence")
        if sequence_length is not None and sequence is not None:
            shape[sequence] = sequence_length
        return replace(self, shape=tuple(shape))

    def _dims(self) -> list[str]:
        """Each dimension as ``--input-spec`` writes it: ``H=640`` where labelled, else the size."""
        letters = {label: letter for letter, label in _AXIS_LETTERS.items()}
        return [f"{letters[label]}={size}" if label in letters else str(size)
                for size, label in zip(self.shape, self.axes or ("",) * len(self.shape), strict=True)]

    def describe(self) -> str:
        values = {"normal": "", "ones": " (ones)", "zeros": " (zeros)",
                  "tokens": f" (token ids < {self.high or SAFE_TOKEN_HIGH})"}[self.values]
        return f"{self.name}: {self.dtype}[batch, {', '.join(self._dims())}]{values}"

    def spec_text(self) -> str:
        """This input as one ``--input-spec`` item (what :func:`parse_input_spec` reads)."""
        return f"{self.name}:{self.dtype}[{','.join(self._dims())}]"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.axes:
            data["axes"] = list(self.axes)
        if self.values != "normal":
            data["values"] = self.values
        if self.high is not None:
            data["high"] = self.high
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls(name=data["name"], shape=tuple(data["shape"]), dtype=data.get("dtype", "float32"),
                   axes=tuple(data.get("axes", ())), values=data.get("values", "normal"),
                   high=data.get("high"))


#: What the accuracy check says of a model that returns a list of detections per image.
DETECTIONS_NOT_COMPARED = ("detections not compared: each image gets as many boxes as pass the score "
                           "threshold, so two precisions' lists do not line up; check them on your data")


@dataclass(frozen=True)
class DetectionTargets:
    """What a detector that takes a list of images trains on, per image (torchvision's
    convention): ``boxes`` [N, 4] (x1 < x2, y1 < y2, in pixels inside the image), ``labels``
    [N] int64 in [1, num_classes) (0 is the background), ``masks`` [N, H, W] uint8 where
    ``masks`` (Mask R-CNN), ``keypoints`` [N, K, 3] where ``keypoints`` is K (Keypoint R-CNN)."""

    num_classes: int
    masks: bool = False
    keypoints: int = 0
    boxes_per_image: int = 3

    def describe(self) -> str:
        parts = [f"{self.boxes_per_image} boxes", f"labels < {self.num_classes}"]
        parts += ["masks"] * self.masks + [f"{self.keypoints} keypoints"] * bool(self.keypoints)
        return ", ".join(parts)


@dataclass(frozen=True)
class ModelInputs:
    """Every input a model takes, in the order its ``forward`` (or graph) lists them."""

    inputs: tuple[InputSpec, ...]
    #: The batch the model is fixed to (an ONNX export with a constant batch), else None.
    fixed_batch: int | None = None
    #: ``forward`` takes a list of images, one C, H, W tensor per sample, rather than one
    #: batched tensor, and returns one result per image (torchvision's detectors); in
    #: training it takes ``targets`` too, and returns its losses.
    image_list: bool = False
    #: What such a model trains on (None: it is not trained on targets).
    targets: DetectionTargets | None = None
    #: What was guessed rather than read or given, one line each.
    guesses: tuple[str, ...] = field(default=(), compare=False)

    @property
    def primary(self) -> InputSpec:
        return self.inputs[0]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    @property
    def kinds(self) -> tuple[str, ...]:
        """What the inputs carry, each once: image (an input has a height), audio (a frames
        axis), text (a sequence axis); () for none of them."""
        return tuple(kind for kind, label in INPUT_KINDS.items() if self._size(label) is not None)

    @property
    def kind(self) -> str:
        """The kinds joined with ``+`` ("image", "text", "image+text", "audio+text"), or "other"."""
        return "+".join(self.kinds) or "other"

    def _size(self, label: str) -> int | None:
        """The size of the first input's ``label`` axis (height, sequence), None if none has one."""
        axes = ((spec, spec.axis(label)) for spec in self.inputs)
        return next((spec.shape[axis] for spec, axis in axes if axis is not None), None)

    @property
    def resolution(self) -> int | None:
        """The image input's height: the model's native resolution."""
        return self._size("height")

    @property
    def sequence_length(self) -> int | None:
        return self._size("sequence")

    @property
    def frames(self) -> int | None:
        """The audio input's length in frames (Whisper's 3000 mel frames for 30 s)."""
        return self._size("frames")

    def at(self, resolution: int | None = None, sequence_length: int | None = None) -> ModelInputs:
        return replace(self, inputs=tuple(spec.at(resolution, sequence_length) for spec in self.inputs))

    def describe(self) -> str:
        text = "; ".join(spec.describe() for spec in self.inputs)
        if self.fixed_batch is not None:
            text += f" (batch fixed at {self.fixed_batch})"
        if self.image_list:
            text += " as a list of images"
            if self.targets is not None:
                text += f", trained on synthetic targets ({self.targets.describe()})"
        return text

    def with_guess(self, line: str) -> ModelInputs:
        return replace(self, guesses=(*self.guesses, line))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"inputs": [spec.to_dict() for spec in self.inputs]}
        if self.fixed_batch is not None:
            data["fixed_batch"] = self.fixed_batch
        if self.guesses:
            data["guesses"] = list(self.guesses)
        if self.image_list:
            data["image_list"] = True
        if self.targets is not None:
            data["targets"] = asdict(self.targets)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInputs:
        targets = data.get("targets")
        return cls(tuple(InputSpec.from_dict(entry) for entry in data["inputs"]),
                   fixed_batch=data.get("fixed_batch"), guesses=tuple(data.get("guesses", ())),
                   image_list=bool(data.get("image_list", False)),
                   targets=DetectionTargets(**targets) if targets is not None else None)


def image_axes(shape: tuple[int, ...]) -> tuple[str, ...]:
    """C, H, W for a 3-D float sample; no labels for any other shape."""
    return ("channels", "height", "width") if len(shape) == 3 else ()


def from_shape(shape: tuple[int, ...], name: str = "input") -> ModelInputs:
    """One float input of ``shape`` (``--input-shape``): a 3-D shape is an image, C, H, W."""
    return ModelInputs((InputSpec(name, tuple(shape), "float32", image_axes(tuple(shape))),))


def default_values(name: str, dtype: str) -> str:
    """How to fill an input nobody described: floats normal, masks ones, token types zeros,
    other integers token ids."""
    if dtype in FLOAT_DTYPES:
        return "normal"
    lowered = name.lower()
    if dtype == "bool" or "mask" in lowered:
        return "ones"
    if "token_type" in lowered or "segment" in lowered:
        return "zeros"
    return "tokens"


_SPEC_ITEM = re.compile(
    r"\s*(?P<name>[A-Za-z_][\w.]*)\s*:\s*(?P<dtype>\w+)\s*\[(?P<dims>[^\]]*)\]"
    r"(?:\s*:\s*(?P<values>[a-z]+)(?:\s*<\s*(?P<high>\d+))?)?\s*(?:[;,]|$)")
_SPEC_EXAMPLE = ("e.g. --input-spec 'input_ids:int64[S=128]:tokens<30522; attention_mask:int64[S=128]:ones' "
                 "or 'images:float32[3,H=640,W=640]'")


def parse_input_spec(text: str) -> ModelInputs:
    """``--input-spec``: inputs separated by ``;``, each ``name:dtype[dims]`` with an
    optional ``:values`` (``tokens<VOCAB``, ``ones``, ``zeros``, ``normal``). A dimension is
    a number, or ``H=``/``W=`` (the resolution), ``S=`` (the sequence length), ``F=`` (an
    audio input's frames), ``C=``."""
    specs, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _SPEC_ITEM.match(text, position)
        if match is None or match.end() == position:
            raise UserError(f"input spec {text!r} does not parse at {text[position:][:30]!r}; "
                            f"write name:dtype[dims], {_SPEC_EXAMPLE}")
        specs.append(_spec_from_match(match, text))
        position = match.end()
    if not specs:
        raise UserError(f"input spec {text!r} names no input; {_SPEC_EXAMPLE}")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise UserError(f"input spec {text!r} names an input twice; give each input once")
    return ModelInputs(tuple(specs))


def _spec_from_match(match: re.Match, text: str) -> InputSpec:
    name, dtype = match["name"], match["dtype"].lower()
    if dtype not in DTYPES:
        raise UserError(f"input {name} in {text!r} has dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    shape, axes = [], []
    for dim in (part.strip() for part in match["dims"].split(",")):
        letter, _, size = dim.rpartition("=")
        label = _AXIS_LETTERS.get(letter.strip().upper()) if letter else ""
        if label is None or not size.strip().isdigit() or int(size) < 1:
            raise UserError(f"input {name} in {text!r}: dimension {dim!r} must be a positive number, "
                            "optionally labelled H=, W=, S=, F= or C= (the batch is left out)")
        shape.append(int(size))
        axes.append(label)
    values = match["values"] or default_values(name, dtype)
    if values not in VALUE_KINDS:
        raise UserError(f"input {name} in {text!r}: values {values!r} must be one of "
                        f"{', '.join(VALUE_KINDS)}")
    if values == "normal" and dtype not in FLOAT_DTYPES:
        raise UserError(f"input {name} in {text!r} is {dtype}: normal values need a float dtype; "
                        "use tokens<VOCAB, ones or zeros")
    high = int(match["high"]) if match["high"] else None
    if high is not None and (values != "tokens" or high < 1):
        raise UserError(f"input {name} in {text!r}: '<N' goes with tokens and must be at least 1, "
                        "e.g. :tokens<30522")
    return InputSpec(name, tuple(shape), dtype, tuple(axes) if any(axes) else (), values, high)


def synthetic_batch(inputs: ModelInputs, batch: int, seed: int = 0) -> dict[str, numpy.ndarray]:
    """``batch`` seeded samples of every input, as numpy arrays of the input's dtype."""
    import numpy as np  # noqa: PLC0415

    generator = np.random.default_rng(seed)
    arrays = {}
    for spec in inputs.inputs:
        shape = (batch, *spec.shape)
        if spec.values == "normal":
            array = generator.standard_normal(shape, dtype=np.float32).astype(spec.dtype)
        elif spec.values == "tokens":
            array = generator.integers(0, spec.high or SAFE_TOKEN_HIGH, shape).astype(spec.dtype)
        else:
            array = np.full(shape, 1 if spec.values == "ones" else 0, dtype=spec.dtype)
        arrays[spec.name] = array
    return arrays


def batch_chunks(arrays: Mapping[str, numpy.ndarray], batch_size: int, fixed_batch: int | None = None
                 ) -> Iterator[dict[str, numpy.ndarray]]:
    """``arrays`` (one per input, batch first) in chunks of ``batch_size`` samples, for a
    runtime that runs one batch size at a time; a graph exported at a fixed batch gets
    chunks of exactly that batch, the short last one left out.

    :raises UserError: a fixed-batch graph and fewer samples than its batch.
    """
    count = len(next(iter(arrays.values())))
    size = fixed_batch or batch_size
    if fixed_batch and count < fixed_batch:
        raise UserError(f"the model's graph is fixed at batch {fixed_batch}; the accuracy check needs at "
                        f"least {fixed_batch} samples, and --inputs holds {count}")
    for start in range(0, count, size):
        chunk = {name: array[start:start + size] for name, array in arrays.items()}
        if fixed_batch and len(next(iter(chunk.values()))) != fixed_batch:
            return
        yield chunk


def padded_batch(chunk: Mapping[str, numpy.ndarray], batch_size: int) -> dict[str, numpy.ndarray]:
    """``chunk`` (one array per input, batch first, at most ``batch_size`` samples) filled up
    to exactly ``batch_size``, for a runtime that can only run the shape it was built or
    captured at; the caller keeps the first ``len(chunk)`` rows of the output.

    The filling repeats the last sample rather than adding zeros: it is a valid input
    whatever the model takes (token ids in range, a mask with something unmasked).
    """
    import numpy as np  # noqa: PLC0415

    padded = {}
    for name, array in chunk.items():
        missing = batch_size - len(array)
        if missing < 0:
            raise ValueError(f"input {name!r} holds {len(array)} samples, more than the batch of "
                             f"{batch_size}")
        padded[name] = np.concatenate([array, np.repeat(array[-1:], missing, axis=0)]) if missing else array
    return padded
