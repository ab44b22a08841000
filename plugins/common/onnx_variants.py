"""The precision variants of an FP32 ONNX file that the ONNX Runtime backend measures.

Part of the onnxruntime plugin; imports onnx, onnxruntime, onnxconverter-common and numpy,
and is imported only when something is measured. Every variant is made by the tool its
runtime's documentation recommends, never by editing the graph by hand:

- ``fp32``: the file itself.
- ``fp16``: onnxconverter-common's ``convert_float_to_float16`` with ``keep_io_types``, the
  ops it is known to break (Resize's scales, its default block list) kept in FP32.
- ``int8``: ONNX Runtime's ``quant_pre_process``, then ``quantize_static`` with a
  calibration batch (``qdq``, ``qoperator``, ``qdq_s8``) or ``quantize_dynamic``
  (``dynamic``), see :data:`INT8_SETTINGS`.
- ``int4``: ONNX Runtime's ``MatMulNBitsQuantizer`` (MatMul and Gather weights only).

Each variant is cached with :func:`autotune.cache.cached_file` under ``onnx-variants/``,
keyed by the source file's sha256, the settings, the calibration batch's sha256 and the
libraries' versions. A library that fails on a model raises :class:`UnsupportedConfig`
with its message on one line: the runner reports that precision as not supported.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxconverter_common
import onnxruntime
from autotune_plugins.common import ort_messages
from onnx.external_data_helper import uses_external_data
from onnxconverter_common import float16
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_dynamic,
    quantize_static,
)

from autotune.sdk import AutotuneError, UserError, one_line
from autotune.sdk.files import cached_file, file_sha256
from autotune.sdk.running import ModelFile, UnsupportedConfig


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

#: Bumped when this module changes how a variant is made, so old cached files are not reused.
FORMAT = 1
CACHE_KIND = "onnx-variants"
PRECISIONS = ("fp32", "fp16", "int8", "int4")
INT8_METHODS = ("qdq", "qoperator", "qdq_s8", "dynamic")
INT4_METHODS = ("matmul_nbits",)
#: Where the variant will run: the CUDA ones calibrate on the GPU (CPU when it cannot load).
PROVIDER_HINTS = ("cpu", "cuda", "tensorrt")
#: A library's error is quoted up to about this many characters.
REASON_MAX_CHARS = 160
#: Calibration samples per run on a model whose batch is dynamic: one, because many exports
#: declare a dynamic batch yet reshape to the batch they were traced at.
CALIBRATION_CHUNK = 1

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


@dataclass(frozen=True)
class Variant:
    """One precision of a model as a file ONNX Runtime loads."""

    precision: str  # fp32 | fp16 | int8 | int4
    method: str  # "" for fp32/fp16; int8: one of INT8_METHODS; int4: matmul_nbits
    path: Path
    size_bytes: int
    fp32_size_bytes: int

    @property
    def label(self) -> str:
        return f"{self.precision} {self.method}" if self.method else self.precision

    @property
    def model_file(self) -> ModelFile:
        """Its size beside the FP32 file's, as every measurement reports it."""
        return ModelFile(self.size_bytes, self.fp32_size_bytes)


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
    return _op_mix(onnx.load(str(path), load_external_data=False))


def _op_mix(model: onnx.ModelProto) -> OpMix:
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


