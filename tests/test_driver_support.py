"""A driver too old for the installed torch's CUDA is named, with the wheel that would run
(autotune/hardware/driver_support.py), on machines replayed from NVML recordings."""

from __future__ import annotations

import pytest

from autotune.hardware import driver_support
from autotune.hardware.driver_support import DriverTooOld, check
from autotune.shipped_data import load_profile
from tests.conftest import replayed


@pytest.mark.parametrize(("recording", "wheel"), [
    ("gtx1660.yaml", "12"),          # driver 535.154.05
    ("a100_mig.yaml", "12"),         # 550.54.15
    ("h100x2_nvlink.yaml", "12"),    # 550.90.07
    ("mixed_4090_3060.yaml", "12"),  # 560.35.03
])
def test_a_cuda_13_torch_on_a_recorded_pre_580_driver_is_told_the_cuda_12_wheel(recording, wheel):
    machine = replayed(recording)
    assert machine.driver_version and machine.gpus
    verdict = check(machine.driver_version, "13.0")
    assert verdict == DriverTooOld(driver_version=machine.driver_version, torch_cuda_version="13.0",
                                   minimum_driver=580, wheel_cuda_major=wheel,
                                   wheel_index_url="https://download.pytorch.org/whl/cu126")
    # The same driver runs a CUDA 12 build: nothing to say.
    assert check(machine.driver_version, "12.6") is None


def test_the_message_names_the_driver_the_minimum_and_the_pip_command():
    verdict = check("535.104.05", "13.0")
    assert verdict is not None and verdict.message() == (
        "driver 535.104.05 is older than CUDA 13.0 needs (580); install torch built for CUDA 12.x: "
        "pip install torch --index-url https://download.pytorch.org/whl/cu126")


def test_a_driver_below_every_wheel_is_told_to_update_the_driver():
    verdict = check("470.82.01", "12.8")
    assert verdict is not None and verdict.minimum_driver == 525
    assert verdict.wheel_cuda_major is None and verdict.wheel_index_url is None
    assert verdict.message() == ("driver 470.82.01 is older than CUDA 12.8 needs (525); no current torch "
                                 "build runs on it: update the NVIDIA driver to 525 or newer")


@pytest.mark.parametrize(("driver", "cuda"), [
    ("580.65.06", "13.0"),   # exactly the minimum
    ("590.10", "13.1"),
    (None, "13.0"),          # no driver: the probe's note says why, not this check
    ("535.154.05", None),    # a CPU build of torch
    ("535.154.05", "14.0"),  # a CUDA major the table does not hold: no claim
    ("garbage", "13.0"),
])
def test_nothing_is_claimed_where_the_driver_suffices_or_a_version_is_unknown(driver, cuda):
    assert check(driver, cuda) is None


def test_every_wheel_index_has_a_minimum_driver_and_both_cite_a_source():
    table = load_profile("cuda_drivers.yaml")
    assert set(table["wheel_index"]) <= set(table["minimum_driver"])
    assert table["minimum_driver_source"].startswith("https://docs.nvidia.com/")
    assert table["wheel_index_source"].startswith("https://pytorch.org/")


def cuda_13_torch_without_a_gpu(monkeypatch, torch, recording: str) -> None:
    """A torch built for CUDA 13.0 that sees no GPU, on the machine ``recording`` replays."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(driver_support, "_probed_machine", lambda: replayed(recording))


def test_apply_says_why_a_cuda_configuration_runs_on_the_cpu(monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    from autotune.training.apply import apply  # noqa: PLC0415
    from autotune.training.config import TrainingConfig  # noqa: PLC0415

    cuda_13_torch_without_a_gpu(monkeypatch, torch, "gtx1660.yaml")
    placed, _, _ = apply(torch.nn.Linear(4, 2), config=TrainingConfig(source="profile", device="cuda"))
    assert next(placed.parameters()).device.type == "cpu"
    assert capsys.readouterr().err == (
        "autotune: warning: the configuration chose CUDA, but driver 535.154.05 is older than CUDA 13.0 "
        "needs (580); install torch built for CUDA 12.x: pip install torch --index-url "
        "https://download.pytorch.org/whl/cu126; the model runs on the CPU\n")


def test_apply_on_a_cpu_configuration_says_nothing(capsys):
    torch = pytest.importorskip("torch")
    from autotune.training.apply import apply  # noqa: PLC0415
    from autotune.training.config import TrainingConfig  # noqa: PLC0415

    apply(torch.nn.Linear(4, 2), config=TrainingConfig(source="profile", device="cpu"))
    assert capsys.readouterr().err == ""


def test_the_torch_backend_refuses_a_gpu_its_driver_is_too_old_for(monkeypatch):
    torch = pytest.importorskip("torch")
    from autotune_plugins.torch.runner import TorchRunner  # noqa: PLC0415

    from autotune.backend_api import BackendUnavailable  # noqa: PLC0415

    cuda_13_torch_without_a_gpu(monkeypatch, torch, "gtx1660.yaml")
    too_old = (r"^driver 535\.154\.05 is older than CUDA 13\.0 needs \(580\); "
               r"install torch built for CUDA 12\.x")
    with pytest.raises(BackendUnavailable, match=too_old):
        TorchRunner().device("cuda")
    assert TorchRunner().device("cpu") == "cpu"


def test_the_torch_backend_uses_the_cpu_where_no_driver_is_too_old(monkeypatch):
    torch = pytest.importorskip("torch")
    from autotune_plugins.torch.runner import TorchRunner  # noqa: PLC0415

    cuda_13_torch_without_a_gpu(monkeypatch, torch, "no_driver.yaml")
    assert TorchRunner().device("cuda") == "cpu"


def test_the_tensorrt_backend_names_the_driver_too_old_for_torchs_cuda(monkeypatch):
    torch = pytest.importorskip("torch")
    from autotune_plugins.tensorrt.device import CudaDevice  # noqa: PLC0415

    from autotune.backend_api import BackendUnavailable  # noqa: PLC0415

    cuda_13_torch_without_a_gpu(monkeypatch, torch, "gtx1660.yaml")
    too_old = (r"^TensorRT needs a CUDA GPU, and PyTorch sees none here: driver 535\.154\.05 is older "
               r"than CUDA 13\.0 needs \(580\); install torch built for CUDA 12\.x")
    with pytest.raises(BackendUnavailable, match=too_old):
        CudaDevice()
