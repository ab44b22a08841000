"""This machine's CPU and memory as the OS reports them: model, cores, RAM, BF16 support.

The probe's host half, asked on every ``autotune recommend`` and by the simulated machines
(``--gpu``), which need no NVML. The cores this process may use are its CPU affinity,
capped by a container's cgroup CPU quota, which affinity does not show.
"""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path

from autotune.types import Host


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
