"""The cases the source documents state, on simulated and recorded machines."""

from __future__ import annotations

import pytest

from autotune.recommendation.engine import recommend
from tests.conftest import HOST, replayed, settings_for, simulated


def test_rtx_3060_8gb_infers_at_224_batch_4():
    # S000-4 and S000-11: 8 GB -> batch 4 at 224 px.
    settings = settings_for(simulated("RTX 3060 8GB"))
    assert settings["resolution"] == 224
    assert settings["batch_size"] == 4


@pytest.mark.parametrize("gpu", ["RTX 3050 4GB Laptop", "GTX 1650"])
def test_4gb_card_gets_160_px_and_batch_at_most_2(gpu):
    # S000-4 (4 GB -> batch 2), S000-5 and S000-11 (the 4 GB card ran at 160 px).
    settings = settings_for(simulated(gpu))
    assert settings["resolution"] == 160
    assert settings["batch_size"] <= 2


@pytest.mark.parametrize("gpu", ["GTX 1660 6GB", "GTX 1080 Ti"])
def test_cards_without_tensor_cores_train_without_amp(gpu):
    # S003-2: GTX 16xx are Turing 7.5 without Tensor Cores; the 1080 Ti is Pascal 6.1.
    settings = settings_for(simulated(gpu), task="train")
    assert settings["amp"] is False
    assert settings["precision"] == "fp32"
    assert settings["grad_scaler"] is False


def test_gtx_1660_is_turing_without_tensor_cores():
    gpu = simulated("GTX 1660 6GB").gpus[0]
    assert gpu.compute_capability == "7.5"
    assert gpu.tensor_cores is False
    assert gpu.tensor_core_precisions == ()


def test_t4_infers_in_fp16():
    # S001-5: FP16 1.68-1.84x faster on a T4.
    assert settings_for(simulated("T4"))["precision"] == "fp16"


def test_rtx_2080_ti_trains_with_fp16_amp_and_grad_scaler():
    settings = settings_for(simulated("RTX 2080 Ti"), task="train")
    assert (settings["precision"], settings["amp"], settings["amp_dtype"]) == ("fp16", True, "float16")
    assert settings["grad_scaler"] is True  # S003-1: FP16 needs loss scaling


@pytest.mark.parametrize("gpu", ["A100 40GB", "A100 80GB", "H100 SXM", "H100 PCIe"])
@pytest.mark.parametrize("task", ["infer", "train"])
def test_a100_and_h100_get_tf32_and_a_bf16_option(gpu, task):
    settings = settings_for(simulated(gpu), task=task)
    assert settings["tf32"] is True
    assert settings["alternative_precision"] == "bf16"


def test_bf16_training_needs_no_grad_scaler():
    # S003-6: BF16 keeps FP32's range.
    settings = settings_for(simulated("A100 80GB"), task="train", tier="accuracy")
    assert (settings["precision"], settings["amp_dtype"], settings["grad_scaler"]) == \
        ("bf16", "bfloat16", False)


def test_cpu_only_machine_gets_a_cpu_config():
    machine = replayed("no_driver.yaml")
    assert machine.gpus == () and "NVML library" in machine.note
    settings = settings_for(machine)
    assert settings["device"] == "cpu"
    assert settings["precision"] == "fp32"
    assert settings["backends"][0] == "onnxruntime"
    assert settings["cpu_threads"] == HOST.physical_cores
    assert settings["pin_memory"] is False


def test_cpu_low_resource_tier_quantises_to_int8_with_a_loss_warning():
    machine = replayed("no_driver.yaml")
    inputs = {"task": "infer", "objective": "throughput", "tier": "low-resource"}
    recommendation = recommend(machine, inputs)
    assert recommendation.settings["precision"] == "int8"
    assert any("S002-6" in warning for warning in recommendation.warnings)


def test_latency_objective_uses_batch_1():
    # S001-3: batch 1 has the lowest latency.
    assert settings_for(simulated("T4"), objective="latency")["batch_size"] == 1


def test_t4_throughput_batch_is_the_documented_knee():
    # S001-4: batch 16 is the knee on a T4.
    assert settings_for(simulated("T4"))["batch_size"] == 16


