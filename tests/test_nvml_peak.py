"""A session's own GPU memory from NVML: its increment, on the card CUDA runs it on, and a
figure that says what it is where NVML cannot name the process (issue 24, items 4, 8, 9).

NVML is the machines' recordings (``tests/nvml``) with the process list and the used memory
scripted over time, as a session would move them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from autotune_plugins.common.nvml_peak import ProcessPeakMemory, nvml_device_for

from autotune.backend_api import MemoryFigure
from autotune.hardware.nvml_recording import RecordedNvml, RecordingNvml
from tests.conftest import RECORDINGS

GIB = 2**30
PID = 4242
MIXED_4090 = "GPU-0f9e8d7c-6b5a-4938-a7b6-c5d4e3f2a1b0"
MIXED_3060 = "GPU-1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


class ScriptedNvml(RecordedNvml):
    """A recorded machine whose processes and used memory change with each reading: each
    call takes the next entry of the handle's script (the last one repeats)."""

    def __init__(self, recording: str, processes=None, used=None):
        super().__init__(RecordedNvml.from_file(RECORDINGS / recording)._answers)
        self.processes, self.used = processes or {}, used or {}
        self.asked: list[str] = []

    @staticmethod
    def _next(script: list):
        return script.pop(0) if len(script) > 1 else script[0]

    def nvmlDeviceGetComputeRunningProcesses(self, handle):  # noqa: N802 - pynvml's name
        self.asked.append(str(handle))
        return [SimpleNamespace(pid=pid, usedGpuMemory=used)
                for pid, used in self._next(self.processes[str(handle)])]

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):  # noqa: N802 - pynvml's name
        if str(handle) not in self.used:
            return super().__getattr__("nvmlDeviceGetMemoryInfo")(handle)
        return SimpleNamespace(total=24 * GIB, free=0, used=self._next(self.used[str(handle)]))


def peak(nvml, uuid="GPU-5d1c0e43-8f2a-4b7e-9c61-0a3f2e7d8b14", **options) -> ProcessPeakMemory:
    options.setdefault("baseline", True)
    return ProcessPeakMemory(nvml=nvml, cuda_uuid=lambda ordinal: uuid, pid=PID, **options)


