"""The calibration batch of a static INT8 variant: checked against the model's inputs (names,
dtypes, shapes, one batch size), fed to ONNX Runtime's quantiser a chunk of samples at a
time, and hashed for the variant's cache key.

Imports onnx, onnxruntime's quantisation package and numpy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader

from autotune.sdk import UserError

#: Calibration samples per run on a model whose batch is dynamic: one, because many exports
#: declare a dynamic batch yet reshape to the batch they were traced at.
CALIBRATION_CHUNK = 1


class CalibrationBatches(CalibrationDataReader):
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


def check_calibration(model: onnx.ModelProto, calibration: Mapping[str, np.ndarray]) -> int:
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


def arrays_sha256(arrays: Mapping[str, np.ndarray] | None) -> str | None:
    """One digest of every array's name, dtype, shape and bytes; None for no arrays."""
    if arrays is None:
        return None
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
