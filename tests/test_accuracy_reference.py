"""An output that couples the samples of a batch (CLIP's image-text logits are batch x batch)
is compared with an FP32 reference run in batches of the same size, not with the one run at
the accuracy check's own batch: verify once crashed on CLIP at batch 4 ("outputs differ in
shape: (8, 8) vs (8, 4)")."""

from __future__ import annotations

import dataclasses

import numpy as np

from autotune.backend_api import RunConfig
from autotune.measure.measurement import Outcome
from autotune.measure.measurer import Measurer
from autotune.model.stats import reference_models
from autotune.model_inputs import from_shape
from autotune.sdk.testing import FakeRunner, FakeSession


class BatchCoupledSession(FakeSession):
    """Outputs taken in batches of the session's size, each a batch x batch similarity matrix."""

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.batch_size = batch_size

    def outputs(self, inputs):
        samples = np.asarray(next(iter(inputs.values())), dtype=np.float64).reshape(-1, 48)
        chunks = [samples[start:start + self.batch_size] for start in range(0, len(samples), self.batch_size)]
        return np.concatenate([chunk @ chunk.T for chunk in chunks])


class BatchCoupledRunner(FakeRunner):
    def open(self, prepared, config: RunConfig, memory_budget_bytes=None):
        super().open(prepared, config, memory_budget_bytes)
        return BatchCoupledSession(config.batch_size)


def test_a_batch_coupled_output_is_compared_with_a_reference_in_batches_of_its_size():
    stats = dataclasses.replace(reference_models()["resnet18"], inputs=from_shape((3, 4, 4)))
    measurer = Measurer("coupled", BatchCoupledRunner(), model=None, stats=stats, device="cpu",
                        precisions=("fp32", "fp16"))
    half_at_4 = RunConfig(task="infer", precision="fp16", batch_size=4, resolution=4)
    measurement = measurer.measure(half_at_4, 0.05)
    assert measurement.outcome is Outcome.OK, measurement.reason
    assert measurement.accuracy is not None and measurement.accuracy.loss == 0.0