def test_a_session_reports_what_it_added_not_what_the_process_already_held():
    # 1.5 GiB before the session opens (the CUDA context and an earlier precision's session),
    # 2.25 GiB at its peak: the session's figure is 0.75 GiB, not the process's 2.25.
    nvml = ScriptedNvml("gtx1660.yaml", processes={"gpu0": [[(PID, 3 * GIB // 2), (7, GIB)],
                                                           [(PID, 9 * GIB // 4), (7, 3 * GIB)]]})
    memory = peak(nvml)
    assert memory.read() == 3 * GIB // 4
    assert memory.figure is MemoryFigure.NVML_PROCESS_INCREMENT
    assert memory.matched_by == "uuid"


def test_without_a_baseline_the_figure_is_the_whole_processs_as_before():
    # What a caller that does not ask for a baseline (the TensorRT runner, until it opens its
    # memory reader before its engine) keeps getting, now said to be the whole figure.
    nvml = ScriptedNvml("gtx1660.yaml", processes={"gpu0": [[(PID, 3 * GIB // 2)], [(PID, 9 * GIB // 4)]]})
    memory = peak(nvml, baseline=False)
    assert memory.read() == 9 * GIB // 4
    assert memory.figure is MemoryFigure.NVML_PROCESS


def test_the_peak_is_the_largest_increment_read_and_a_process_new_to_the_gpu_starts_at_zero():
    nvml = ScriptedNvml("gtx1660.yaml", processes={"gpu0": [[], [(PID, 2 * GIB)], [(PID, GIB)]]})
    memory = peak(nvml)
    assert memory.read() == 2 * GIB
    assert memory.read() == 2 * GIB


def test_on_a_mixed_machine_cuda_device_0_is_found_by_uuid_not_by_nvml_index():
    # CUDA numbers the fastest first, NVML by PCI bus: here CUDA's device 0 is said to be the
    # 3060, NVML's second. Only the 3060's process list holds this session.
    nvml = ScriptedNvml("mixed_4090_3060.yaml", processes={
        "gpu0": [[(PID, 8 * GIB)]], "gpu1": [[(PID, GIB)], [(PID, 2 * GIB)]]})
    memory = peak(nvml, uuid=MIXED_3060)
    assert memory.read() == GIB
    assert set(nvml.asked) == {"gpu1"}


@pytest.mark.parametrize(("visible", "order", "expected"), [
    (None, None, None),  # fastest-first on two kinds of card: NVML's order is not CUDA's
    (None, "PCI_BUS_ID", "gpu0"),
    ("1", "PCI_BUS_ID", "gpu1"),
    ("1,0", "PCI_BUS_ID", "gpu1"),
    ("GPU-1a2b3c4d", "PCI_BUS_ID", "gpu1"),  # a UUID prefix, as CUDA_VISIBLE_DEVICES takes it
    ("7", "PCI_BUS_ID", None),  # names no device: CUDA sees none
])
def test_without_a_cuda_uuid_nvml_order_is_used_only_where_it_is_cudas(visible, order, expected):
    nvml = RecordedNvml.from_file(RECORDINGS / "mixed_4090_3060.yaml")
    device = nvml_device_for(nvml, 0, None, visible, order)
    assert (None if device is None else str(device.handle)) == expected
    if device is not None:
        assert device.matched_by == "index"


def test_a_uuid_cuda_gives_with_or_without_its_prefix_matches_the_same_card():
    nvml = RecordedNvml.from_file(RECORDINGS / "mixed_4090_3060.yaml")
    for uuid in (MIXED_4090, MIXED_4090.removeprefix("GPU-"), MIXED_4090.upper()):
        device = nvml_device_for(nvml, 0, uuid)
        assert device is not None and str(device.handle) == "gpu0" and device.uuid == MIXED_4090
    assert nvml_device_for(nvml, 0, "GPU-00000000-0000-0000-0000-000000000000") is None


def test_on_mig_the_process_is_read_from_its_instance_handle():
    # The parent's handle answers aggregates only (with privileges): the instance's answers.
    nvml = ScriptedNvml("a100_mig.yaml", processes={
        "gpu0": [[]], "gpu0-mig1": [[(PID, GIB // 2)], [(PID, GIB)]]})
    memory = peak(nvml, uuid="MIG-7a4e2f19-0001-4c2a-9d1e-5f3b7a0c0001")
    assert memory.read() == GIB // 2
    assert set(nvml.asked) == {"gpu0-mig1"}


@pytest.mark.parametrize("listed", [
    [(1234, 3 * GIB)],  # in a container: NVML lists the host's PID, not ours
    [(PID, 0)],  # a driver that reports nothing
    [(PID, None)],  # NVML_VALUE_NOT_AVAILABLE (WDDM)
], ids=["host-pid", "zero", "none"])
def test_where_nvml_cannot_name_the_process_the_runtimes_figure_is_used_and_said(listed):
    nvml = ScriptedNvml("gtx1660.yaml", processes={"gpu0": [listed]})
    memory = peak(nvml, runtime_bytes=lambda: 600 * 2**20)
    assert memory.read() == 600 * 2**20
    assert memory.figure is MemoryFigure.RUNTIME


def test_without_a_runtime_figure_the_devices_increment_is_used_and_said():
    nvml = ScriptedNvml("gtx1660.yaml", processes={"gpu0": [[(1234, 3 * GIB)]]},
                        used={"gpu0": [5 * GIB, 7 * GIB]})
    memory = peak(nvml)
    assert memory.read() == 2 * GIB
    assert memory.figure is MemoryFigure.NVML_DEVICE_INCREMENT


def test_no_nvml_and_no_runtime_figure_is_no_figure():
    memory = ProcessPeakMemory(nvml=RecordedNvml({"nvmlDeviceGetCount": {"error": "Uninitialized"}}),
                               cuda_uuid=lambda ordinal: None)
    assert memory.read() is None and memory.figure is None and memory.matched_by is None


def test_a_recorded_process_list_replays_as_pynvml_returns_it():
    import pynvml  # noqa: PLC0415 - only its structure type is needed

    class Real:
        NVMLError = pynvml.NVMLError

        def nvmlDeviceGetComputeRunningProcesses(self, handle):  # noqa: N802 - pynvml's name
            return [pynvml.nvmlFriendlyObject({"pid": PID, "usedGpuMemory": GIB})]

    recorder = RecordingNvml(Real())
    recorder.nvmlDeviceGetComputeRunningProcesses("gpu0")
    replayed = RecordedNvml(recorder.answers).nvmlDeviceGetComputeRunningProcesses("gpu0")
    assert [(p.pid, p.usedGpuMemory) for p in replayed] == [(PID, GIB)]
