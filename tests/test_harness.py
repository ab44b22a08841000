"""The shared harness with scripted sessions: timing, statistics, ladder, accuracy, search."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from autotune.backend_api import RunConfig
from autotune.measure.accuracy import compare
from autotune.measure.batch_search import Trial, search_largest_batch
from autotune.measure.measurement import Outcome
from autotune.measure.measurer import Measurer
from autotune.measure.protocol import Timing, percentile, time_session
from autotune.model import oom_ladder as ladder
from autotune.model.stats import reference_models
from autotune.model_inputs import from_shape, parse_input_spec
from autotune.sdk.testing import FakeRunner, FakeSession


def test_warm_up_is_at_least_ten_iterations_then_until_settled():
    # Slow first iterations (compilation, caches), then steady: warm-up runs past them.
    times = [50.0, 40.0, 30.0] + [10.0] * 1000
    timing = time_session(FakeSession(step_ms=times), batch_size=4, budget_s=5)
    # After ten iterations the earlier window still holds the slow ones: it goes on
    # until the medians of the last two windows agree.
    assert timing.warmup_iterations > 10
    assert timing.p50_ms == 10.0 and not timing.unstable
    assert timing.throughput_samples_s == pytest.approx(400.0)


def test_an_unstable_measurement_is_flagged():
    times = [10.0, 30.0] * 1000
    timing = time_session(FakeSession(step_ms=times), batch_size=1, budget_s=1e-6)
    assert timing.cv > 0.1 and timing.unstable
    assert timing.summary()["unstable"] is True


def test_percentiles():
    values = tuple(float(v) for v in range(1, 101))
    timing = Timing(values, warmup_iterations=10, batch_size=2)
    assert (timing.p50_ms, timing.p90_ms, timing.p99_ms) == pytest.approx((50.5, 90.1, 99.01))
    assert percentile([3.0], 99) == 3.0


def test_accuracy_passes_identical_and_rejects_corrupted_outputs():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(16, 10)) * 5
    assert compare(reference, reference + 1e-4, 0.03).passed
    corrupted = compare(reference, reference + rng.normal(0, 20, reference.shape), 0.03)
    assert not corrupted.passed and "exceeds the 3% budget (S002-6)" in corrupted.reason
    assert not compare(reference, reference * np.nan, 0.03).passed


def test_near_ties_do_not_count_as_top1_disagreement():
    reference = np.array([[1.0, 1.0001, 0.0], [5.0, 0.0, 0.0]])
    candidate = np.array([[1.0002, 1.0, 0.0], [5.0, 0.0, 0.001]])  # sample 0 flips within noise
    report = compare(reference, candidate, 0.03)
    assert report.top1_agreement == 0.5 and report.loss == 0.0 and report.passed


def test_regression_outputs_use_relative_error():
    reference = np.ones((4, 1))
    assert compare(reference, reference * 1.02, 0.03).passed
    assert not compare(reference, reference * 1.05, 0.03).passed


def test_ladder_order_is_batch_then_resolution_then_precision():
    config = RunConfig(task="infer", precision="fp32", batch_size=4, resolution=320)
    rungs = [(r.precision, r.resolution, r.batch_size) for r in ladder.rungs(config, ("fp32", "fp16"))]
    assert rungs[:4] == [("fp32", 320, 4), ("fp32", 320, 2), ("fp32", 320, 1), ("fp32", 224, 4)]
    assert rungs[8] == ("fp32", 160, 1) and rungs[9] == ("fp16", 320, 4)
    assert len(rungs) == 2 * 3 * 3  # finite: it can never loop forever


def test_training_ladder_stops_at_half_precision():
    config = RunConfig(task="train", precision="fp16", batch_size=1, resolution=None)
    assert [r.precision for r in ladder.rungs(config, ("fp32", "fp16", "int8", "int4"))] == ["fp16"]


def scripted_runner(capacity, unsupported=(), corrupt=()):
    """Runs out of memory above ``capacity`` samples, cannot run ``unsupported`` precisions,
    gives noisy outputs in ``corrupt`` ones; every step takes 5 ms."""
    return FakeRunner(step_ms=5.0, capacity=capacity, unsupported=unsupported, corrupt=corrupt)


def measurer(runner, precisions=("fp32", "bf16")):
    stats = dataclasses.replace(reference_models()["resnet18"], inputs=from_shape((3, 224, 224)))
    return Measurer("scripted", runner, model=None, stats=stats, device="cpu", precisions=precisions)


def test_oom_ladder_steps_down_and_says_what_fit():
    runner = scripted_runner(capacity=2 * 224 * 224)
    result = measurer(runner).measure(RunConfig("infer", "fp32", 8, 224), budget_s=0.01)
    assert result.ok and result.config.batch_size == 2
    assert result.steps == ("fp32 batch 8 224px: out of memory", "fp32 batch 4 224px: out of memory")
    assert "fit after 2 step(s) down: fp32 batch 2 224px" in result.reason
    assert all(session.closed for session in runner.sessions)


def test_oom_ladder_lowers_resolution_when_batch_1_does_not_fit():
    result = measurer(scripted_runner(capacity=160 * 160)).measure(RunConfig("infer", "fp32", 2, 224), 0.01)
    assert (result.config.batch_size, result.config.resolution) == (1, 160)


def test_nothing_fits_is_a_failed_measurement_not_a_crash():
    result = measurer(scripted_runner(capacity=0)).measure(RunConfig("infer", "fp32", 2, 224), 0.01)
    assert result.status == "failed" and "out of memory" in result.reason
    assert len(result.steps) == len(ladder.rungs(RunConfig("infer", "fp32", 2, 224), ("fp32", "bf16")))


def test_an_unsupported_precision_is_reported_not_replaced_by_a_lower_one():
    # A lower precision is the ladder's remedy for memory; an INT8 method that cannot be made
    # is not answered with an INT4 measurement.
    result = measurer(scripted_runner(capacity=10**9, unsupported=("fp32",))).measure(
        RunConfig("infer", "fp32", 4, 224), 0.01)
    assert result.status == "failed" and result.outcome.value == "unsupported" and len(result.steps) == 1


def test_after_running_out_of_memory_an_unsupported_lower_precision_is_skipped_once():
    result = measurer(scripted_runner(capacity=0, unsupported=("bf16",))).measure(
        RunConfig("infer", "fp32", 4, 224), 0.01)
    assert result.outcome.value == "out_of_memory"
    assert sum("not supported" in step for step in result.steps) == 1


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_corrupted_half_precision_is_rejected_against_the_fp32_reference(precision):
    runner = scripted_runner(capacity=10**9, corrupt=(precision,))
    result = measurer(runner, ("fp32", precision)).measure(RunConfig("infer", precision, 4, 224), 0.01)
    assert result.status == "rejected" and "S002-6" in result.reason
    clean = measurer(scripted_runner(capacity=10**9), ("fp32", precision)).measure(
        RunConfig("infer", precision, 4, 224), 0.01)
    assert clean.ok and clean.accuracy.passed


def _search(true_per_sample, predicted_batch, static=1_000, usable=100_000):
    trials = []

    def trial(batch):
        trials.append(batch)
        peak = static + batch * true_per_sample
        return Trial(False) if peak > usable else Trial(True, peak)

    result = search_largest_batch(trial, predicted_batch, static, usable, lambda b: static + b * 100)
    return result, trials


def test_batch_search_confirms_a_right_prediction_in_two_trials():
    result, trials = _search(true_per_sample=100, predicted_batch=900)
    assert result.trial_count <= 2 and result.batch_size >= 0.95 * 940


def test_batch_search_bisects_only_when_the_prediction_was_wrong():
    result, trials = _search(true_per_sample=400, predicted_batch=900)  # prediction 4x optimistic
    true_largest = (100_000 * 0.95 - 1_000) // 400
    assert trials[0] == 900 and result.batch_size == true_largest
    assert result.trial_count <= 12


def test_user_inputs_from_npy_and_pt(tmp_path):
    from autotune.errors import UserError
    from autotune.measure.accuracy_batch import load_inputs

    batch = np.random.default_rng(1).standard_normal((3, 3, 4, 4)).astype("float32")
    np.save(tmp_path / "batch.npy", batch)
    image = from_shape((3, 4, 4))
    assert np.array_equal(load_inputs(tmp_path / "batch.npy", image, 8)["input"], batch)
    with pytest.raises(UserError, match="hold shape"):
        load_inputs(tmp_path / "batch.npy", from_shape((3, 8, 8)), 8)
    (tmp_path / "batch.txt").write_text("1 2 3")
    with pytest.raises(UserError, match=".npy or .pt"):
        load_inputs(tmp_path / "batch.txt", from_shape((3,)), 8)
    torch = pytest.importorskip("torch")
    torch.save(torch.from_numpy(batch), tmp_path / "batch.pt")
    assert np.array_equal(load_inputs(tmp_path / "batch.pt", image, 8)["input"], batch)
    synthetic = load_inputs(None, image, 8)["input"]
    assert synthetic.shape == (8, 3, 4, 4) and np.array_equal(synthetic, load_inputs(None, image, 8)["input"])


def test_token_ids_from_a_file_and_one_file_for_several_inputs_is_refused(tmp_path):
    from autotune.errors import UserError
    from autotune.measure.accuracy_batch import load_inputs

    ids = np.arange(12, dtype="int64").reshape(3, 4)
    np.save(tmp_path / "ids.npy", ids)
    tokens = parse_input_spec("input_ids:int64[S=4]:tokens<100")
    assert np.array_equal(load_inputs(tmp_path / "ids.npy", tokens, 8)["input_ids"], ids)
    with pytest.raises(UserError, match="takes integers"):
        np.save(tmp_path / "floats.npy", ids.astype("float32"))
        load_inputs(tmp_path / "floats.npy", tokens, 8)
    with pytest.raises(UserError, match="takes 2 inputs"):
        two = parse_input_spec("input_ids:int64[S=4]; attention_mask:int64[S=4]")
        load_inputs(tmp_path / "ids.npy", two, 8)


def test_a_runtime_without_a_peak_counter_gets_an_out_of_memory_search():
    # "Peak unknown" is not "out of memory": the batch doubles until a trial does not fit.
    capacity = 300

    def trial(batch):
        return Trial(True, None) if batch <= capacity else Trial(False)

    result = search_largest_batch(trial, 10, 1_000, 100_000, lambda b: 1_000 + b * 100)
    assert result.by_out_of_memory and result.batch_size == capacity
    assert result.trial_count <= 10


def test_the_memory_budget_holds_for_any_runner_without_an_allocator_limit():
    # The core enforces --memory-budget-gb on the memory model's prediction for every
    # runner whose device has no limit of its own (this fake never runs out here).
    stats = dataclasses.replace(reference_models()["resnet18"], inputs=from_shape((3, 224, 224)))
    runner = scripted_runner(capacity=10**9)
    measurer = Measurer("scripted", runner, model=None, stats=stats, device="cpu", precisions=("fp32",),
                        memory_budget_bytes=2.5e6, predict_peak=lambda c: 1e6 * c.batch_size)
    result = measurer.measure(RunConfig("infer", "fp32", 8, None), budget_s=0.01)
    assert result.ok and result.config.batch_size == 2
    assert [step.split(": ")[1] for step in result.steps] == ["out of memory"] * 2
    nothing = Measurer("scripted", runner, model=None, stats=stats, device="cpu", precisions=("fp32",),
                       memory_budget_bytes=1e5, predict_peak=lambda c: 1e6 * c.batch_size).measure(
        RunConfig("infer", "fp32", 8, None), budget_s=0.01)
    assert nothing.outcome is Outcome.OUT_OF_MEMORY and nothing.status == "failed"


def test_outcomes_are_typed():
    unsupported = measurer(scripted_runner(capacity=10**9, unsupported=("fp32", "bf16"))).measure(
        RunConfig("infer", "fp32", 4, 224), 0.01)
    assert unsupported.outcome is Outcome.UNSUPPORTED
    out_of_memory = measurer(scripted_runner(capacity=0)).measure(RunConfig("infer", "fp32", 2, 224), 0.01)
    assert out_of_memory.outcome is Outcome.OUT_OF_MEMORY
    assert out_of_memory.to_dict()["outcome"] == "out_of_memory"


def test_a_model_is_prepared_once_per_preparation_not_per_rung():
    runner = scripted_runner(capacity=2 * 224 * 224)
    result = measurer(runner).measure(RunConfig("infer", "fp32", 8, 224), budget_s=0.01)
    assert result.config.batch_size == 2 and len(runner.sessions) == 1  # batch 8 and 4 failed to open
    assert len(runner.prepared) == 1  # three rungs, one preparation


def test_the_ladder_is_the_memory_models_too():

    assert ladder.lower_precisions("fp32", "infer", ("fp32", "tf32", "bf16", "fp16", "int8")) == \
        ["fp32", "fp16", "int8"]
    assert ladder.lower_precisions("fp32", "infer", ("fp32", "bf16")) == ["fp32", "bf16"]
