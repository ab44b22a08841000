"""The NVML probe against recorded answers, and the recorder that writes them."""

from __future__ import annotations

import pynvml
import pytest

from autotune.hardware.host import probe_host
from autotune.hardware.nvml_recording import RecordedNvml, RecordingNvml
from autotune.hardware.probe import probe
from tests.conftest import HOST, RECORDINGS, replayed


def test_gpu_without_tensor_cores():
    machine = replayed("gtx1660.yaml")
    (gpu,) = machine.gpus
    assert (gpu.name, gpu.spec_name, gpu.compute_capability) == \
        ("NVIDIA GeForce GTX 1660", "GTX 1660 6GB", "7.5")
    assert gpu.architecture == "turing" and gpu.tensor_cores is False
    assert gpu.memory_bandwidth_gb_s == pytest.approx(192, rel=0.01)  # 2 x 4001 MHz x 192 bit / 8
    assert (gpu.pcie_generation, gpu.pcie_width, gpu.nvlink_active_links) == (3, 16, 0)
    assert gpu.mig_enabled is False and gpu.power_limit_w == 120
    assert (machine.driver_version, machine.cuda_driver_version) == ("535.154.05", "12.2")


def test_mig_enabled_gpu_lists_its_slices():
    (gpu,) = replayed("a100_mig.yaml").gpus
    assert gpu.spec_name == "A100 40GB SXM" and gpu.mig_enabled
    assert [s.name.split()[-1] for s in gpu.mig_slices] == ["3g.20gb", "1g.5gb", "1g.5gb"]
    assert [s.memory_total_bytes // 2**20 for s in gpu.mig_slices] == [19968, 4864, 4864]
    assert gpu.nvlink_active_links == 12
    assert gpu.memory_bandwidth_gb_s == pytest.approx(1555, rel=0.01)


def test_multi_gpu_node_with_nvlink():
    machine = replayed("h100x2_nvlink.yaml")
    assert [gpu.index for gpu in machine.gpus] == [0, 1]
    assert all(gpu.spec_name == "H100 SXM" and gpu.nvlink_active_links == 18 for gpu in machine.gpus)
    assert machine.gpus[0].uuid != machine.gpus[1].uuid
    assert "fp8" in machine.gpus[0].precisions and "int4" not in machine.gpus[0].precisions


def test_mixed_node_is_described_per_gpu():
    machine = replayed("mixed_4090_3060.yaml")
    assert [gpu.spec_name for gpu in machine.gpus] == ["RTX 4090", "RTX 3060 12GB"]
    assert [gpu.architecture for gpu in machine.gpus] == ["ada", "ampere"]
    assert "fp8" in machine.gpus[0].precisions and "fp8" not in machine.gpus[1].precisions


def test_recorded_missing_library_gives_a_cpu_only_machine():
    machine = replayed("no_driver.yaml")
    assert machine.gpus == ()
    assert "NVML library" in machine.note


def test_real_nvml_on_this_machine_never_raises():
    # CI has no driver: a CPU-only answer. On a GPU machine: a list of GPUs.
    machine = probe(host=HOST)
    assert machine.gpus or machine.note


def test_nvml_that_answers_nothing_else_still_describes_the_gpu():
    # An old driver: only the calls every NVML has. Unknown boards fall back to the
    # architecture table, and GTX 16xx names mean no Tensor Cores (S003-2).
    answers = {
        "nvmlInit": None, "nvmlDeviceGetCount": 1,
        "nvmlDeviceGetHandleByIndex(0)": {"handle": "gpu0"},
        "nvmlDeviceGetName(gpu0)": "NVIDIA GeForce GTX 1650 SUPER",
        "nvmlDeviceGetMemoryInfo(gpu0)": {"total": 4 * 2**30, "free": 4 * 2**30, "used": 0},
        "nvmlDeviceGetCudaComputeCapability(gpu0)": [7, 5],
    }
    (gpu,) = probe(RecordedNvml(answers), host=HOST).gpus
    assert gpu.spec_name is None and gpu.architecture == "turing"
    assert gpu.tensor_cores is False
    assert gpu.memory_bandwidth_gb_s is None and gpu.pcie_generation is None


def test_a_gpu_that_does_not_answer_is_reported_not_raised():
    answers = {"nvmlInit": None, "nvmlDeviceGetCount": 1,
               "nvmlDeviceGetHandleByIndex(0)": {"error": "GpuIsLost"}}
    machine = probe(RecordedNvml(answers), host=HOST)
    assert machine.gpus == () and "GPU 0 did not answer" in machine.note


@pytest.mark.parametrize("name", ["gtx1660.yaml", "a100_mig.yaml", "h100x2_nvlink.yaml",
                                  "mixed_4090_3060.yaml", "no_driver.yaml"])
def test_recording_a_probe_and_replaying_it_gives_the_same_machine(name, tmp_path):
    recorder = RecordingNvml(RecordedNvml.from_file(RECORDINGS / name))
    original = probe(recorder, host=HOST)
    path = tmp_path / "recording.yaml"
    path.write_text(recorder.dump())
    assert probe(RecordedNvml.from_file(path), host=HOST) == original


def test_recorder_turns_ctypes_structures_into_plain_values():
    memory = pynvml.c_nvmlMemory_t()
    memory.total, memory.free, memory.used = 10, 6, 4
    assert RecordingNvml()._plain(memory) == {"total": 10, "free": 6, "used": 4}
    assert RecordingNvml()._plain(b"NVIDIA T4") == "NVIDIA T4"


def test_host_probe_reads_this_machine():
    host = probe_host()
    assert host.logical_cores >= 1 and 1 <= host.available_cores <= host.logical_cores
    assert host.ram_bytes > 0 and host.cpu_model


@pytest.mark.parametrize("setting, expected", [
    (None, ["gpu0", "gpu1"]),
    ("1", ["gpu1"]),
    ("1,0", ["gpu1", "gpu0"]),
    ("GPU-0f9e8d7c", ["gpu0"]),
    ("0f9e8d7c", ["gpu0"]),
    ("0,7,1", ["gpu0"]),  # like CUDA, the list ends at the first unknown device
    ("", []),
    ("-1", []),
])
def test_cuda_visible_devices_limits_the_gpus(setting, expected):
    machine = probe(RecordedNvml.from_file(RECORDINGS / "mixed_4090_3060.yaml"), host=HOST,
                    cuda_visible_devices=setting)
    assert [f"gpu{gpu.index}" for gpu in machine.gpus] == expected
    if not expected:
        assert "hides every GPU" in machine.note


def test_a_mig_uuid_makes_its_gpu_visible():
    machine = probe(RecordedNvml.from_file(RECORDINGS / "a100_mig.yaml"), host=HOST,
                    cuda_visible_devices="MIG-7a4e2f19")
    assert len(machine.gpus) == 1


MIXED_4090 = "0f9e8d7c6b5a4938a7b6c5d4e3f2a1b0"
MIXED_3060 = "1a2b3c4d5e6f4a7b8c9d0e1f2a3b4c5d"


@pytest.mark.parametrize(("cuda_uuids", "expected"), [
    # CUDA numbers the 3060 first (a machine whose faster card sits on the later bus, under
    # CUDA's default fastest-first order, or CUDA_VISIBLE_DEVICES=1,0): the probe lists the
    # GPUs as CUDA numbers them, so "the GPU" it describes is CUDA's device 0.
    ((MIXED_3060, MIXED_4090), ["gpu1", "gpu0"]),
    ((MIXED_4090,), ["gpu0"]),  # CUDA_VISIBLE_DEVICES, as CUDA itself applied it
    ((), []),
    # CUDA lists a device NVML does not show: its order is not trusted, NVML's is kept.
    (("ffffffffffffffffffffffffffffffff",), ["gpu0", "gpu1"]),
])
def test_the_gpus_are_listed_in_cudas_order_where_cuda_gave_it(cuda_uuids, expected):
    machine = probe(RecordedNvml.from_file(RECORDINGS / "mixed_4090_3060.yaml"), host=HOST,
                    cuda_uuids=cuda_uuids)
    assert [f"gpu{gpu.index}" for gpu in machine.gpus] == expected


def test_a_mig_instance_cuda_lists_places_its_gpu():
    machine = probe(RecordedNvml.from_file(RECORDINGS / "a100_mig.yaml"), host=HOST,
                    cuda_uuids=("MIG-7a4e2f19-0002-4c2a-9d1e-5f3b7a0c0002",))
    assert [gpu.index for gpu in machine.gpus] == [0]


def test_without_a_cuda_driver_no_cuda_order_is_claimed(monkeypatch):
    from autotune.hardware import cuda_devices  # noqa: PLC0415

    monkeypatch.setattr(cuda_devices.sys, "executable", "/nonexistent/python")
    assert cuda_devices.cuda_device_uuids() is None
