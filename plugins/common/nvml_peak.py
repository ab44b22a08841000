"""A session's own peak GPU memory from NVML, for runtimes that keep no counter of their own
(ONNX Runtime's CUDA and TensorRT providers, TensorRT): their allocators keep what they
took, so the largest reading after the steps is the peak.

Three things make NVML's raw per-process figure the wrong answer, and each is handled here:

* It is the whole process's: the CUDA context and every session still alive are in it. A
  :class:`ProcessPeakMemory` made with ``baseline=True`` reads the figure when it is made —
  just before its session opens — and reports the peak *increment* over it
  (:data:`MemoryFigure.NVML_PROCESS_INCREMENT`); without, the whole figure, as before
  (:data:`MemoryFigure.NVML_PROCESS`).
* NVML numbers GPUs by PCI bus; CUDA, unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, fastest
  first, and ``CUDA_VISIBLE_DEVICES`` (indexes in CUDA's order, or UUIDs) renumbers them. The
  NVML device is found by the UUID CUDA gives for the ordinal (:func:`nvml_device_for`), a
  MIG instance by its own handle: per-process figures on MIG come from the instance's handle
  only (NVML's ``nvmlDeviceGetComputeRunningProcesses``: "In MIG mode, if device handle is
  provided, the API returns aggregate information, only if the caller has appropriate
  privileges. Per-instance information can be queried by using specific MIG device handles").
* Inside a container NVML lists host PIDs, so nothing matches ``os.getpid()``; some drivers
  report ``usedGpuMemory`` as 0 or None (WDDM: NVML_VALUE_NOT_AVAILABLE, per
  ``nvmlProcessInfo_t``). Then the runtime's own figure is used where the caller has one
  (:data:`MemoryFigure.RUNTIME`), else the device's used-memory increment
  (:data:`MemoryFigure.NVML_DEVICE_INCREMENT`, which other processes' changes also move).

Which figure a reading is, is :attr:`ProcessPeakMemory.figure`: never a guess left unsaid.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autotune.sdk.cuda import probe, uuid_hex
from autotune.sdk.running import MemoryFigure


@functools.cache
def first_visible_gpu_index() -> int | None:
    """NVML's index of the first GPU ``CUDA_VISIBLE_DEVICES`` leaves, as the probe reads it
    (NVML's order: CUDA's device 0 only under ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or on a
    machine of one kind of GPU; :func:`nvml_device_for` matches by UUID instead)."""
    gpus = probe().gpus
    return gpus[0].index if gpus else None


def _uuid_text(raw: bytes) -> str:
    """CUDA's 16 UUID bytes in NVML's dashed form (8-4-4-4-12), without the prefix."""
    digits = raw.hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:32]}"


def _uuid_from_torch(ordinal: int) -> str | None:
    torch = sys.modules.get("torch")  # only where torch is loaded already: never imported for this
    if torch is None or not torch.cuda.is_available():
        return None
    # A uuid.UUID of cudaDeviceProp.uuid, CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER applied.
    return str(torch.cuda.get_device_properties(ordinal).uuid)


def _uuid_from_driver(ordinal: int) -> str | None:
    """The CUDA driver API's UUID for ``ordinal``, which numbers devices as every CUDA
    runtime in this process does (the same environment variables)."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    raw = ctypes.create_string_buffer(16)  # CUuuid: char bytes[16]
    device = ctypes.c_int()
    # cuDeviceGetUuid_v2 (CUDA >= 11.4): "If the device is in MIG mode, returns its MIG UUID
    # which uniquely identifies the subscribed MIG compute instance" (CUDA driver API
    # reference), the UUID NVML gives that instance's handle; the plain name where a newer
    # driver has only that one.
    get_uuid = getattr(cuda, "cuDeviceGetUuid_v2", None) or getattr(cuda, "cuDeviceGetUuid", None)
    if get_uuid is None or cuda.cuInit(0) != 0 or cuda.cuDeviceGet(ctypes.byref(device), ordinal) != 0:
        return None
    if get_uuid(raw, device) != 0:
        return None
    return _uuid_text(raw.raw)


