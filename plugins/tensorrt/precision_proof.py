"""Proving what a built engine runs, from the engine inspector's JSON: how many compute
layers run in each precision (TensorRT 10's layout and 11's), whether that includes the
precision asked, and, for layers fused out of sight, whether the speed-up over the FP32
engine shows it.

Asking TensorRT 11 for FP16 the old way can yield an FP32 engine with a warning only (rf-detr
#1453), and a flag on 10 only *allows* a precision. So no engine is trusted on its request:
:func:`layer_precisions` reads what the built engine runs from the engine inspector, and
:func:`prove_precision` refuses a measurement of an engine that does not run the precision
(docs/runtimes.md, with the sources).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autotune.sdk import one_line
from autotune.sdk.running import PrecisionEvidence, UnsupportedConfig

#: The engine inspector's words for a tensor's type, lower case, in the order they are tried
#: ("Thirty-two wide channel vectorized row major Int8 format", "Row major linear FP16
#: format", "Half", "Float"): the first that occurs in the text names the precision.
DATATYPE_WORDS = (("int8", "int8"), ("fp8", "fp8"), ("float8", "fp8"), ("bf16", "bf16"), ("bfloat16", "bf16"),
                  ("fp16", "fp16"), ("float16", "fp16"), ("half", "fp16"),
                  ("fp32", "fp32"), ("float", "fp32"), ("int32", "int32"), ("int64", "int64"),
                  ("bool", "bool"), ("uint8", "uint8"))
#: Where a layer tensor's type is in the inspector's JSON. TensorRT 10 writes one key, the
#: layout and the type in one phrase ("Format/Datatype": "Row major linear FP16 format");
#: TensorRT 11 splits it in two (NVIDIA's 10.x to 11.x IEngineInspector migration page),
#: "Format" for the layout and "Datatype" for the type, as NVIDIA's own 11.1 tooling reads
#: them (docs/runtimes.md). The type's key is matched without case: the same page spells
#: the I/O tensors' key "DataType".
COMBINED_KEY = "Format/Datatype"
SPLIT_TYPE_KEY = "datatype"
SPLIT_FORMAT_KEY = "Format"
#: Layers that move or reformat data rather than compute: they run in whatever type their
#: neighbours need, and prove nothing about the engine's precision.
DATA_MOVEMENT_LAYERS = frozenset({"Reformat", "NoOp", "Shuffle", "Constant", "Identity", "Slice",
                                  "Concatenation"})
#: Layers TensorRT fused into one Myelin-compiled kernel graph: a transformer block becomes
#: one layer whose visible inputs and outputs are the block's (FP32 where the model's are),
#: whatever it computes in (NVIDIA/TensorRT #3889). Known by their type, "Myelin" or "kgen"
#: (trt-engine-explorer's layer colours, 10.9), or by the "{ForeignNode[...]}" name TensorRT
#: gives a layer it hands to another compiler (docs/runtimes.md).
FUSED_LAYER_TYPES = frozenset({"myelin", "kgen"})
FUSED_LAYER_NAME = "ForeignNode"
#: The least speed-up over the FP32 engine that shows a fused engine runs a lower precision
#: where its layers cannot: timings vary by a few percent, an FP32 engine mislabelled runs at
#: 1.0x, and half-precision tensor cores are well above this (first GPU to confirm).
MIN_FUSED_SPEEDUP = 1.2


@dataclass(frozen=True)
class LayerPrecisions:
    """How many compute layers of an engine run in each precision, as its inspector says."""

    counts: Mapping[str, int]
    #: The inspector gave no types (an engine built without detailed profiling, or dynamic
    #: shapes with no execution context): nothing is proven either way.
    unknown: bool = False
    #: Fused layers (see FUSED_LAYER_TYPES): counted apart, their visible types prove nothing.
    fused: int = 0

    def describe(self) -> str:
        """``TensorRT engine: 48 layers fp16, 3 fp32`` (``, 1 fused`` where there are)."""
        if self.unknown:
            return "TensorRT engine: layer precisions unknown"
        parts = [f"{count} {precision}" for precision, count in
                 sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))]
        if self.fused:
            parts.append(f"{self.fused} fused")
        total = sum(self.counts.values()) + self.fused
        if not parts:
            return "TensorRT engine: no compute layers"
        return f"TensorRT engine: {total} layers " + ", ".join(parts)


def _datatype(text: str) -> str | None:
    lowered = text.lower()
    for word, precision in DATATYPE_WORDS:
        if word in lowered:
            return precision
    return None


def tensor_type_text(tensor: Mapping[str, Any]) -> str:
    """What one layer tensor's record says of its type, in either version's layout: 11's
    own type key where there is one, else 10's combined phrase, else 11's layout phrase
    (which names the type too, "Row major linear FP16 format"); "" when it says nothing."""
    split = next((str(value) for key, value in tensor.items() if key.lower() == SPLIT_TYPE_KEY), "")
    if split and not split.startswith("N/A"):
        return split
    return str(tensor.get(COMBINED_KEY) or tensor.get(SPLIT_FORMAT_KEY) or split)


def layer_precisions(engine_information: str) -> LayerPrecisions:
    """Read the inspector's JSON (``get_engine_information(LayerInformationFormat.JSON)``),
    TensorRT 10's layout or 11's (see :func:`tensor_type_text`).

    Each compute layer counts once, in the type its first output runs in (inputs can be a
    reformat's FP32 on the way in); data-movement layers are left out.
    """
    layers = json.loads(engine_information).get("Layers", [])
    counts: Counter[str] = Counter()
    fused = 0
    for layer in layers:
        if not isinstance(layer, dict):
            return LayerPrecisions({}, unknown=True)  # LAYER_NAMES_ONLY: names, no types
        if layer.get("LayerType") in DATA_MOVEMENT_LAYERS:
            continue
        if (str(layer.get("LayerType", "")).lower() in FUSED_LAYER_TYPES
                or FUSED_LAYER_NAME in str(layer.get("Name", ""))):
            fused += 1
            continue
        tensors = [*layer.get("Outputs", ()), *layer.get("Inputs", ())]
        formats = [tensor_type_text(tensor) for tensor in tensors if isinstance(tensor, dict)]
        if any(text.startswith("N/A") for text in formats):
            return LayerPrecisions({}, unknown=True)
        precision = next((p for p in map(_datatype, formats) if p is not None), None)
        if precision is not None:
            counts[precision] += 1
    return LayerPrecisions(dict(counts), fused=fused)


#: The layer types that show an engine runs a precision: a float precision in its layers'
#: own types; TF32 and FP32 engines both show FP32 layers (TF32 is a math mode of FP32).
SHOWN_AS = {"fp32": "fp32", "tf32": "fp32", "fp16": "fp16", "bf16": "bf16", "int8": "int8", "fp8": "fp8"}


def prove_precision(asked: str, layers: LayerPrecisions, warnings: Sequence[str] = ()) -> PrecisionEvidence:
    """Refuse an engine that does not run ``asked``: an FP16 or INT8 figure is reported only
    for an engine with FP16 or INT8 layers, or with fused layers that hide their precision
    (then FUSED: :func:`prove_speedup` must hold too, and the accuracy check runs as ever).

    :raises UnsupportedConfig: the engine has no layer in the precision asked and none
        fused (TensorRT's warnings, if any, say why), or its inspector told nothing.
    """
    if layers.unknown:
        raise UnsupportedConfig(f"{asked}: TensorRT's engine inspector gave no layer types, so the "
                                "engine's precision cannot be proven; not reported")
    wanted = SHOWN_AS[asked]
    if layers.counts.get(wanted, 0) > 0:
        return PrecisionEvidence.LAYERS
    if layers.fused:
        return PrecisionEvidence.FUSED
    said = f" (TensorRT: {one_line(warnings[-1], 120)})" if warnings else ""
    built = ", ".join(sorted(layers.counts)) or "no compute layers"
    raise UnsupportedConfig(f"{asked}: TensorRT built an engine with {built} layers and none in {wanted}"
                            f"{said}; not reported as {asked}")


def needs_speedup(asked: str, evidence: PrecisionEvidence) -> bool:
    """Whether ``asked`` on an engine proven by ``evidence`` must be shown faster than FP32:
    a fused engine's lower precision shows only in its speed (FP32 and TF32 are the baseline)."""
    return evidence is PrecisionEvidence.FUSED and SHOWN_AS[asked] != "fp32"


def prove_speedup(asked: str, speedup_over_fp32: float) -> None:
    """Refuse a fused engine no faster than the FP32 one: nothing then shows it runs ``asked``.

    :raises UnsupportedConfig: the speed-up is under MIN_FUSED_SPEEDUP.
    """
    if speedup_over_fp32 < MIN_FUSED_SPEEDUP:
        raise UnsupportedConfig(f"{asked}: TensorRT fused the engine's layers, so their precision is not "
                                f"visible, and it ran at {speedup_over_fp32:.2f}x the FP32 engine's speed "
                                f"(under {MIN_FUSED_SPEEDUP:.1f}x); not reported as {asked}")