def test_resolution_tiers():
    # S000-5: 320 / 224 / 160.
    machine = simulated("RTX 3090")
    assert [settings_for(machine, tier=tier)["resolution"]
            for tier in ("accuracy", "balanced", "low-resource")] == [320, 224, 160]


def test_training_batch_scales_from_the_3090_anchor():
    # S003-3: a 24 GB RTX 3090 trained YOLOv8s at batch 32 in FP32 and 64+ with AMP.
    assert settings_for(simulated("RTX 3090"), task="train")["batch_size"] == 64
    assert settings_for(simulated("RTX 3090"), task="train",
                        overrides={"precision": ("fp32", "test")})["batch_size"] == 32


def test_low_resource_inference_quantises_with_the_loss_warning():
    recommendation = recommend(simulated("T4"), {"task": "infer", "objective": "throughput",
                                                 "tier": "low-resource"})
    assert recommendation.settings["precision"] == "int8"
    assert recommendation.settings["backends"][0] == "tensorrt"  # S000-8
    assert any("3 %" in warning for warning in recommendation.warnings)  # S002-6


def test_multi_gpu_training_uses_nccl_over_nvlink():
    settings = settings_for(replayed("h100x2_nvlink.yaml"), task="train")
    assert (settings["multi_gpu"], settings["dist_backend"], settings["interconnect"]) == \
        ("ddp", "nccl", "nvlink")


def test_multi_gpu_training_over_pcie_warns():
    recommendation = recommend(simulated("RTX 3090", "RTX 3090"),
                               {"task": "train", "objective": "throughput", "tier": "balanced"})
    assert recommendation.settings["interconnect"] == "pcie"
    assert any("NVLink" in warning for warning in recommendation.warnings)  # S003-7


def test_mixed_node_runs_one_job_per_gpu_sized_for_the_smaller_card():
    machine = replayed("mixed_4090_3060.yaml")
    settings = settings_for(machine, task="train")
    assert settings["multi_gpu"] == "per_gpu"
    # Sized for the 12 GB RTX 3060, not the 24 GB 4090: 64 * 12 / 24 = 32.
    assert settings["batch_size"] == 32
    assert "fp8" not in settings.values()


def test_mig_slices_size_the_recommendation():
    settings = settings_for(replayed("a100_mig.yaml"))
    # The smallest slice has 4.75 GiB: the low-memory floor applies.
    assert settings["resolution"] == 160
    assert settings["batch_size"] == 1


def test_training_on_a_cpu_only_machine_uses_torch():
    # ONNX Runtime serves models; it does not train them.
    settings = settings_for(replayed("no_driver.yaml"), task="train")
    assert settings["backends"] == ["torch"] and settings["device"] == "cpu"


@pytest.mark.parametrize(("gpu", "rule"), [
    ("K80", "gpu-kepler"), ("M60", "gpu-before-turing"), ("P100 PCIe 16GB", "gpu-before-turing"),
    ("V100 SXM2 32GB", "gpu-before-turing"), ("T4", "gpu-present"), ("H100 SXM", "gpu-present"),
])
def test_boards_current_wheels_leave_out_are_named_with_the_wheel_to_install(gpu, rule):
    recommendation = recommend(simulated(gpu), {"task": "infer", "objective": "throughput",
                                                "tier": "balanced"})
    device = next(d for d in recommendation.decisions if d.name == "device")
    assert (device.value, device.rule) == ("cuda", rule)
    cu126 = [w for w in recommendation.warnings if "whl/cu126" in w]
    kepler = [w for w in recommendation.warnings if "R470" in w]
    assert (bool(cu126), bool(kepler)) == (rule == "gpu-before-turing", rule == "gpu-kepler")


@pytest.mark.parametrize(("gpu", "first"), [
    ("V100 SXM2 32GB", "onnxruntime"), ("P4", "onnxruntime"), ("K80", "onnxruntime"), ("T4", "tensorrt"),
])
def test_tensorrt_is_not_proposed_for_gpus_it_no_longer_supports(gpu, first):
    for tier in ("balanced", "low-resource"):
        backends = settings_for(simulated(gpu), tier=tier)["backends"]
        assert backends[0] == first
        assert ("tensorrt" in backends) == (first == "tensorrt")
