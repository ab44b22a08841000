"""Accuracy against an FP32 reference on the same inputs (S002-6: under 3 % is slight)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from autotune.model_inputs import DETECTIONS_NOT_COMPARED, ModelInputs


@dataclass(frozen=True)
class AccuracyReport:
    max_abs_error: float
    max_rel_error: float  # max |candidate - reference| / max |reference|
    cosine_similarity: float
    top1_agreement: float | None  # classifiers: share of samples whose top-1 class matches
    loss: float  # 1 - top-1 agreement for classifiers, else relative L2 error
    budget: float
    passed: bool
    reason: str
    #: What ``loss`` measures: "top-1 disagreement" or "relative error".
    metric: str = "relative error"

    @property
    def summary(self) -> str:
        """``top-1 disagreement 0.0%``: the figure a results table shows."""
        return f"{self.metric} {self.loss:.1%}" if np.isfinite(self.loss) else self.metric

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def compare(reference: np.ndarray, candidate: np.ndarray, budget: float) -> AccuracyReport:
    """How far ``candidate`` is from ``reference``; passed when the loss is within budget."""
    reference = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    candidate = np.asarray(candidate, dtype=np.float64).reshape(len(candidate), -1)
    if reference.shape != candidate.shape:
        raise ValueError(f"outputs differ in shape: {reference.shape} vs {candidate.shape}")
    if not np.isfinite(candidate).all():
        return AccuracyReport(float("inf"), float("inf"), 0.0, None, float("inf"), budget, False,
                              "the output has NaN or infinite values", "non-finite output")
    difference = np.abs(candidate - reference)
    scale = float(np.abs(reference).max()) or 1.0
    norms = float(np.linalg.norm(reference) * np.linalg.norm(candidate))
    cosine = float((reference * candidate).sum() / norms) if norms else 1.0
    top1 = None
    loss = float(np.linalg.norm(candidate - reference) / (np.linalg.norm(reference) or 1.0))
    what = "relative error"
    if reference.shape[1] >= 2:  # class scores: compare the winning class per sample
        agree = reference.argmax(axis=1) == candidate.argmax(axis=1)
        top1 = float(agree.mean())
        # A sample whose two best reference scores are closer than the numerical error
        # can flip either way: its top-1 says nothing about the precision. (With random
        # weights and synthetic inputs, such near-ties are common.)
        ranked = np.sort(reference, axis=1)
        decisive = (ranked[:, -1] - ranked[:, -2]) > 2 * difference.max(axis=1)
        if decisive.any():
            loss, what = float(1 - agree[decisive].mean()), "top-1 disagreement"
    passed = loss <= budget
    reason = (f"{what} {loss:.1%} within the {budget:.0%} budget (S002-6)" if passed
              else f"{what} {loss:.1%} exceeds the {budget:.0%} budget (S002-6)")
    return AccuracyReport(float(difference.max()), float(difference.max() / scale), cosine, top1,
                          loss, budget, passed, reason, what)


def compared(precision: str, inputs: ModelInputs) -> bool:
    """Whether a run in ``precision`` is compared with the FP32 reference: FP32 is the
    reference, and a detector's lists of boxes do not line up across precisions."""
    return precision != "fp32" and not inputs.image_list


def unchecked(precision: str, inputs: ModelInputs) -> str:
    """What a run that is not compared says ("" for FP32, the reference itself)."""
    return DETECTIONS_NOT_COMPARED if precision != "fp32" and not compared(precision, inputs) else ""
