"""What this machine has: its GPUs through NVML, its CPU and memory from the OS.

``probe(nvml)`` takes its NVML source as a parameter: the real ``pynvml`` module by
default, or a :class:`autotune.nvml_recording.RecordedNvml` replaying another machine.
No NVML library, no driver or no GPU gives a CPU-only :class:`Machine` whose ``note``
says why, never an exception.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autotune import gpudb
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
        precisions=gpudb.precisions_for(architecture, tensor_cores),
        spec_name=spec.name if spec else None,
    )


def _cgroup_cpu_limit() -> int | None:
    """The container's CPU quota (cgroup v2 ``cpu.max``), which affinity does not show."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))


def probe_host() -> Host:
    """CPU model, core counts (logical, physical, usable by this process) and RAM."""
    logical = os.cpu_count() or 1
    # platform.processor() runs `uname -p` in a subprocess on Linux: /proc/cpuinfo first.
    cpu_model, cores, flags = "", set(), set()
    try:
        physical_id = "0"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name":
                cpu_model = value
            elif key == "flags" and not flags:
                flags = set(value.split())
            elif key == "physical id":
                physical_id = value
            elif key == "core id":
                cores.add((physical_id, value))
    except OSError:
        pass  # not Linux: the platform module answers below
    cpu_model = cpu_model or platform.processor() or platform.machine()
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    cgroup_limit = _cgroup_cpu_limit()
    if cgroup_limit is not None:
        available = min(available, cgroup_limit)
    try:
        ram_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        ram_bytes = 0
    return Host(
        cpu_model=cpu_model,
        logical_cores=logical,
        physical_cores=len(cores) or logical,
        available_cores=available,
        ram_bytes=ram_bytes,
        os=f"{platform.system()} {platform.release()}",
        bf16=bool(flags & {"avx512_bf16", "amx_bf16"}),
    )


def visible_gpus(gpus: list[Gpu], cuda_visible_devices: str | None) -> list[Gpu]:
    """The GPUs a CUDA program here would see, by ``CUDA_VISIBLE_DEVICES`` semantics.

    Entries are indexes or (prefixes of) GPU or MIG UUIDs; like CUDA, the list ends at the
    first entry that names no device. Indexes are NVML's, which is CUDA's order under
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID``.
    """
    if cuda_visible_devices is None:
        return gpus
    visible: list[Gpu] = []
    for entry in (item.strip() for item in cuda_visible_devices.split(",")):
        match = None
        for gpu in gpus:
            uuids = [gpu.uuid or "", *(mig.uuid for mig in gpu.mig_slices)]
            if (entry.isdigit() and gpu.index == int(entry)) or (
                entry and any(uuid.startswith(entry) or uuid.startswith(f"GPU-{entry}")
                              for uuid in uuids if uuid)
            ):
                match = gpu
                break
        if match is None:
            break
        if match not in visible:
            visible.append(match)
    return visible


def probe(nvml: Any = None, host: Host | None = None,
          cuda_visible_devices: str | None = None) -> Machine:
    """Describe this machine; ``nvml`` defaults to the real library.

    ``cuda_visible_devices`` defaults to the environment's ``CUDA_VISIBLE_DEVICES``: the
    recommendation is for the GPUs this process may use.
    """
    if cuda_visible_devices is None:
        cuda_visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    host = host or probe_host()
    if nvml is None:
        try:
            import pynvml as nvml  # noqa: PLC0415 - only the probe pays for it
        except ImportError:
            return Machine(host=host, gpus=(), note="nvidia-ml-py is not installed")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as error:
        reason = type(error).__name__.removeprefix("NVMLError_")
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
    if gpus and not visible_gpus(gpus, cuda_visible_devices):
        silent.append(f"CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} hides every GPU")
    elif not gpus:
        silent.append("the NVIDIA driver is loaded but shows no usable GPU")
    gpus = visible_gpus(gpus, cuda_visible_devices)
    return Machine(
        host=host,
        gpus=tuple(gpus),
        driver_version=None if driver is None else _text(driver),
        cuda_driver_version=_cuda_version_text(cuda),
        note="; ".join(silent) or None,
    )
