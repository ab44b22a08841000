"""What makes a machine this machine, and what a change to it invalidates.

A per-machine profile (:mod:`autotune.machine_profiles.store`) is only as good as the machine it
was made on. Its fingerprint records what the recommendation and the measurements depend
on; :func:`compare` tells which of the two still hold on the machine as it is now:

- the hardware (GPUs by name, UUID, memory, compute capability and MIG layout; the CPU
  model, its cores and the RAM): another GPU or CPU invalidates **everything**;
- the software under the measurements (the driver, the CUDA driver, the installed
  runtimes' versions): an update **keeps the rules' recommendation** but invalidates the
  **measured timings**;
- autotune itself (its version and the rules' hash): the rules may say otherwise now, so
  the **recommendation** is stale while the timings still describe this machine.

Read with NVML only (through the probe) and ``importlib.metadata``: no runtime is imported.
"""

from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

from autotune.distributions import distribution_version
from autotune.shipped_data import load_profile
from autotune.types import Machine
from autotune.version import __version__

GIB = 2**30


@dataclass(frozen=True)
class Fingerprint:
    host: str
    gpus: tuple[dict[str, Any], ...]
    driver_version: str | None
    cuda_driver_version: str | None
    cpu_model: str
    logical_cores: int
    ram_gb: int
    runtimes: dict[str, str | None] = field(default_factory=dict)
    autotune_version: str = ""
    rules_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gpus"] = [dict(gpu) for gpu in self.gpus]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fingerprint:
        return cls(host=str(data["host"]), gpus=tuple(dict(gpu) for gpu in data["gpus"]),
                   driver_version=data.get("driver_version"),
                   cuda_driver_version=data.get("cuda_driver_version"),
                   cpu_model=str(data["cpu_model"]), logical_cores=int(data["logical_cores"]),
                   ram_gb=int(data["ram_gb"]), runtimes=dict(data.get("runtimes") or {}),
                   autotune_version=str(data.get("autotune_version", "")),
                   rules_hash=str(data.get("rules_hash", "")))


def rules_hash() -> str:
    """sha256 (first 16 hex digits) of the shipped rules as parsed: a changed rule changes it,
    a changed comment (a path in the file's header, say) does not."""
    canonical = json.dumps(load_profile("rules.yaml"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def runtime_versions(distributions: list[str] | None = None) -> dict[str, str | None]:
    """Version by pip distribution (None: not installed), never imported: those given (a
    recorded fingerprint's, so checking one needs no plugin manager), else every
    distribution a registered backend names."""
    if distributions is None:
        from autotune import plugins  # noqa: PLC0415 - only when a fingerprint is first taken

        distributions = sorted({name for _, backend in plugins.backends().values()
                                for name in backend.distributions or (backend.framework,)})
    return {name: distribution_version(name) for name in distributions}


def fingerprint(machine: Machine, distributions: list[str] | None = None) -> Fingerprint:
    """This machine's fingerprint; ``distributions`` as for :func:`runtime_versions`."""
    gpus = tuple({"name": gpu.name, "uuid": gpu.uuid, "vram_gb": round(gpu.vram_total_bytes / GIB, 1),
                  "compute_capability": gpu.compute_capability,
                  "mig": sorted(s.name for s in gpu.mig_slices) if gpu.mig_enabled else None}
                 for gpu in machine.gpus)
    return Fingerprint(
        host=socket.gethostname(), gpus=gpus, driver_version=machine.driver_version,
        cuda_driver_version=machine.cuda_driver_version, cpu_model=machine.host.cpu_model,
        logical_cores=machine.host.logical_cores, ram_gb=round(machine.host.ram_bytes / GIB),
        runtimes=runtime_versions(distributions), autotune_version=__version__,
        rules_hash=rules_hash())


@dataclass(frozen=True)
class Staleness:
    """What changed since a fingerprint was taken, and what that leaves standing."""

    changes: tuple[str, ...] = ()
    #: Another GPU, CPU or amount of RAM: nothing in the profile holds.
    hardware_changed: bool = False
    #: The driver or a runtime changed: measured timings no longer describe this machine.
    software_changed: bool = False
    #: autotune or its rules changed: the recommendation must be made again.
    rules_changed: bool = False
    #: Another host name and other hardware: another machine's profile altogether.
    other_machine: bool = False

    @property
    def stale(self) -> bool:
        return bool(self.changes)

    @property
    def rules_hold(self) -> bool:
        """The rules' recommendation in the profile still holds here."""
        return not self.hardware_changed and not self.rules_changed

    @property
    def measurements_hold(self) -> bool:
        """The profile's measured timings still describe this machine."""
        return not self.hardware_changed and not self.software_changed

    def verdict(self) -> str:
        """One line: fresh, or stale with what it invalidates and what changed."""
        if not self.stale:
            return "fresh: this machine's profile"
        if self.other_machine:
            what = "another machine's profile: nothing in it applies here"
        elif self.hardware_changed:
            what = "stale: the hardware changed, so the recommendation and the measured timings are invalid"
        else:
            parts = []
            if self.software_changed:
                parts.append("the measured timings no longer hold" + (
                    ", the rules' recommendation does" if not self.rules_changed else ""))
            if self.rules_changed:
                parts.append("the rules changed, so the recommendation must be made again")
            what = "stale: " + "; ".join(parts)
        return f"{what} ({'; '.join(self.changes)})"


def _changed(label: str, before: Any, after: Any) -> str | None:
    return None if before == after else f"{label} {before if before is not None else 'none'} -> " \
                                        f"{after if after is not None else 'none'}"


def _gpu_text(gpus) -> str:
    if not gpus:
        return "no GPU"
    return ", ".join(f"{g['name']} {g['vram_gb']} GB" + (f" MIG {'/'.join(g['mig'])}" if g.get("mig") else "")
                     for g in gpus)


def compare(recorded: Fingerprint, current: Fingerprint) -> Staleness:
    """What ``current`` (this machine now) changes against ``recorded`` (the profile's)."""
    hardware = [c for c in (
        _changed("GPUs", _gpu_text(recorded.gpus), _gpu_text(current.gpus)),
        None if _gpu_text(recorded.gpus) != _gpu_text(current.gpus) else _changed(
            "GPU UUIDs", [g.get("uuid") for g in recorded.gpus], [g.get("uuid") for g in current.gpus]),
        _changed("CPU", recorded.cpu_model, current.cpu_model),
        _changed("logical cores", recorded.logical_cores, current.logical_cores),
        _changed("RAM GB", recorded.ram_gb, current.ram_gb)) if c]
    software = [c for c in (
        _changed("driver", recorded.driver_version, current.driver_version),
        _changed("CUDA driver", recorded.cuda_driver_version, current.cuda_driver_version),
        *(_changed(name, recorded.runtimes.get(name), current.runtimes.get(name))
          for name in sorted(set(recorded.runtimes) | set(current.runtimes)))) if c]
    own = [c for c in (
        _changed("autotune", recorded.autotune_version, current.autotune_version),
        _changed("rules", recorded.rules_hash, current.rules_hash)) if c]
    other = bool(hardware) and recorded.host != current.host
    if other:
        hardware.insert(0, f"host {recorded.host} -> {current.host}")
    return Staleness(changes=tuple(hardware + software + own), hardware_changed=bool(hardware),
                     software_changed=bool(software), rules_changed=bool(own), other_machine=other)
