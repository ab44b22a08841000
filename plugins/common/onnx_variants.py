"""The precision variants of an FP32 ONNX file that the ONNX-based backends measure.

Shared by the ONNX Runtime and TensorRT plugins; imports onnx, onnxruntime,
onnxconverter-common and numpy, and is imported only when something is measured. Every
variant is made by the tool its runtime's documentation recommends, never by editing the
graph by hand (:mod:`.variant_builders` holds the calls and the settings they are made with):

- ``fp32``: the file itself.
- ``fp16``: onnxconverter-common's ``convert_float_to_float16`` with ``keep_io_types``, the
  ops it is known to break (Resize's scales, its default block list) kept in FP32.
- ``int8``: ONNX Runtime's ``quant_pre_process``, then ``quantize_static`` with a
  calibration batch (``qdq``, ``qoperator``, ``qdq_s8``) or ``quantize_dynamic``
  (``dynamic``), see :data:`.variant_builders.INT8_SETTINGS`.
- ``int4``: ONNX Runtime's ``MatMulNBitsQuantizer`` (MatMul and Gather weights only).

Each variant is cached with :func:`autotune.cache.cached_file` under ``onnx-variants/``,
keyed by the source file's sha256, the settings, the calibration batch's sha256 and the
libraries' versions. A library that fails on a model raises :class:`UnsupportedConfig`
with its message on one line: the runner reports that precision as not supported.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxconverter_common
import onnxruntime
from autotune_plugins.common import ort_messages, variant_builders
from autotune_plugins.common.calibration_batch import arrays_sha256, check_calibration
from autotune_plugins.common.onnx_op_mix import graph_op_mix, onnx_opset
from autotune_plugins.common.variant_builders import FP16_SETTINGS, INT4_SETTINGS, INT8_SETTINGS
from onnx.external_data_helper import uses_external_data

from autotune.sdk import AutotuneError, one_line
from autotune.sdk.files import cached_file, file_sha256
from autotune.sdk.running import ModelFile, UnsupportedConfig

#: Bumped when how a variant is made changes (here or in variant_builders), so old cached
#: files are not reused.
FORMAT = 1
CACHE_KIND = "onnx-variants"
PRECISIONS = ("fp32", "fp16", "int8", "int4")
INT8_METHODS = ("qdq", "qoperator", "qdq_s8", "dynamic")
INT4_METHODS = ("matmul_nbits",)
#: Where the variant will run: the CUDA ones calibrate on the GPU (CPU when it cannot load).
PROVIDER_HINTS = ("cpu", "cuda", "tensorrt")
#: A library's error is quoted up to about this many characters.
REASON_MAX_CHARS = 160


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
           "settings": settings, "calibration": arrays_sha256(calibration) if calibrated else None,
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
        return FP16_SETTINGS, lambda target: variant_builders.build_fp16(model, target)
    if precision == "int4":
        mix = graph_op_mix(model)
        if not mix.has_nbits_targets:
            raise UnsupportedConfig(
                "INT4 quantises MatMul and Gather weights only; this model is convolutional, with "
                f"{mix.conv} Conv and {mix.gemm} Gemm nodes (S000-3: INT4's larger accuracy loss buys "
                "about half INT8's memory, on the weights it reaches)")
        settings = {**INT4_SETTINGS, "op_types_to_quantize": variant_builders.nbits_op_types(model, mix)}
        if not mix.matmul and "Gather" not in settings["op_types_to_quantize"]:
            raise UnsupportedConfig(
                f"int4 {method}: this model's only INT4 targets are embeddings (Gather), which ONNX "
                f"Runtime's quantiser stores in opset 21 models only; this one is opset {onnx_opset(model)}")
        return settings, lambda target: variant_builders.build_int4(model, settings, target)
    settings = dict(INT8_SETTINGS[method])
    if method == "dynamic":
        return settings, lambda target: variant_builders.build_dynamic(fp32_path, settings, target)
    if calibration is None:
        raise ValueError(f"int8 {method} is static quantisation: it needs a calibration batch")
    chunk = check_calibration(model, calibration)
    settings["calibration_providers"] = (["CPUExecutionProvider"] if providers_hint == "cpu"
                                         else ["CUDAExecutionProvider", "CPUExecutionProvider"])
    return settings, lambda target: variant_builders.build_static(fp32_path, settings, calibration, chunk,
                                                                  target)
