"""A Jetson has no NVML: the probe names its board from the device tree instead."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pynvml
import pytest

from autotune.hardware import gpu_database as gpudb
from autotune.hardware import jetson
from autotune.hardware.nvml_recording import RecordedNvml
from autotune.hardware.probe import probe
from tests.conftest import HOST, RECORDINGS

GIB = 2**30
AGX_ORIN_MODEL = b"NVIDIA Jetson AGX Orin Developer Kit\x00"
AGX_ORIN_COMPATIBLE = b"nvidia,p3737-0000+p3701-0005\x00nvidia,p3701-0005\x00nvidia,tegra234\x00"
ORIN_NANO_MODEL = b"NVIDIA Jetson Orin Nano Developer Kit\x00"
ORIN_NANO_COMPATIBLE = b"nvidia,p3768-0000+p3767-0005\x00nvidia,p3767-0005\x00nvidia,tegra234\x00"
# What a 64 GB AGX Orin's kernel manages once the firmware has taken its carve-outs.
AGX_ORIN_HOST = replace(HOST, cpu_model="ARMv8 Processor rev 1 (v8l)", ram_bytes=61 * GIB)


def no_nvml() -> RecordedNvml:
    """NVML as a Jetson answers it: no libnvidia-ml at all."""
    return RecordedNvml({"nvmlInit": {"error": "LibraryNotFound"}})


def device_tree(folder: Path, model: bytes | None, compatible: bytes | None) -> Path:
    """A stand-in for /proc/device-tree holding the two properties the probe reads."""
    folder.mkdir()
    if model is not None:
        (folder / "model").write_bytes(model)
    if compatible is not None:
        (folder / "compatible").write_bytes(compatible)
    return folder


class UnreadableDeviceTree(type(Path())):
    """A device tree that fails the test as soon as the probe looks inside it."""

    def __truediv__(self, name: str) -> Path:
        raise AssertionError(f"the probe read the device tree ({name}) though NVML answered")


@pytest.fixture(autouse=True)
def meminfo(tmp_path, monkeypatch) -> Path:
    """This test machine's own /proc/meminfo is not the Jetson's: 50 GiB available."""
    path = tmp_path / "meminfo"
    path.write_text(f"MemTotal: {61 * GIB // 1024} kB\nMemAvailable: {50 * GIB // 1024} kB\n")
    monkeypatch.setattr(jetson, "MEMINFO", path)
    return path


def test_agx_orin_is_recognised_from_the_device_tree(tmp_path):
    tree = device_tree(tmp_path / "dt", AGX_ORIN_MODEL, AGX_ORIN_COMPATIBLE)
    machine = probe(no_nvml(), host=AGX_ORIN_HOST, device_tree=tree)
    (gpu,) = machine.gpus
    assert (gpu.name, gpu.spec_name, gpu.compute_capability) == \
        ("Jetson AGX Orin", "Jetson AGX Orin", "8.7")
    assert gpu.architecture == "ampere" and gpu.tensor_cores and gpu.sm_count == 16
    assert not gpu.simulated and not machine.simulated and gpu.uuid is None
    # Its memory is the board's RAM as the kernel reports it, shared with the CPU.
    assert (gpu.vram_total_bytes, gpu.vram_free_bytes) == (61 * GIB, 50 * GIB)
    assert "device tree" in machine.note and "NVIDIA Jetson AGX Orin Developer Kit" in machine.note
    assert machine.summary() == "1 x Jetson AGX Orin (61 GB, cc 8.7)"


def test_without_meminfo_the_whole_ram_counts_as_free(tmp_path, meminfo):
    meminfo.unlink()
    tree = device_tree(tmp_path / "dt", AGX_ORIN_MODEL, AGX_ORIN_COMPATIBLE)
    (gpu,) = probe(no_nvml(), host=AGX_ORIN_HOST, device_tree=tree).gpus
    assert gpu.vram_free_bytes == gpu.vram_total_bytes == 61 * GIB


def test_a_board_the_database_lacks_gets_no_gpu_and_a_note_naming_it(tmp_path):
    tree = device_tree(tmp_path / "dt", ORIN_NANO_MODEL, ORIN_NANO_COMPATIBLE)
    machine = probe(no_nvml(), host=replace(HOST, ram_bytes=7 * GIB), device_tree=tree)
    assert machine.gpus == ()
    assert "NVIDIA Jetson Orin Nano Developer Kit" in machine.note
    assert "not in the spec database" in machine.note and "profiles/gpus.yaml" in machine.note


def test_an_agx_orin_with_another_memory_size_is_not_the_64_gb_entry(tmp_path):
    # The 32 GB AGX Orin has the same model name but fewer SMs: not the database's board.
    tree = device_tree(tmp_path / "dt", AGX_ORIN_MODEL, AGX_ORIN_COMPATIBLE)
    machine = probe(no_nvml(), host=replace(HOST, ram_bytes=30 * GIB), device_tree=tree)
    assert machine.gpus == ()
    assert "30 GiB" in machine.note and "profiles/gpus.yaml" in machine.note


def test_an_orin_nx_without_jetson_in_its_name_is_still_a_jetson(tmp_path):
    tree = device_tree(tmp_path / "dt", b"NVIDIA Orin NX Developer Kit\x00",
                       b"nvidia,p3768-0000+p3767-0000\x00nvidia,tegra234\x00")
    machine = probe(no_nvml(), host=replace(HOST, ram_bytes=15 * GIB), device_tree=tree)
    assert machine.gpus == () and "NVIDIA Orin NX Developer Kit" in machine.note


@pytest.mark.parametrize("model, compatible", [
    (None, None),  # no device tree at all: an x86 machine
    (b"Raspberry Pi 4 Model B Rev 1.4\x00", b"raspberrypi,4-model-b\x00brcm,bcm2711\x00"),
])
def test_a_machine_that_is_no_jetson_gets_the_cpu_only_answer_as_before(tmp_path, model, compatible):
    tree = device_tree(tmp_path / "dt", model, compatible)
    before = probe(RecordedNvml.from_file(RECORDINGS / "no_driver.yaml"), host=HOST)
    assert probe(no_nvml(), host=HOST, device_tree=tree) == before
    assert before.gpus == () and "NVML library" in before.note


def test_a_missing_device_tree_folder_is_no_jetson(tmp_path):
    machine = probe(no_nvml(), host=HOST, device_tree=tmp_path / "absent")
    assert machine.gpus == () and "NVML library" in machine.note


def test_working_nvml_never_reads_the_device_tree(tmp_path):
    machine = probe(RecordedNvml.from_file(RECORDINGS / "gtx1660.yaml"), host=HOST,
                    device_tree=UnreadableDeviceTree(tmp_path))
    assert [gpu.spec_name for gpu in machine.gpus] == ["GTX 1660 6GB"]


def test_a_driver_that_is_not_loaded_is_not_a_jetson(tmp_path):
    # NVML is there but the driver is not: a desktop, whose device tree (if any) says nothing.
    nvml = RecordedNvml({"nvmlInit": {"error": "DriverNotLoaded"}})
    machine = probe(nvml, host=HOST, device_tree=UnreadableDeviceTree(tmp_path))
    assert machine.gpus == () and "not loaded" in machine.note


def test_a_replayed_recording_does_not_read_this_machines_device_tree(tmp_path, monkeypatch):
    # The recording describes another machine: this one's device tree says nothing about it.
    monkeypatch.setattr(jetson, "DEVICE_TREE", UnreadableDeviceTree(tmp_path))
    machine = probe(no_nvml(), host=HOST)
    assert machine.gpus == () and "NVML library" in machine.note


def test_this_machines_probe_reads_the_device_tree_where_nvml_is_missing(tmp_path, monkeypatch):
    class MissingLibrary:
        """An NVML stand-in that is not a recording: this machine, without libnvidia-ml."""

        NVMLError = pynvml.NVMLError

        def nvmlInit(self) -> None:
            raise pynvml.NVMLError_LibraryNotFound()

    tree = device_tree(tmp_path / "dt", AGX_ORIN_MODEL, AGX_ORIN_COMPATIBLE)
    monkeypatch.setattr(jetson, "DEVICE_TREE", tree)
    (gpu,) = probe(MissingLibrary(), host=AGX_ORIN_HOST).gpus
    assert gpu.spec_name == "Jetson AGX Orin"


@pytest.mark.parametrize("setting, count", [(None, 1), ("0", 1), ("", 0), ("-1", 0)])
def test_cuda_visible_devices_can_hide_the_jetson_gpu(tmp_path, setting, count):
    tree = device_tree(tmp_path / "dt", AGX_ORIN_MODEL, AGX_ORIN_COMPATIBLE)
    machine = probe(no_nvml(), host=AGX_ORIN_HOST, device_tree=tree, cuda_visible_devices=setting)
    assert len(machine.gpus) == count
    assert ("hides every GPU" in machine.note) == (count == 0)


def test_torch_name_for_the_orin_gpu_resolves_to_the_agx_orin_entry():
    assert gpudb.resolve("Orin (nvgpu)").name == "Jetson AGX Orin"
    assert gpudb.resolve("Orin (nvgpu)") == gpudb.resolve("Jetson AGX Orin")