def make_variant(fp32_path: Path, precision: str, method: str = "",
                 calibration: Mapping[str, np.ndarray] | None = None,
                 providers_hint: str = "cpu") -> Variant:
    """The ``precision`` variant of the FP32 ONNX file at ``fp32_path``, made once and cached.

    :param precision: ``fp32`` (the file itself), ``fp16``, ``int8`` or ``int4``.
    :param method: ``""`` for fp32 and fp16; for int8 one of :data:`INT8_METHODS`: ``qdq``
        (QDQ, uint8 activations, int8 per-channel weights), ``qoperator`` (QOperator, the
        same types with ``reduce_range``), ``qdq_s8`` (QDQ, symmetric int8 activations and
        weights: TensorRT's form) or ``dynamic`` (``quantize_dynamic``, int8 weights,
        activations quantised at run time). Never pick ``dynamic`` by rule on a conv net:
        ONNX Runtime's dynamic ConvInteger was 4-5x slower than FP32 on a CPU
        (docs/runtimes.md) while it suits transformers' MatMuls; measurement decides. For
        int4 ``matmul_nbits`` (``""`` means it too).
    :param calibration: for the static int8 methods, input name -> array whose leading axis
        is the batch (a few dozen representative samples); fed a sample at a time.
    :param providers_hint: where the variant will run (``cpu``, ``cuda``, ``tensorrt``): the
        static int8 methods calibrate with the CUDA provider for the GPU ones.
    :raises UnsupportedConfig: the model cannot be made in this precision (INT4 on a conv
        net, weights in external data, or the converter failed: its message on one line).
    :raises UserError: the calibration batch does not fit the model's inputs.
    :raises ValueError: an unknown precision, method or hint, or static int8 without
        ``calibration`` (programming errors).
    """
    fp32_path = Path(fp32_path)
    method = _checked_method(precision, method, providers_hint)
    fp32_size = fp32_path.stat().st_size
    if precision == "fp32":
        return Variant("fp32", "", fp32_path, fp32_size, fp32_size)
    label = f"{precision} {method}".strip()
    model = onnx.load(str(fp32_path), load_external_data=False)
    if any(uses_external_data(tensor) for tensor in model.graph.initializer):
        raise UnsupportedConfig(f"{label}: {fp32_path.name} keeps its weights in external data files; "
                                "autotune makes variants of self-contained files only")
    settings, build = _recipe(fp32_path, model, precision, method, calibration, providers_hint)
    calibrated = "calibrate_method" in settings
    key = {"variants": FORMAT, "source": file_sha256(fp32_path), "precision": precision, "method": method,
           "settings": settings, "calibration": _arrays_sha256(calibration) if calibrated else None,
           "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__,
           "onnxconverter_common": onnxconverter_common.__version__}
    def build_and_check(target: Path) -> None:
        with _library_logging_quiet():
            build(target)
        _check_loads(target, label)

    try:
        path = cached_file(CACHE_KIND, key, ".onnx", build_and_check, note=f"{label} of {fp32_path.name}")
    except (AutotuneError, UnsupportedConfig):
        raise
    except Exception as error:  # noqa: BLE001 - any converter's failure is "not supported"
        reason = one_line(str(error), REASON_MAX_CHARS) or type(error).__name__
        raise UnsupportedConfig(f"{label}: {reason}") from error
    return Variant(precision, method, path, path.stat().st_size, fp32_size)


