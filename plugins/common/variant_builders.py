"""How each precision variant of an FP32 ONNX file is built: the settings each library is
called with (they go into the variant's cache key) and the calls that write the file.

- FP16: onnxconverter-common's ``convert_float_to_float16``, :data:`FP16_SETTINGS`.
- INT8: ONNX Runtime's ``quant_pre_process``, then ``quantize_static`` with a calibration
  batch or ``quantize_dynamic``, :data:`INT8_SETTINGS` by method.
- INT4: ONNX Runtime's ``MatMulNBitsQuantizer``, :data:`INT4_SETTINGS`.

:mod:`.onnx_variants` picks the builder, caches its file and checks that ONNX Runtime loads
it. Imports onnx, onnxruntime, onnxconverter-common and numpy.
"""

from __future__ import annotations

import inspect
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
from autotune_plugins.common.calibration_batch import CalibrationBatches
from autotune_plugins.common.onnx_op_mix import OpMix, onnx_opset
from onnxconverter_common import float16
from onnxruntime.quantization import (
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_dynamic,
    quantize_static,
)

from autotune.sdk.running import UnsupportedConfig


def _import_nbits_quantizer() -> type:
    """``MatMulNBitsQuantizer``, imported without the side effect of its module: it calls
    ``logging.basicConfig(level=INFO)`` at import (onnxruntime 1.31), which would print every
    library's INFO lines to stderr for the rest of the process."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer  # noqa: PLC0415
    finally:
        for handler in [handler for handler in root.handlers if handler not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
    return MatMulNBitsQuantizer


MatMulNBitsQuantizer = _import_nbits_quantizer()

#: Ops kept in FP32 by the FP16 converter: its own default list (which has Resize since 1.14)
#: plus Resize named here, since its FP16 ``scales`` break the model (onnxconverter-common
#: #306, #272, #207) and an older converter's list may lack it.
FP16_OP_BLOCK_LIST = tuple(sorted({*float16.DEFAULT_OP_BLOCK_LIST, "Resize"}))
FP16_SETTINGS: dict[str, Any] = {"keep_io_types": True, "op_block_list": list(FP16_OP_BLOCK_LIST)}

_STATIC = {"calibrate_method": "MinMax", "pre_process": True}
#: What each INT8 method passes to ONNX Runtime's quantiser (enum members by name).
INT8_SETTINGS: dict[str, dict[str, Any]] = {
    # ONNX Runtime's recommended form for CNNs on CPU and CUDA.
    "qdq": {**_STATIC, "quant_format": "QDQ", "activation_type": "QUInt8", "weight_type": "QInt8",
            "per_channel": True, "reduce_range": False, "extra_options": {}},
    # The fastest of 16 variants on an AVX2 CPU without VNNI (docs/runtimes.md); 7-bit
    # weights (reduce_range) are what ONNX Runtime suggests for non-VNNI CPUs, whose u8*s8
    # kernels saturate.
    "qoperator": {**_STATIC, "quant_format": "QOperator", "activation_type": "QUInt8",
                  "weight_type": "QInt8", "per_channel": True, "reduce_range": True, "extra_options": {}},
    # The form TensorRT takes: signed, symmetric activations and weights.
    "qdq_s8": {**_STATIC, "quant_format": "QDQ", "activation_type": "QInt8", "weight_type": "QInt8",
               "per_channel": True, "reduce_range": False,
               "extra_options": {"ActivationSymmetric": True, "WeightSymmetric": True}},
    # What ONNX Runtime documents for transformers' MatMuls; its default op list (Conv,
    # MatMul, Attention, LSTM, Gather, ...) is kept.
    "dynamic": {"pre_process": True, "weight_type": "QInt8", "per_channel": False, "reduce_range": False},
}
INT4_SETTINGS: dict[str, Any] = {"bits": 4, "block_size": 128, "is_symmetric": True, "accuracy_level": None,
                                 "quant_format": "QOperator"}


# --- FP16 ---------------------------------------------------------------------------------

def build_fp16(model: onnx.ModelProto, target: Path) -> None:
    """``model`` in FP16 at ``target``, its inputs, outputs and :data:`FP16_OP_BLOCK_LIST` ops
    kept in FP32."""
    converted = float16.convert_float_to_float16(model, keep_io_types=FP16_SETTINGS["keep_io_types"],
                                                 op_block_list=list(FP16_OP_BLOCK_LIST))
    try:
        onnx.checker.check_model(converted)
    except onnx.checker.ValidationError as error:
        if "topologically sorted" in str(error):
            # A known converter bug with keep_io_types: sorting the graph ourselves would be
            # the hand-written surgery this module avoids.
            raise UnsupportedConfig("fp16: onnxconverter-common left the graph not topologically sorted "
                                    "(a known keep_io_types bug, onnxconverter-common #208)") from None
        raise
    onnx.save(converted, str(target))


# --- INT4 ---------------------------------------------------------------------------------

def nbits_op_types(model: onnx.ModelProto, mix: OpMix) -> list[str]:
    """MatMul always; Gather (embeddings) only where the model is at opset 21 already: to store
    int4 Gather weights the quantiser stamps opset 21 on the model without converting its
    ops, which breaks any whose signature changed (ReduceMean's axes became an input at 18)."""
    op_types = ["MatMul"]
    if mix.gather_weights and onnx_opset(model) >= 21:
        op_types.append("Gather")
    return op_types


def build_int4(model: onnx.ModelProto, settings: dict[str, Any], target: Path) -> None:
    """``model`` with its ``settings["op_types_to_quantize"]`` weights in 4 bits at ``target``
    (:data:`INT4_SETTINGS` plus that list)."""
    # The quantiser edits ``model`` in place: it is this call's own copy.
    # ONNX Runtime's quantizer took `bits` after 1.23 (the last release for Python 3.10), whose
    # quantizer writes 4-bit weights only.
    takes_bits = "bits" in inspect.signature(MatMulNBitsQuantizer).parameters
    if not takes_bits and settings["bits"] != 4:
        raise UnsupportedConfig(f"int4 matmul_nbits: ONNX Runtime {onnxruntime.__version__} quantises "
                                f"weights to 4 bits only, not {settings['bits']}; upgrade onnxruntime")
    quantizer = MatMulNBitsQuantizer(
        model, **({"bits": settings["bits"]} if takes_bits else {}), block_size=settings["block_size"],
        is_symmetric=settings["is_symmetric"], accuracy_level=settings["accuracy_level"],
        quant_format=QuantFormat[settings["quant_format"]],
        op_types_to_quantize=tuple(settings["op_types_to_quantize"]))
    quantizer.process()
    quantizer.model.save_model_to_file(str(target), use_external_data_format=False)


# --- INT8 ---------------------------------------------------------------------------------

def build_dynamic(fp32_path: Path, settings: dict[str, Any], target: Path) -> None:
    """Dynamic INT8 at ``target``: int8 weights, activations quantised at run time
    (``INT8_SETTINGS["dynamic"]``)."""
    with tempfile.TemporaryDirectory(prefix="autotune-variants-") as scratch:
        quantize_dynamic(_pre_processed(fp32_path, Path(scratch)), str(target),
                         weight_type=QuantType[settings["weight_type"]], per_channel=settings["per_channel"],
                         reduce_range=settings["reduce_range"])


def build_static(fp32_path: Path, settings: dict[str, Any], calibration: Mapping[str, np.ndarray],
                 chunk: int, target: Path) -> None:
    """Static INT8 at ``target``: ``quantize_static`` calibrated on ``calibration``, ``chunk``
    samples a run, with an :data:`INT8_SETTINGS` entry plus ``calibration_providers``."""
    # ONNX Runtime writes the augmented model it calibrates with, and a shape-inferred copy
    # beside its input, into temporary folders: the input is ours, never the user's folder.
    with tempfile.TemporaryDirectory(prefix="autotune-variants-") as scratch:
        quantize_static(
            _pre_processed(fp32_path, Path(scratch)), str(target), CalibrationBatches(calibration, chunk),
            quant_format=QuantFormat[settings["quant_format"]], per_channel=settings["per_channel"],
            reduce_range=settings["reduce_range"], activation_type=QuantType[settings["activation_type"]],
            weight_type=QuantType[settings["weight_type"]],
            calibrate_method=CalibrationMethod[settings["calibrate_method"]],
            calibration_providers=_available(settings["calibration_providers"]),
            extra_options=dict(settings["extra_options"]))


def _available(providers: list[str]) -> list[str]:
    """The providers this onnxruntime build has (the CPU-only wheel has no CUDA provider); one
    that is built in but cannot load (no CUDA libraries) falls back to the CPU by itself."""
    built_in = set(onnxruntime.get_available_providers())
    return [provider for provider in providers if provider in built_in] or ["CPUExecutionProvider"]


def _pre_processed(fp32_path: Path, scratch: Path) -> str | onnx.ModelProto:
    """``quant_pre_process``'s output (shape inference, Conv+BatchNorm folding) in ``scratch``.

    ONNX Runtime's quantisation guide calls pre-processing optional (it improves what can be
    quantised), and its symbolic shape inference fails on some graphs: then the model is
    quantised as it is rather than not at all. The fallback is the loaded model, not its path,
    so the quantiser's shape-inferred copy goes to its own temporary folder.
    """
    prepared = scratch / "pre_processed.onnx"
    try:
        quant_pre_process(str(fp32_path), str(prepared))
    except Exception:  # noqa: BLE001 - optional step; quantize_* reports what really fails
        return onnx.load(str(fp32_path))
    return str(prepared)
