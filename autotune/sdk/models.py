"""The model a backend is handed: what ``--model`` named, what it takes and costs, synthetic
and user inputs for it, and the conversion hook that gets it in another format (an ONNX file
made by the PyTorch plugin, for a runtime that runs ONNX)."""

from autotune.measure.accuracy_batch import load_inputs
from autotune.model.convert import COMPARED_OUTPUT_KEY, ConversionRequest, convert_model
from autotune.model.source import ModelSource
from autotune.model.stats import ModelStats, ResolutionStats, family_from_flops, reference_models
from autotune.model.training_loop import loop_for_package
from autotune.model_inputs import (
    DETECTIONS_NOT_COMPARED,
    DTYPES,
    FLOAT_DTYPES,
    TIER_RESOLUTIONS,
    DetectionTargets,
    InputSpec,
    ModelInputs,
    batch_chunks,
    default_values,
    from_shape,
    padded_batch,
    synthetic_batch,
    tier_resolutions,
)

__all__ = ["load_inputs", "COMPARED_OUTPUT_KEY", "ConversionRequest", "convert_model", "ModelSource",
           "ModelStats", "ResolutionStats", "family_from_flops", "reference_models", "loop_for_package",
           "DETECTIONS_NOT_COMPARED", "DetectionTargets", "InputSpec", "ModelInputs", "batch_chunks",
           "default_values", "from_shape", "padded_batch", "synthetic_batch", "tier_resolutions", "DTYPES",
           "FLOAT_DTYPES", "TIER_RESOLUTIONS"]