@contextlib.contextmanager
def _library_logging_quiet() -> Iterator[None]:
    """The quantiser logs warnings through the root logger ("Axis 1 is out-of-range for weight
    ...", a dump of each tensor it skips) and the FP16 converter warns once per weight it
    rounds ("the float32 number 1.58e-08 will be truncated to 1e-07"): what happened is in
    the variant's result and its accuracy check, and the user's terminal is not their log."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _check_loads(target: Path, label: str) -> None:
    """A converter can write a file ONNX Runtime refuses (the quantiser gives a bias shared by
    two nodes a uint8 type, for one): such a file is not cached, and the precision is
    reported as not supported for this model."""
    try:
        onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - ORT raises a dozen unrelated types
        # ORT's own words, without its error code and "Load model from <temporary> failed:".
        reason = one_line(ort_messages.ort_message(str(error)), REASON_MAX_CHARS)
        raise UnsupportedConfig(f"{label}: the converter wrote a model ONNX Runtime cannot load "
                                f"({reason})") from None


def _checked_method(precision: str, method: str, providers_hint: str) -> str:
    if providers_hint not in PROVIDER_HINTS:
        raise ValueError(f"providers_hint {providers_hint!r} is not one of {', '.join(PROVIDER_HINTS)}")
    if precision in ("fp32", "fp16"):
        allowed: tuple[str, ...] = ("",)
    elif precision == "int8":
        allowed = INT8_METHODS
    elif precision == "int4":
        method = method or INT4_METHODS[0]
        allowed = INT4_METHODS
    else:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if method not in allowed:
        raise ValueError(f"{precision} has no method {method!r}; use one of {allowed}")
    return method


def _recipe(fp32_path: Path, model: onnx.ModelProto, precision: str, method: str,
            calibration: Mapping[str, np.ndarray] | None, providers_hint: str):
    """The settings that go into the cache key and the function that builds the file."""
    if precision == "fp16":
        return FP16_SETTINGS, lambda target: _build_fp16(model, target)
    if precision == "int4":
        mix = _op_mix(model)
        if not mix.has_nbits_targets:
            raise UnsupportedConfig(
                "INT4 quantises MatMul and Gather weights only; this model is convolutional, with "
                f"{mix.conv} Conv and {mix.gemm} Gemm nodes (S000-3: INT4's larger accuracy loss buys "
                "about half INT8's memory, on the weights it reaches)")
        settings = {**INT4_SETTINGS, "op_types_to_quantize": _nbits_op_types(model, mix)}
        if not mix.matmul and "Gather" not in settings["op_types_to_quantize"]:
            raise UnsupportedConfig(
                f"int4 {method}: this model's only INT4 targets are embeddings (Gather), which ONNX "
                f"Runtime's quantiser stores in opset 21 models only; this one is opset {_onnx_opset(model)}")
        return settings, lambda target: _build_int4(model, settings, target)
    settings = dict(INT8_SETTINGS[method])
    if method == "dynamic":
        return settings, lambda target: _build_dynamic(fp32_path, settings, target)
    if calibration is None:
        raise ValueError(f"int8 {method} is static quantisation: it needs a calibration batch")
    chunk = _check_calibration(model, calibration)
    settings["calibration_providers"] = (["CPUExecutionProvider"] if providers_hint == "cpu"
                                         else ["CUDAExecutionProvider", "CPUExecutionProvider"])
    return settings, lambda target: _build_static(fp32_path, settings, calibration, chunk, target)


# --- FP16 ---------------------------------------------------------------------------------

def _build_fp16(model: onnx.ModelProto, target: Path) -> None:
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

def _nbits_op_types(model: onnx.ModelProto, mix: OpMix) -> list[str]:
    """MatMul always; Gather (embeddings) only where the model is at opset 21 already: to store
    int4 Gather weights the quantiser stamps opset 21 on the model without converting its
    ops, which breaks any whose signature changed (ReduceMean's axes became an input at 18)."""
    op_types = ["MatMul"]
    if mix.gather_weights and _onnx_opset(model) >= 21:
        op_types.append("Gather")
    return op_types


def _onnx_opset(model: onnx.ModelProto) -> int:
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)


def _build_int4(model: onnx.ModelProto, settings: dict[str, Any], target: Path) -> None:
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

def _build_dynamic(fp32_path: Path, settings: dict[str, Any], target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="autotune-variants-") as scratch:
        quantize_dynamic(_pre_processed(fp32_path, Path(scratch)), str(target),
                         weight_type=QuantType[settings["weight_type"]], per_channel=settings["per_channel"],
                         reduce_range=settings["reduce_range"])


