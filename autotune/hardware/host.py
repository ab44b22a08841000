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

#: Where cgroups are mounted; tests pass their own tree.
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_cgroup_paths(proc_self_cgroup: Path) -> list[str]:
    """This process's cgroup paths (v2's ``0::/path``, v1's ``N:cpu,cpuacct:/path``), "/" if unread."""
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        return ["/"]
    return [line.split(":", 2)[2] for line in lines if line.count(":") >= 2] or ["/"]


def _quota(text_quota: str, text_period: str) -> float | None:
    if text_quota in ("max", "-1"):
        return None
    quota, period = int(text_quota), int(text_period)
    return quota / period if quota > 0 and period > 0 else None


def _read_quota(folder: Path) -> float | None:
    """The CPU quota in cores a cgroup folder sets: v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``
    over ``cpu.cfs_period_us``; None where it sets none."""
    try:
        return _quota(*(folder / "cpu.max").read_text().split()[:2])
    except (OSError, ValueError, TypeError):
        pass
    try:
        return _quota((folder / "cpu.cfs_quota_us").read_text().strip(),
                      (folder / "cpu.cfs_period_us").read_text().strip())
    except (OSError, ValueError):
        return None


PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> float | None:
    """The tightest CPU quota, in cores, on this process's cgroup and its parents — cgroup v2
    (``cpu.max``) or v1 (``cpu/cpu.cfs_quota_us``): a container's limit, which affinity does
    not show. None where none is set."""
    found: list[float] = []
    for own in _own_cgroup_paths(proc_self_cgroup):
        parts = [part for part in own.split("/") if part]
        for base in (root, root / "cpu", root / "cpu,cpuacct"):
            # A container sees its own cgroup at the root; a host process at its path below.
            for depth in range(len(parts), -1, -1):
                quota = _read_quota(base.joinpath(*parts[:depth]))
                if quota is not None:
                    found.append(quota)
    return min(found, default=None)


def usable_cores(root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """The cores this process may really use: its CPU affinity, capped by the cgroup quota
    (rounded up: 1.5 cores of quota run two threads, each throttled part of the time)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(root, proc_self_cgroup)
    return available if quota is None else max(1, min(available, math.ceil(quota)))


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
    available = usable_cores()
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
