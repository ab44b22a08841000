"""The GPUs CUDA shows this process: ``CUDA_VISIBLE_DEVICES``, and the UUIDs in CUDA's own order.

NVML numbers GPUs by PCI bus; CUDA, by default, fastest first. The probe filters NVML's
GPUs by ``CUDA_VISIBLE_DEVICES`` (:func:`visible_gpus`) and, where the two orders may
differ (:func:`order_may_differ`), asks the CUDA driver for its devices' UUIDs
(:func:`cuda_device_uuids`) to list them as CUDA numbers them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from autotune.types import Gpu


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


def order_may_differ(gpus: Sequence[Gpu]) -> bool:
    """Whether CUDA's numbering may differ from NVML's: by default CUDA enumerates the
    fastest GPU first, NVML by PCI bus; GPUs of one kind stay in bus order either way."""
    return os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID" and len({gpu.name for gpu in gpus}) > 1
