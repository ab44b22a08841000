"""What this machine has: its GPUs through NVML, its CPU and memory from the OS.

``probe(nvml)`` takes its NVML source as a parameter: the real ``pynvml`` module by
default, or a :class:`autotune.hardware.nvml_recording.RecordedNvml` replaying another machine.
No NVML library, no driver or no GPU gives a CPU-only :class:`Machine` whose ``note``
says why, never an exception. A Jetson has no NVML at all: there the board is named by
the device tree (``/proc/device-tree/model``) and its GPU described from the spec
database.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from autotune.hardware import gpu_database as gpudb
from autotune.types import Gpu, Host, Machine, MigSlice

_WHY_NO_NVML = {
    "LibraryNotFound": "no NVIDIA driver: the NVML library (libnvidia-ml) was not found",
    "DriverNotLoaded": "the NVIDIA driver is installed but not loaded",
    "NoPermission": "no permission to query the NVIDIA driver",
    "LibRmVersionMismatch": "the NVIDIA driver and its NVML library versions differ: reboot "
    "after the driver update",
}

#: Where Linux shows the firmware's device tree, in which a Jetson names its board. Read
#: only where NVML is missing, so a machine with the NVIDIA desktop driver never reads it.
DEVICE_TREE = Path("/proc/device-tree")
#: The kernel's memory figures: a Jetson's GPU allocates from the RAM the CPU also uses.
MEMINFO = Path("/proc/meminfo")
# A Jetson's database entry may miss by the RAM the firmware reserves for itself (a 64 GB
# AGX Orin shows about 61 GiB), not by a whole variant (the 32 GB AGX Orin shares its name).
_JETSON_RAM_TOLERANCE = 0.25


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


def _device_tree_strings(path: Path) -> list[str]:
    """A device-tree property's NUL-separated strings; empty where the file is missing."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    return [text.strip() for text in data.decode("utf-8", "replace").split("\0") if text.strip()]


def _available_ram_bytes() -> int | None:
    """``MemAvailable`` from :data:`MEMINFO`: what a new allocation can still get."""
    try:
        for line in MEMINFO.read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "MemAvailable":
                return int(value.split()[0]) * 1024  # the kernel counts in KiB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _jetson_board_name(model: str) -> str:
    """``"NVIDIA Jetson AGX Orin Developer Kit"`` -> ``"NVIDIA Jetson AGX Orin"``: the kit's
    carrier board is no part of the GPU, and the database names modules."""
    name = re.sub(r"\b(engineering\s+reference\s+)?developer\s+kit\b|\bdevkit\b", " ", model,
                  flags=re.IGNORECASE)
    return " ".join(name.split())


def _jetson_gpu(spec: gpudb.GpuSpec, host: Host) -> Gpu:
    """The Jetson's GPU: the database entry, with this board's own memory figures.

    The GPU has no memory of its own: it allocates from the board's RAM, shared with the
    CPU, so the total is the RAM the kernel manages (less than the datasheet's by what the
    firmware reserves) and the free memory is ``MemAvailable``, the live reading NVML's
    ``free`` stands for elsewhere; the spec's figure only where the host reports no RAM.
    """
    total_bytes = host.ram_bytes or int(spec.vram_gb * gpudb.GIB)
    available_bytes = _available_ram_bytes()
    free_bytes = total_bytes if available_bytes is None else min(available_bytes, total_bytes)
    # simulated_gpu turns a database entry into a Gpu; this one is the machine's own, though.
    return dataclasses.replace(gpudb.simulated_gpu(spec, 0), vram_total_bytes=total_bytes,
                               vram_free_bytes=free_bytes, simulated=False)


def _jetson_spec(board: str, ram_bytes: int) -> tuple[gpudb.GpuSpec | None, str]:
    """The database entry for a Jetson board, or None and why there is none.

    Matched by exact name or alias only (never by the words ``resolve`` accepts from a
    user), and only when the board's RAM is that entry's: an AGX Orin 32 GB calls itself
    "Jetson AGX Orin" as the 64 GB one does, yet has fewer SMs.
    """
    spec = gpudb.match_probed(board, ram_bytes)
    if spec is None or spec.form_factor != "embedded":
        return None, "is not in the spec database"
    spec_bytes = spec.vram_gb * gpudb.GIB
    if ram_bytes and abs(ram_bytes - spec_bytes) > _JETSON_RAM_TOLERANCE * spec_bytes:
        return None, (f"has {ram_bytes / gpudb.GIB:.0f} GiB of memory where the spec database's "
                      f"{spec.name} has {spec.vram_gb:.0f} GB: a variant the database lacks")
    return spec, ""