def _build_static(fp32_path: Path, settings: dict[str, Any], calibration: Mapping[str, np.ndarray],
                  chunk: int, target: Path) -> None:
    # ONNX Runtime writes the augmented model it calibrates with, and a shape-inferred copy
    # beside its input, into temporary folders: the input is ours, never the user's folder.
    with tempfile.TemporaryDirectory(prefix="autotune-variants-") as scratch:
        quantize_static(
            _pre_processed(fp32_path, Path(scratch)), str(target), _CalibrationBatches(calibration, chunk),
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


class _CalibrationBatches(CalibrationDataReader):
    """The calibration arrays, ``chunk`` samples at a time, in order."""

    def __init__(self, arrays: Mapping[str, np.ndarray], chunk: int):
        self._batches = self._chunks({name: np.asarray(array) for name, array in arrays.items()}, chunk)

    @staticmethod
    def _chunks(arrays: dict[str, np.ndarray], chunk: int) -> Iterator[dict[str, np.ndarray]]:
        samples = len(next(iter(arrays.values())))
        for start in range(0, samples - chunk + 1, chunk):
            yield {name: array[start:start + chunk] for name, array in arrays.items()}

    # ONNX Runtime's base class annotates get_next as returning a dict, yet its own callers
    # (__next__, collect_data) stop at None: the end of the data, as this reader returns it.
    def get_next(self) -> dict[str, np.ndarray] | None:  # pyright: ignore[reportIncompatibleMethodOverride]
        return next(self._batches, None)


def _shape_text(dims: list[int | str]) -> str:
    return "[" + ", ".join(str(dim) for dim in dims) + "]"


def _check_calibration(model: onnx.ModelProto, calibration: Mapping[str, np.ndarray]) -> int:
    """Raise UserError unless ``calibration`` feeds every model input with its dtype and
    shape; return how many samples to feed per run (the model's fixed batch, else one)."""
    weights = {initializer.name for initializer in model.graph.initializer}
    inputs = [graph_input for graph_input in model.graph.input if graph_input.name not in weights]
    names = [graph_input.name for graph_input in inputs]
    unknown = sorted(set(calibration) - set(names))
    if unknown:
        raise UserError(f"the calibration batch has input {unknown[0]!r}, which the model does not take "
                        f"(its inputs: {', '.join(names)}); pass --inputs with the model's inputs")
    batches = set()
    chunk = CALIBRATION_CHUNK
    for graph_input in inputs:
        tensor_type = graph_input.type.tensor_type
        expected: list[int | str] = [dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0
                                     else (dim.dim_param or "N") for dim in tensor_type.shape.dim]
        expected_dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        fix = f"pass --inputs with a batch of shape {_shape_text(expected)} and dtype {expected_dtype}"
        if graph_input.name not in calibration:
            raise UserError(f"the calibration batch has no input {graph_input.name!r}; {fix}")
        array = np.asarray(calibration[graph_input.name])
        given = list(array.shape)
        declared = tensor_type.HasField("shape")
        fits = (not declared or (len(given) == len(expected)
                                 and all(isinstance(want, str) or want == got for want, got in
                                         zip(expected[1:], given[1:], strict=True))))
        if not fits or array.ndim == 0:
            raise UserError(f"calibration input {graph_input.name!r} has shape {_shape_text(given)}, "
                            f"the model expects {_shape_text(expected)}; {fix}")
        if array.dtype != expected_dtype:
            raise UserError(f"calibration input {graph_input.name!r} is {array.dtype}, the model expects "
                            f"{expected_dtype}; {fix}")
        if declared and expected and isinstance(expected[0], int):
            chunk = expected[0]  # a batch fixed by the export: feed exactly that many
        if given[0] < chunk:
            raise UserError(f"calibration input {graph_input.name!r} has {given[0]} sample(s), the model "
                            f"runs batches of {chunk}; {fix}")
        batches.add(given[0])
    if len(batches) > 1:
        raise UserError(f"the calibration inputs have different batch sizes ({sorted(batches)}); "
                        "pass --inputs with the same number of samples for every input")
    return chunk


# --- cache keys -----------------------------------------------------------------------------

def _arrays_sha256(arrays: Mapping[str, np.ndarray] | None) -> str | None:
    if arrays is None:
        return None
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
