"""What this machine has: its GPUs through NVML, with the host's CPU and memory beside them.

``probe(nvml)`` takes its NVML source as a parameter: the real ``pynvml`` module by
default, or a :class:`autotune.hardware.nvml_recording.RecordedNvml` replaying another machine.
No NVML library, no driver or no GPU gives a CPU-only :class:`Machine` whose ``note``
says why, never an exception. A Jetson has no NVML at all: there the board is named by
the device tree (:mod:`autotune.hardware.jetson`). The GPUs are those CUDA shows this
process, in CUDA's order (:mod:`autotune.hardware.cuda_devices`); the CPU and memory are
read by :mod:`autotune.hardware.host`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from autotune.hardware import gpu_database as gpudb
from autotune.hardware import jetson
from autotune.hardware.cuda_devices import cuda_device_uuids, order_may_differ, visible_gpus
from autotune.hardware.host import probe_host
from autotune.types import Gpu, Host, Machine, MigSlice

_WHY_NO_NVML = {
    "LibraryNotFound": "no NVIDIA driver: the NVML library (libnvidia-ml) was not found",
    "DriverNotLoaded": "the NVIDIA driver is installed but not loaded",
    "NoPermission": "no permission to query the NVIDIA driver",
    "LibRmVersionMismatch": "the NVIDIA driver and its NVML library versions differ: reboot "
    "after the driver update",
}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _query(nvml: Any, function: Callable[..., Any], *args: Any) -> Any:
    """One NVML answer, or None where this board or driver does not support the call."""
    try:
        return function(*args)
    except nvml.NVMLError:
        return None


def _cuda_version_text(version: int | None) -> str | None:
    # NVML encodes CUDA 12.4 as 12040.
    return None if version is None else f"{version // 1000}.{version % 1000 // 10}"


def _nvlink_active_links(nvml: Any, handle: Any) -> int:
    active = 0
    for link in range(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18)):
        try:
            state = nvml.nvmlDeviceGetNvLinkState(handle, link)
        except nvml.NVMLError:
            break  # no NVLink on this board, or past its last link
        active += state == nvml.NVML_FEATURE_ENABLED
    return active


def _mig_slices(nvml: Any, handle: Any) -> tuple[bool, tuple[MigSlice, ...]]:
    mode = _query(nvml, nvml.nvmlDeviceGetMigMode, handle)
    if not mode or mode[0] != nvml.NVML_DEVICE_MIG_ENABLE:
        return False, ()
    slices = []
    for index in range(_query(nvml, nvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0):
        mig = _query(nvml, nvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, index)
        if mig is None:
            continue  # slot not populated
        memory = _query(nvml, nvml.nvmlDeviceGetMemoryInfo, mig)
        slices.append(MigSlice(
            index=index,
            name=_text(_query(nvml, nvml.nvmlDeviceGetName, mig) or f"MIG {index}"),
            uuid=_text(_query(nvml, nvml.nvmlDeviceGetUUID, mig) or ""),
            memory_total_bytes=int(memory.total) if memory else 0,
        ))
    return True, tuple(slices)


def _probe_gpu(nvml: Any, index: int) -> Gpu:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name = _text(nvml.nvmlDeviceGetName(handle))
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    capability = _query(nvml, nvml.nvmlDeviceGetCudaComputeCapability, handle)
    compute_capability = f"{capability[0]}.{capability[1]}" if capability else "unknown"
    bus_width_bits = _query(nvml, nvml.nvmlDeviceGetMemoryBusWidth, handle)
    memory_clock_mhz = _query(nvml, nvml.nvmlDeviceGetMaxClockInfo, handle, nvml.NVML_CLOCK_MEM)
    bandwidth_gb_s = (
        # Double data rate: two transfers per clock over a bus of that many bits.
        round(2 * memory_clock_mhz * 1e6 * bus_width_bits / 8 / 1e9, 1)
        if bus_width_bits and memory_clock_mhz
        else None
    )
    power_limit_mw = _query(nvml, nvml.nvmlDeviceGetPowerManagementLimit, handle)
    mig_enabled, mig_slices = _mig_slices(nvml, handle)

    spec = gpudb.match_probed(name, int(memory.total))
    if spec is not None:
        architecture, tensor_cores, sm_count = spec.architecture, spec.tensor_cores, spec.sm_count
    else:
        architecture = gpudb.architecture_for(
            _query(nvml, nvml.nvmlDeviceGetArchitecture, handle), compute_capability
        )
        tensor_cores, sm_count = gpudb.has_tensor_cores(architecture, name), None
    return Gpu(
        index=index,
        name=name,
        uuid=_text(_query(nvml, nvml.nvmlDeviceGetUUID, handle) or "") or None,
        compute_capability=compute_capability,
        architecture=architecture,
        sm_count=sm_count,
        vram_total_bytes=int(memory.total),
        vram_free_bytes=int(memory.free),
        memory_bus_width_bits=bus_width_bits,
        max_memory_clock_mhz=memory_clock_mhz,
        memory_bandwidth_gb_s=bandwidth_gb_s,
        pcie_generation=_query(nvml, nvml.nvmlDeviceGetMaxPcieLinkGeneration, handle),
        pcie_width=_query(nvml, nvml.nvmlDeviceGetMaxPcieLinkWidth, handle),
        nvlink_active_links=_nvlink_active_links(nvml, handle),
        mig_enabled=mig_enabled,
        mig_slices=mig_slices,
        power_limit_w=None if power_limit_mw is None else power_limit_mw / 1000,
        tensor_cores=tensor_cores,
        tensor_core_precisions=gpudb.tensor_core_precisions_for(architecture, tensor_cores),
        precisions=gpudb.precisions_for(architecture, tensor_cores, compute_capability),
        spec_name=spec.name if spec else None,
    )


def _replays_another_machine(nvml: Any) -> bool:
    """Whether ``nvml`` replays a recording, whose machine's device tree is not this one's."""
    # Only a loaded nvml_recording module can have made a RecordedNvml: looking it up
    # costs the real library's probe no import.
    recording = sys.modules.get("autotune.hardware.nvml_recording")
    return recording is not None and isinstance(nvml, recording.RecordedNvml)


# Matching CUDA's UUIDs to the GPUs NVML found: NVML's side, so it stays beside the probe
# (the NVML peak reader in plugins/common matches by uuid_hex too).
def uuid_hex(uuid: str) -> str:
    """``GPU-0f9e8d7c-6b5a-...``, ``MIG-...`` or a bare UUID -> its hex digits, lower case."""
    text = uuid.strip().lower()
    for prefix in ("gpu-", "mig-"):
        text = text.removeprefix(prefix)
    return text.replace("-", "")


def in_cuda_order(gpus: Sequence[Gpu], cuda_uuids: Sequence[str]) -> list[Gpu] | None:
    """``gpus`` as CUDA numbers them: the GPU (or the GPU holding the MIG instance) of each
    UUID CUDA listed, in its order; None when CUDA lists a device NVML does not show."""
    ordered: list[Gpu] = []
    for wanted in map(uuid_hex, cuda_uuids):
        match = next((gpu for gpu in gpus if wanted in {
            uuid_hex(uuid) for uuid in (gpu.uuid, *(mig.uuid for mig in gpu.mig_slices)) if uuid}), None)
        if match is None:
            return None
        if match not in ordered:
            ordered.append(match)
    return ordered


def probe(nvml: Any = None, host: Host | None = None,
          cuda_visible_devices: str | None = None, device_tree: Path | None = None,
          cuda_uuids: Sequence[str] | None = None) -> Machine:
    """Describe this machine; ``nvml`` defaults to the real library.

    ``cuda_visible_devices`` defaults to the environment's ``CUDA_VISIBLE_DEVICES``: the
    recommendation is for the GPUs this process may use. ``device_tree`` is read only where
    there is no NVML library (a Jetson has none) to name the board; it defaults to this
    machine's :data:`autotune.hardware.jetson.DEVICE_TREE`, except for ``nvml`` replaying a
    recording, which describes another machine.

    ``cuda_uuids`` are the UUIDs CUDA enumerates, in its order: the GPUs are then listed as
    CUDA numbers them (its device 0 first), ``CUDA_VISIBLE_DEVICES`` already applied by
    CUDA. With the real library on a machine of more than one kind of GPU (where CUDA's
    fastest-first order may not be NVML's bus order), they are asked of the CUDA driver.
    """
    if cuda_visible_devices is None:
        cuda_visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    host = host or probe_host()
    real_library = nvml is None
    if nvml is None:
        try:
            import pynvml as nvml  # noqa: PLC0415 - only the probe pays for it
        except ImportError:
            as_jetson = jetson.jetson_machine(device_tree or jetson.DEVICE_TREE, host, cuda_visible_devices)
            return as_jetson or Machine(host=host, gpus=(), note="nvidia-ml-py is not installed")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as error:
        reason = type(error).__name__.removeprefix("NVMLError_")
        if reason == "LibraryNotFound":
            if device_tree is None and not _replays_another_machine(nvml):
                device_tree = jetson.DEVICE_TREE
            if device_tree is not None:
                as_jetson = jetson.jetson_machine(device_tree, host, cuda_visible_devices)
                if as_jetson is not None:
                    return as_jetson
        return Machine(host=host, gpus=(), note=_WHY_NO_NVML.get(reason, f"NVML: {error}"))
    try:
        driver = _query(nvml, nvml.nvmlSystemGetDriverVersion)
        cuda = _query(nvml, nvml.nvmlSystemGetCudaDriverVersion)
        count = _query(nvml, nvml.nvmlDeviceGetCount) or 0
        gpus, silent = [], []
        for index in range(count):
            try:
                gpus.append(_probe_gpu(nvml, index))
            except nvml.NVMLError as error:  # a lost or resetting board: describe the rest
                silent.append(f"GPU {index} did not answer NVML ({error})")
    finally:
        _query(nvml, nvml.nvmlShutdown)
    if cuda_uuids is None and real_library and order_may_differ(gpus):
        cuda_uuids = cuda_device_uuids()
    in_order = in_cuda_order(gpus, cuda_uuids) if cuda_uuids is not None else None
    visible = in_order if in_order is not None else visible_gpus(gpus, cuda_visible_devices)
    if gpus and not visible:
        silent.append(f"CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} hides every GPU")
    elif not gpus:
        silent.append("the NVIDIA driver is loaded but shows no usable GPU")
    gpus = visible
    return Machine(
        host=host,
        gpus=tuple(gpus),
        driver_version=None if driver is None else _text(driver),
        cuda_driver_version=_cuda_version_text(cuda),
        note="; ".join(silent) or None,
    )
