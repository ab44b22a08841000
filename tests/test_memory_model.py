"""The memory model: batch from free memory, the knee, the latency budget, step-downs."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from autotune.errors import UserError
from autotune.hardware.gpu_database import resolve
from autotune.model import memory as memory_model
from autotune.model.stats import reference_models
from autotune.recommendation.engine import ModelRequest, recommend
from tests.conftest import replayed, simulated

GIB = 2**30
INFER = {"task": "infer", "objective": "throughput", "tier": "balanced"}


def request(stats_name="resnet50", gpu="T4", free_gb=None, **changes):
    spec = resolve(gpu)
    free = (free_gb if free_gb is not None else spec.vram_gb) * GIB
    base = memory_model.PlanRequest(
        task="infer", objective="throughput", precision="fp16", resolution=224,
        usable_bytes=memory_model.usable_bytes(free, 0.9), gpu_name=spec.name,
        gpu_precisions=spec.precisions, spec=spec)
    return reference_models()[stats_name], dataclasses.replace(base, **changes)


@settings(max_examples=200, deadline=None)
@given(model=st.sampled_from(sorted(reference_models())), task=st.sampled_from(["infer", "train"]),
       free=st.floats(min_value=0.5, max_value=80), extra=st.floats(min_value=0, max_value=80),
       resolution=st.sampled_from([160, 224, 320]))
def test_memory_batch_is_monotone_in_free_memory(model, task, free, extra, resolution):
    stats = reference_models()[model]

    def largest(free_gb):
        usable = memory_model.usable_bytes(free_gb * GIB, 0.9)
        return memory_model.max_batch(stats, usable, resolution, "fp16", task, "adam")

    assert largest(free + extra) >= largest(free)


@settings(max_examples=100, deadline=None)
@given(model=st.sampled_from(["resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0"]),
       task=st.sampled_from(["infer", "train"]), free=st.floats(min_value=1, max_value=80))
def test_memory_batch_falls_as_resolution_rises(model, task, free):
    stats = reference_models()[model]
    usable = memory_model.usable_bytes(free * GIB, 0.9)
    batches = [memory_model.max_batch(stats, usable, r, "fp32", task, "adam") for r in (160, 224, 320)]
    assert batches == sorted(batches, reverse=True)


def test_the_plan_fits_and_its_reason_shows_the_numbers():
    stats, plan_request = request(objective="throughput")
    plan = memory_model.plan(stats, plan_request)
    assert plan.predicted_bytes <= plan.usable_bytes
    decision = plan.decisions(plan_request)["batch_size"]
    assert decision.reason.startswith("memory model: ")
    assert f"at batch {plan.batch_size} of" in decision.reason and "GB usable on T4" in decision.reason


def test_largest_batch_when_memory_binds():
    stats, plan_request = request(free_gb=3.0, precision="fp32", task="train", spec=None)
    plan = memory_model.plan(stats, plan_request)
    assert plan.bound == "memory"
    def peak(batch):  # in training: the reserve at the loop's peak, against the room it may fill
        return memory_model.fit_bytes(stats, batch, 224, "fp32", "train")

    room = memory_model.room_bytes(stats, plan.usable_bytes, "train")
    assert peak(plan.batch_size) <= room < peak(plan.batch_size + 1)


def test_throughput_knee_reproduces_the_anchor():
    # S001-4: ResNet-18, FP32, 224 px on a T4 flattened at batch 16.
    stats, plan_request = request("resnet18", precision="fp32")
    plan = memory_model.plan(stats, plan_request)
    assert (plan.bound, plan.knee, plan.batch_size) == ("knee", 16, 16)


def test_latency_budget_caps_the_batch():
    stats, plan_request = request("resnet18", precision="fp32", objective="latency",
                                  latency_budget_ms=30)
    plan = memory_model.plan(stats, plan_request)
    # S001-3 measured 26.8 ms at batch 16 and 51.4 ms at 32 on a T4.
    assert plan.bound == "latency" and 12 <= plan.batch_size <= 20
    assert plan.latency_ms <= 30


def test_fp16_allows_a_larger_batch_and_says_how_much():
    stats, plan_request = request(free_gb=2.0, precision="fp16", task="train")
    plan = memory_model.plan(stats, plan_request)
    assert plan.fp32_memory_batch < plan.memory_batch
    reason = plan.decisions(plan_request)["batch_size"].reason
    assert f"up to batch {plan.memory_batch} fits against {plan.fp32_memory_batch} in FP32" in reason


def test_resolution_steps_down_before_precision():
    # S000-7: smaller batch (fixed by the user here), then lower resolution, then precision.
    stats, plan_request = request(gpu="RTX 3050 4GB Laptop", task="train", precision="fp32",
                                  resolution=320, user_batch=40, fixed=frozenset({"batch_size"}))
    plan = memory_model.plan(stats, plan_request)
    assert (plan.precision, plan.resolution, plan.batch_size) == ("fp32", 160, 40)
    decisions = plan.decisions(plan_request)
    assert decisions["resolution"].value == 160 and decisions["resolution"].source == "S000-7"
    assert "precision" not in decisions


def test_precision_steps_down_when_resolution_cannot():
    stats, plan_request = request(gpu="RTX 3050 4GB Laptop", precision="fp32", resolution=160,
                                  user_batch=800, fixed=frozenset({"batch_size", "resolution"}))
    plan = memory_model.plan(stats, plan_request)
    assert plan.precision == "fp16"
    assert plan.decisions(plan_request)["precision"].value == "fp16"


def test_a_model_too_large_in_every_precision_says_by_how_much():
    stats, plan_request = request(gpu="RTX 3050 4GB Laptop", precision="fp32", resolution=160,
                                  user_batch=5000, fixed=frozenset({"batch_size", "resolution"}))
    with pytest.raises(UserError, match=r"does not fit on RTX 3050 4GB Laptop: it needs .* GB at "
                                        r"batch 5000 \(160 px, int4, infer\) .* GB short"):
        memory_model.plan(stats, plan_request)


def test_fixed_resolution_models_keep_their_size():
    stats, plan_request = request("vit_b_16", resolution=320)
    plan = memory_model.plan(stats, plan_request)
    assert plan.resolution == 224
    assert "takes only 224 px" in plan.decisions(plan_request)["resolution"].reason


def test_onnx_models_do_not_train():
    stats, plan_request = request(task="train")
    with pytest.raises(UserError, match="ONNX inference graph"):
        memory_model.plan(dataclasses.replace(stats, trainable=False), plan_request)


def test_roofline_ceiling_is_the_lower_of_compute_and_bandwidth():
    stats = reference_models()["resnet50"]
    ceiling = memory_model.roofline(stats, resolve("A100 80GB"), 224, "fp16")
    at = stats.at(224)
    assert ceiling.compute_samples_s == pytest.approx(312e12 / at.flops_per_sample)
    assert ceiling.memory_samples_s == pytest.approx(2039e9 / at.traffic_bytes["fp16"])
    assert ceiling.ceiling_samples_s == ceiling.compute_samples_s
    assert ceiling.unfused_samples_s == min(ceiling.compute_samples_s, ceiling.memory_samples_s)


def _model(name="resnet50"):
    return ModelRequest(stats=reference_models()[name])


def test_recommend_with_a_model_replaces_the_document_batch():
    plain = recommend(simulated("RTX 3060 8GB"), INFER)
    sized = recommend(simulated("RTX 3060 8GB"), INFER, model=_model())
    assert plain.decision("batch_size").rule == "batch-8gb"
    assert sized.decision("batch_size").rule == "memory-model"
    assert sized.model["name"] == "resnet50" and sized.model["predicted_peak_gb"] <= sized.model["usable_gb"]
    assert sized.model["lightweight"] == "large"


def test_recommend_uses_free_not_total_memory():
    machine = replayed("gtx1660.yaml")  # 6.0 GB total, 5.75 GB free
    busy = dataclasses.replace(machine, gpus=(dataclasses.replace(machine.gpus[0],
                                                                  vram_free_bytes=2 * GIB),))
    train = INFER | {"task": "train"}
    roomy = recommend(machine, train, model=_model()).model["largest_batch_that_fits"]
    tight = recommend(busy, train, model=_model()).model["largest_batch_that_fits"]
    assert tight < roomy


def test_transformers_train_in_bf16_where_it_runs():
    # S003-6: BF16 for transformers.
    recommendation = recommend(simulated("A100 80GB"), INFER | {"task": "train"}, model=_model("vit_b_16"))
    assert recommendation.settings["precision"] == "bf16"
    assert recommendation.settings["grad_scaler"] is False


def test_cpu_only_machine_reports_the_model_without_a_plan():
    recommendation = recommend(replayed("no_driver.yaml"), INFER, model=_model("resnet18"))
    assert recommendation.decision("batch_size").rule == "batch-cpu"
    assert recommendation.model["lightweight"] == "medium" and "usable_gb" not in recommendation.model


def test_model_recommendation_round_trips_through_yaml():
    from autotune.recommendation.formats import parse, render

    recommendation = recommend(simulated("T4"), INFER, model=_model())
    assert parse(render(recommendation, "yaml"), "yaml") == recommendation
    assert yaml.safe_load(render(recommendation, "yaml"))["model"]["roofline_bound"] in ("compute", "memory")


def test_int8_and_fp8_rooflines_take_their_tensor_rates_and_one_byte_traffic():
    from autotune.hardware.gpu_database import resolve
    from autotune.model.memory import roofline

    stats = reference_models()["resnet50"]
    a10 = resolve("A10")
    fp16, int8 = roofline(stats, a10, 224, "fp16"), roofline(stats, a10, 224, "int8")
    # INT8 Tensor Cores run at twice FP16's rate on the A10, and move one byte per element.
    assert int8.compute_samples_s == pytest.approx(2 * fp16.compute_samples_s)
    assert int8.memory_samples_s == pytest.approx(2 * fp16.memory_samples_s)
    # Weight-only INT4 keeps half-precision activations: FP16's traffic, and FP16's rate.
    int4 = roofline(stats, a10, 224, "int4")
    assert int4.memory_samples_s == pytest.approx(fp16.memory_samples_s)
    assert int4.compute_samples_s == pytest.approx(fp16.compute_samples_s)
    h100 = resolve("H100 SXM")
    fp8 = roofline(stats, h100, 224, "fp8")
    assert fp8.compute_samples_s == pytest.approx(
        h100.tensor_tflops["fp8"] * 1e12 / stats.at(224).flops_per_sample)
    assert fp8.memory_samples_s == pytest.approx(2 * roofline(stats, h100, 224, "fp16").memory_samples_s)
