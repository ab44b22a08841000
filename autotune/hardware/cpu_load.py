"""How busy this process's CPUs are, read before a CPU measurement: what other processes
take of the cores it may use decides the thread count, and says when figures may be off.

Read from ``/proc/stat`` over a short window (the standard library only): the busy time of
each CPU in this process's affinity, while this process sleeps, is other processes' work.
Where ``/proc/stat`` is missing (not Linux) the CPUs count as idle.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from autotune.hardware.host import usable_cores

#: Other processes' work, in cores, from which the machine counts as busy.
BUSY_CORES = 0.5


@dataclass(frozen=True)
class CpuLoad:
    """The cores this process may use and how many of them other processes kept busy."""

    usable_cores: int
    #: Cores' worth of other processes' work on this process's CPUs over the window.
    busy_cores: float
    window_s: float

    @property
    def free_cores(self) -> int:
        """The usable cores other processes leave free, at least one."""
        return max(1, min(self.usable_cores, round(self.usable_cores - self.busy_cores)))

    @property
    def busy(self) -> bool:
        return self.busy_cores >= BUSY_CORES

    def line(self) -> str:
        """One line for the user when the machine is busy."""
        return (f"the CPU is busy: other processes kept {self.busy_cores:.1f} of the {self.usable_cores} "
                f"cores this process may use busy; measured with {self.free_cores} thread(s) for the free "
                "ones, and the figures may be off and vary between runs")

    def to_dict(self) -> dict[str, float | int | bool]:
        return {"usable_cores": self.usable_cores, "busy_cores": round(self.busy_cores, 2),
                "free_cores": self.free_cores, "busy": self.busy}


def _cpu_times(proc_stat: Path, cpus: set[int]) -> tuple[int, int] | None:
    """(busy, total) jiffies summed over ``cpus``, or None where /proc/stat cannot be read."""
    try:
        lines = proc_stat.read_text().splitlines()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        values = [int(value) for value in fields[:8]]  # user nice system idle iowait irq softirq steal
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        total += sum(values)
        busy += sum(values) - idle
    return busy, total


def sample_load(window_s: float = 0.3, proc_stat: Path = Path("/proc/stat"),
                usable: int | None = None) -> CpuLoad:
    """Sleep ``window_s`` and count what other processes ran on this process's CPUs meanwhile;
    the free cores are capped by ``usable`` (affinity and cgroup quota; read when None)."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    usable = usable_cores() if usable is None else usable
    before = _cpu_times(proc_stat, cpus)
    time.sleep(window_s)
    after = _cpu_times(proc_stat, cpus)
    if before is None or after is None or after[1] <= before[1]:
        return CpuLoad(usable, 0.0, window_s)
    busy_share = (after[0] - before[0]) / (after[1] - before[1])
    # Busy cores on the affinity set; a quota below it leaves this process its quota's worth
    # at most, whatever the rest of the host does.
    busy_cores = max(0.0, busy_share * len(cpus) - max(0, len(cpus) - usable))
    return CpuLoad(usable, busy_cores, window_s)
