"""The ONNX file a compiled runtime runs: checked once, the output to compare, the INT8
calibration batch. Shared by the ONNX Runtime and TensorRT runners, which both start from
the user's ``.onnx`` file or the one the conversion hook exported."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import onnx

from autotune.sdk import UserError, one_line
from autotune.sdk.models import COMPARED_OUTPUT_KEY, load_inputs, synthetic_batch
from autotune.sdk.running import Preparation, protocol

#: The INT8 calibration batch's seed: not the accuracy batch's (seed 0), so the check is
#: made on inputs the quantiser did not calibrate on.
CALIBRATION_SEED = 7


@functools.cache
def _validated(path: Path, modified_ns: int, size: int) -> None:
    """The ONNX checker and shape inference on the model file, once per file version."""
    try:
        onnx.checker.check_model(str(path))
        if size > 2**31:  # too large to load whole: inferred from the path, the result discarded
            onnx.shape_inference.infer_shapes_path(str(path), os.devnull)
        else:
            onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    except Exception as error:  # noqa: BLE001 - the checker and inference raise several types
        raise UserError(f"{path} is not a valid ONNX model ({one_line(str(error), 160)}); re-export it "
                        "and check it with onnx.checker.check_model") from None


def validate(path: Path) -> None:
    """A user's own file, checked before a runtime sees it (a converted file was checked by
    the converter that wrote it). :raises UserError: it is not a valid model."""
    stat = path.stat()
    _validated(path.resolve(), stat.st_mtime_ns, stat.st_size)


def recorded_output(model_path: Path) -> str | None:
    """The output the exporter recorded for the accuracy check (``logits`` of a
    ``ModelOutput``, say); None for a file from elsewhere."""
    model = onnx.load(str(model_path), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}.get(COMPARED_OUTPUT_KEY)


def calibration_batch(preparation: Preparation) -> dict[str, np.ndarray] | None:
    """The INT8 calibration batch: the user's ``--inputs``, else seeded synthetic samples;
    None for any other precision."""
    if preparation.precision != "int8":
        return None
    inputs = preparation.inputs
    if preparation.inputs_path is not None:
        return load_inputs(preparation.inputs_path, inputs, protocol()["accuracy_samples"])
    return synthetic_batch(inputs, protocol()["accuracy_samples"], seed=CALIBRATION_SEED)