def cuda_device_uuid(ordinal: int) -> str | None:
    """The UUID CUDA gives its device ``ordinal`` in this process, or None where no CUDA
    answers: the driver's (documented for MIG), else torch's where torch is loaded."""
    try:
        return _uuid_from_driver(ordinal) or _uuid_from_torch(ordinal)
    except Exception:  # noqa: BLE001 - a CUDA that cannot answer: matched by index instead
        return None


@dataclass(frozen=True)
class NvmlDevice:
    """The NVML handle of a CUDA device and how it was found: ``"uuid"`` (matched), or
    ``"index"`` (NVML's order taken as CUDA's, which holds under ``PCI_BUS_ID`` and on a
    machine of one kind of GPU)."""

    handle: Any
    uuid: str | None
    matched_by: str


def _nvml_devices(nvml: Any) -> list[tuple[Any, str | None, str | None]]:
    """(handle, UUID, name) of every NVML device and, under each GPU in MIG mode, its MIG
    instances, in NVML's order."""
    devices = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        devices.append((handle, _answer(nvml, nvml.nvmlDeviceGetUUID, handle),
                        _answer(nvml, nvml.nvmlDeviceGetName, handle)))
        mode = _answer(nvml, nvml.nvmlDeviceGetMigMode, handle)
        if not mode or mode[0] != nvml.NVML_DEVICE_MIG_ENABLE:
            continue
        for slot in range(_answer(nvml, nvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0):
            mig = _answer(nvml, nvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, slot)
            if mig is not None:
                devices.append((mig, _answer(nvml, nvml.nvmlDeviceGetUUID, mig), None))
    return devices


def _answer(nvml: Any, function: Callable[..., Any], *args: Any) -> Any:
    try:
        answer = function(*args)
    except nvml.NVMLError:
        return None
    return answer.decode() if isinstance(answer, bytes) else answer


def nvml_device_for(nvml: Any, ordinal: int, cuda_uuid: str | None,
                    cuda_visible_devices: str | None = None,
                    cuda_device_order: str | None = None) -> NvmlDevice | None:
    """NVML's device for CUDA's device ``ordinal``, or None where it cannot be told.

    By UUID when CUDA gave one (``cuda_uuid``: a GPU's or a MIG instance's, with or without
    its ``GPU-``/``MIG-`` prefix). Without one, by position: ``CUDA_VISIBLE_DEVICES`` entries
    (indexes or UUID prefixes) pick and order the GPUs, taken in NVML's order, which is
    CUDA's only under ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or when every GPU is the same kind
    (fastest-first cannot reorder equals); elsewhere, None rather than another card.
    """
    devices = _nvml_devices(nvml)
    if cuda_uuid:
        wanted = uuid_hex(cuda_uuid)
        for handle, uuid, _ in devices:
            if uuid and uuid_hex(uuid) == wanted:
                return NvmlDevice(handle, uuid, "uuid")
        return None
    gpus = [(handle, uuid, name) for handle, uuid, name in devices if name is not None]  # no MIG
    names = {name for _, _, name in gpus}
    if cuda_device_order != "PCI_BUS_ID" and len(names) > 1:
        return None
    visible = gpus
    if cuda_visible_devices is not None:
        visible = []
        for entry in (item.strip() for item in cuda_visible_devices.split(",")):
            found = next((gpu for position, gpu in enumerate(gpus)
                          if (entry.isdigit() and position == int(entry))
                          or (entry and gpu[1] and uuid_hex(gpu[1]).startswith(uuid_hex(entry)))), None)
            if found is None:
                break  # CUDA stops at the first entry that names no device
            visible.append(found)
    if ordinal >= len(visible):
        return None
    handle, uuid, _ = visible[ordinal]
    return NvmlDevice(handle, uuid, "index")


@dataclass(frozen=True)
class _Reading:
    process_bytes: int | None  # this process's NVML figure; None: NVML does not list it
    device_used_bytes: int | None


class ProcessPeakMemory:
    """This process's memory on CUDA device ``device_ordinal``, the largest reading so far;
    with ``baseline``, what one session adds to it.

    With ``baseline``, make it just before the session allocates (the baseline is read
    then); :meth:`read` after steps. ``runtime_bytes`` is the runtime's own figure for what the session holds,
    used where NVML cannot name this process. ``nvml``, ``cuda_uuid`` and ``pid`` are for
    tests (a :class:`autotune.hardware.nvml_recording.RecordedNvml` or a fake); by default the real
    library, :func:`cuda_device_uuid` and this process.
    """

    def __init__(self, device_ordinal: int = 0, *, baseline: bool = False, nvml: Any = None,
                 cuda_uuid: Callable[[int], str | None] = cuda_device_uuid, pid: int | None = None,
                 runtime_bytes: Callable[[], int | None] | None = None) -> None:
        #: The largest increment read so far, in bytes (None: none read).
        self.peak: int | None = None
        #: Which figure :attr:`peak` is; None until a read gave one.
        self.figure: MemoryFigure | None = None
        #: How the NVML device was found (``uuid`` | ``index``), or None: no NVML figure.
        self.matched_by: str | None = None
        self._pid = os.getpid() if pid is None else pid
        self._since_baseline = baseline
        self._runtime_bytes = runtime_bytes
        self._nvml: Any = None
        self._device: NvmlDevice | None = None
        self._baseline = _Reading(None, None)
        try:
            if nvml is None:
                import pynvml as nvml  # noqa: PLC0415 - NVML is there wherever a GPU runtime runs

                nvml.nvmlInit()
            device = nvml_device_for(nvml, device_ordinal, cuda_uuid(device_ordinal),
                                     os.environ.get("CUDA_VISIBLE_DEVICES"),
                                     os.environ.get("CUDA_DEVICE_ORDER"))
        except Exception:  # noqa: BLE001 - no NVML: only the runtime's figure, if any
            device = None
        if device is not None:
            self._nvml, self._device, self.matched_by = nvml, device, device.matched_by
            self._baseline = self._reading()

    def _reading(self) -> _Reading:
        nvml, handle = self._nvml, self._device.handle if self._device else None
        if nvml is None:
            return _Reading(None, None)
        try:
            processes = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
        except nvml.NVMLError:  # a driver without per-process accounting
            processes = []
        mine = [p.usedGpuMemory for p in processes if p.pid == self._pid]
        # 0 or None beside our PID: the driver cannot tell (WDDM), not "nothing used".
        known = [int(used) for used in mine if used]
        process_bytes = max(known) if known and len(known) == len(mine) else None
        memory = _answer(nvml, nvml.nvmlDeviceGetMemoryInfo, handle)
        return _Reading(process_bytes, int(memory.used) if memory is not None else None)

    def read(self) -> int | None:
        """The peak so far in bytes (with ``baseline``, the session's increment), or None
        where no figure exists; :attr:`figure` says which figure it is. The fallbacks
        (the runtime's figure, the device's) are what the session added either way."""
        now = self._reading()
        increment: int | None = None
        figure: MemoryFigure | None = None
        if now.process_bytes is not None and not self._since_baseline:
            increment, figure = now.process_bytes, MemoryFigure.NVML_PROCESS
        elif now.process_bytes is not None:
            # Not listed at the baseline: the process had no context on this GPU yet.
            increment, figure = now.process_bytes - (self._baseline.process_bytes or 0), \
                MemoryFigure.NVML_PROCESS_INCREMENT
        elif self._runtime_bytes is not None and (own := self._runtime_bytes()) is not None:
            increment, figure = own, MemoryFigure.RUNTIME
        elif now.device_used_bytes is not None and self._baseline.device_used_bytes is not None:
            increment, figure = now.device_used_bytes - self._baseline.device_used_bytes, \
                MemoryFigure.NVML_DEVICE_INCREMENT
        if increment is None:
            return self.peak
        if figure is not self.figure:  # a different figure is not the same peak
            self.peak = None
        self.peak, self.figure = max(self.peak or 0, max(increment, 0)), figure
        return self.peak