def _jetson_machine(device_tree: Path, host: Host, cuda_visible_devices: str | None) -> Machine | None:
    """This machine as a Jetson, named by its device tree; None where it is not one.

    A Jetson whose board the spec database lacks gets no GPU and a note saying so: its
    figures are never borrowed from another board's entry.
    """
    model = " ".join(_device_tree_strings(device_tree / "model"))
    compatible = _device_tree_strings(device_tree / "compatible")
    tegra = next((entry for entry in compatible if entry.startswith("nvidia,tegra")), "")
    # A Raspberry Pi has a device tree too: only an NVIDIA Tegra board is a Jetson.
    if not (tegra or re.match(r"nvidia\b|.*\bjetson\b", model, re.IGNORECASE)):
        return None
    shown = model or tegra
    spec, missing = _jetson_spec(_jetson_board_name(model) or tegra, host.ram_bytes)
    if spec is None:
        return Machine(host=host, gpus=(), note=(
            f"{shown} (named by the device tree; Jetson has no NVML) {missing}: add its entry "
            f"to profiles/gpus.yaml"))
    # The summary beside this note names the entry already: the note names the board.
    notes = [f"recognised from the device tree as {shown} (Jetson has no NVML); its GPU memory "
             f"is the RAM it shares with the CPU"]
    gpus = visible_gpus([_jetson_gpu(spec, host)], cuda_visible_devices)
    if not gpus:
        notes.append(f"CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} hides every GPU")
    return Machine(host=host, gpus=tuple(gpus), note="; ".join(notes))


def _replays_another_machine(nvml: Any) -> bool:
    """Whether ``nvml`` replays a recording, whose machine's device tree is not this one's."""
    # Only a loaded nvml_recording module can have made a RecordedNvml: looking it up
    # costs the real library's probe no import.
    recording = sys.modules.get("autotune.hardware.nvml_recording")
    return recording is not None and isinstance(nvml, recording.RecordedNvml)


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


def uuid_hex(uuid: str) -> str:
    """``GPU-0f9e8d7c-6b5a-...``, ``MIG-...`` or a bare UUID -> its hex digits, lower case."""
    text = uuid.strip().lower()
    for prefix in ("gpu-", "mig-"):
        text = text.removeprefix(prefix)
    return text.replace("-", "")


#: Asks the CUDA driver API for its devices' UUIDs in CUDA's own order (CUDA_DEVICE_ORDER and
#: CUDA_VISIBLE_DEVICES applied by the driver), one hex line each. cuDeviceGetUuid_v2 gives a
#: MIG instance's own UUID ("If the device is in MIG mode, returns its MIG UUID", CUDA driver
#: API reference). Run in a child: this process never initialises CUDA (a process that did
#: cannot hand CUDA on to a forked child), and a driver that hangs costs a timeout.
_CUDA_UUIDS_SCRIPT = """
import ctypes, sys
cuda = ctypes.CDLL("libcuda.so.1")
get = getattr(cuda, "cuDeviceGetUuid_v2", None) or cuda.cuDeviceGetUuid
count = ctypes.c_int()
if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
    sys.exit(1)
for ordinal in range(count.value):
    device, raw = ctypes.c_int(), ctypes.create_string_buffer(16)
    if cuda.cuDeviceGet(ctypes.byref(device), ordinal) != 0 or get(raw, device) != 0:
        sys.exit(1)
    print(raw.raw.hex())
"""


def cuda_device_uuids(timeout_s: float = 20.0) -> tuple[str, ...] | None:
    """The UUIDs (hex digits) of the devices CUDA enumerates here, in CUDA's order; None
    where the CUDA driver does not answer."""
    # Imported here: only a machine with more than one kind of GPU asks, and the recommend
    # path (which imports this module) stays free of subprocess's import.
    import subprocess  # noqa: PLC0415

    try:
        result = subprocess.run([sys.executable, "-c", _CUDA_UUIDS_SCRIPT], capture_output=True,
                                text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return tuple(result.stdout.split()) if result.returncode == 0 else None


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


def _order_may_differ(gpus: Sequence[Gpu]) -> bool:
    """Whether CUDA's numbering may differ from NVML's: by default CUDA enumerates the
    fastest GPU first, NVML by PCI bus; GPUs of one kind stay in bus order either way."""
    return os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID" and len({gpu.name for gpu in gpus}) > 1


def probe(nvml: Any = None, host: Host | None = None,
          cuda_visible_devices: str | None = None, device_tree: Path | None = None,
          cuda_uuids: Sequence[str] | None = None) -> Machine:
    """Describe this machine; ``nvml`` defaults to the real library.

    ``cuda_visible_devices`` defaults to the environment's ``CUDA_VISIBLE_DEVICES``: the
    recommendation is for the GPUs this process may use. ``device_tree`` is read only where
    there is no NVML library (a Jetson has none) to name the board; it defaults to this
    machine's :data:`DEVICE_TREE`, except for ``nvml`` replaying a recording, which
    describes another machine.

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
            jetson = _jetson_machine(device_tree or DEVICE_TREE, host, cuda_visible_devices)
            return jetson or Machine(host=host, gpus=(), note="nvidia-ml-py is not installed")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as error:
        reason = type(error).__name__.removeprefix("NVMLError_")
        if reason == "LibraryNotFound":
            if device_tree is None and not _replays_another_machine(nvml):
                device_tree = DEVICE_TREE
            jetson = _jetson_machine(device_tree, host, cuda_visible_devices) if device_tree else None
            if jetson is not None:
                return jetson
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
    if cuda_uuids is None and real_library and _order_may_differ(gpus):
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
