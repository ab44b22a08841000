"""``autotune fleet plan``: one profile per host of an inventory, from the spec database and
the rules, without touching the hosts.

An inventory (YAML or CSV) names each host's GPUs (model, count, optional MIG layout) and,
optionally, its CPU cores, RAM and driver. A planned profile is what ``autotune profile``
would write on that host, minus what only the host can tell (UUIDs, free memory, the
installed runtimes), and says so: ``planned: true``. Hosts with the same hardware share
one recommendation, so ten thousand hosts cost a few dozen recommendations.

YAML::

    hosts:
      - host: gpu-001
        gpus: [{model: A100 80GB, count: 8}]
        cpu_cores: 64
        ram_gb: 512
        driver: "550.54.15"
      - host: gpu-002
        gpus: [{model: A100 80GB, count: 1, mig: [3g.40gb, 3g.40gb]}]

CSV: ``host,gpu_model,gpu_count,mig,cpu_cores,ram_gb,driver`` (``mig`` as ``3g.40gb+3g.40gb``);
a host with two GPU models takes two rows.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from autotune import api
from autotune.errors import UserError
from autotune.hardware import gpu_database as gpudb
from autotune.machine_profiles.fingerprint import fingerprint
from autotune.machine_profiles.store import MachineProfile, profile_path, purpose_of, render_profile
from autotune.recommendation.formats import write_atomically
from autotune.shipped_data import read_yaml_text
from autotune.types import Host, Machine, MigSlice

GIB = 2**30
#: What a host the inventory says nothing else about is planned with.
DEFAULT_CPU_CORES = 16
DEFAULT_RAM_GB = 64
_MIG_MEMORY = re.compile(r"^(\d+)g\.(\d+)gb$")


@dataclass(frozen=True)
class GpuGroup:
    model: str  # the spec database's name, resolved
    count: int
    mig: tuple[str, ...] = ()  # MIG profiles (3g.40gb), one per slice, on each GPU of the group
    asked: str = field(default="", compare=False)  # the inventory's name for it ("V100")


@dataclass(frozen=True)
class PlannedHost:
    host: str
    gpus: tuple[GpuGroup, ...]
    cpu_cores: int = DEFAULT_CPU_CORES
    ram_gb: int = DEFAULT_RAM_GB
    driver: str | None = None

    @property
    def hardware(self) -> tuple:
        """What the recommendation depends on: hosts alike in it share one."""
        return (self.gpus, self.cpu_cores, self.ram_gb, self.driver)


def _number(value: Any, what: str, where: str, minimum: int = 1) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {what} must be a whole number, got {value!r}; fix the inventory") from None
    if number < minimum:
        raise UserError(f"{where}: {what} must be at least {minimum}, got {number}; fix the inventory")
    return number


def _mig_memory_bytes(profile: str) -> int:
    """The memory of a MIG profile ``_mig`` accepted (``3g.40gb``: 40 GiB)."""
    match = _MIG_MEMORY.match(profile)
    if match is None:
        raise ValueError(f"{profile!r} is not a MIG profile")
    return int(match.group(2)) * GIB


def _mig(value: Any, where: str) -> tuple[str, ...]:
    if value in (None, "", []):
        return ()
    profiles = value.split("+") if isinstance(value, str) else list(value)
    cleaned = tuple(str(profile).strip().lower() for profile in profiles)
    for profile in cleaned:
        if not _MIG_MEMORY.match(profile):
            raise UserError(f"{where}: MIG profile {profile!r} is not like 3g.40gb; fix the inventory")
    return cleaned


def _group(entry: Mapping[str, Any], where: str) -> GpuGroup:
    model = entry.get("model")
    if not model:
        raise UserError(f"{where}: a GPU entry has no model; give model: NAME (autotune gpus lists them)")
    try:
        spec = gpudb.resolve(str(model))
    except UserError as error:
        raise UserError(f"{where}: {error}") from None
    return GpuGroup(spec.name, _number(entry.get("count", 1), "count", where), _mig(entry.get("mig"), where),
                    asked=str(model))


def _host(entry: Mapping[str, Any], index: int) -> PlannedHost:
    name = str(entry.get("host") or "").strip()
    where = f"host {name}" if name else f"inventory entry {index + 1}"
    if not name:
        raise UserError(f"{where} has no host name; give host: NAME")
    if not _HOST_NAME.match(name):
        raise UserError(f"host {name!r} is not a host name (letters, digits, '.', '-', '_'); fix the "
                        "inventory")
    gpus = entry.get("gpus") or []
    if not isinstance(gpus, list):
        raise UserError(f"{where}: gpus must be a list of {{model, count, mig}}; fix the inventory")
    return PlannedHost(
        host=name, gpus=tuple(sorted((_group(gpu, where) for gpu in gpus), key=lambda g: g.model)),
        cpu_cores=_number(entry.get("cpu_cores", DEFAULT_CPU_CORES), "cpu_cores", where),
        ram_gb=_number(entry.get("ram_gb", DEFAULT_RAM_GB), "ram_gb", where),
        driver=str(entry["driver"]) if entry.get("driver") not in (None, "") else None)


def _csv_entries(text: str) -> list[dict[str, Any]]:
    """CSV rows, one GPU model each, merged into host entries in their first row's order."""
    hosts: dict[str, dict[str, Any]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        name = (row.get("host") or "").strip()
        entry = hosts.setdefault(name, {"host": name, "gpus": []})
        if row.get("gpu_model"):
            entry["gpus"].append({"model": row["gpu_model"], "count": row.get("gpu_count") or 1,
                                  "mig": row.get("mig")})
        for key in ("cpu_cores", "ram_gb", "driver"):
            if row.get(key):
                entry[key] = row[key]
    return list(hosts.values())


def read_inventory(path: Path) -> list[PlannedHost]:
    """Every host of the inventory, its GPU names resolved in the spec database.

    :raises UserError: unreadable, not an inventory, a duplicate host, or an unknown GPU
        model (naming the host and the closest known names).
    """
    try:
        text = path.read_text("utf-8")
    except OSError as error:
        raise UserError(f"cannot read the inventory {path} ({error.strerror}); check the path") from None
    if path.suffix.lower() == ".csv":
        entries: Any = _csv_entries(text)
    else:
        try:
            data = read_yaml_text(text)
        except Exception as error:  # noqa: BLE001 - any YAML error is one line
            raise UserError(f"{path} is not valid YAML ({type(error).__name__}); fix the inventory") from None
        entries = data.get("hosts") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{path} lists no hosts; give hosts: [{{host: NAME, gpus: [{{model: A100 80GB, "
                        "count: 8}}]}}, ...] or a CSV with host,gpu_model,gpu_count columns")
    hosts = [_host(entry if isinstance(entry, dict) else {}, index) for index, entry in enumerate(entries)]
    seen: set[str] = set()
    for planned in hosts:
        if planned.host in seen:
            raise UserError(f"host {planned.host} is listed twice in {path}; list each host once (CSV: one "
                            "row per GPU model)")
        seen.add(planned.host)
    return hosts


def planned_machine(planned: PlannedHost) -> Machine:
    """The machine the inventory describes, simulated from the spec database."""
    cores = planned.cpu_cores
    host = Host(cpu_model="unknown (planned)", logical_cores=cores, physical_cores=cores,
                available_cores=cores, ram_bytes=planned.ram_gb * GIB, os="unknown (planned)")
    gpus = []
    for group in planned.gpus:
        spec = gpudb.resolve(group.model)
        for _ in range(group.count):
            gpu = gpudb.simulated_gpu(spec, len(gpus))
            if group.mig:
                slices = tuple(MigSlice(index, f"{gpu.name} MIG {profile}", "", _mig_memory_bytes(profile))
                               for index, profile in enumerate(group.mig))
                gpu = replace(gpu, mig_enabled=True, mig_slices=slices)
            gpus.append(gpu)
    return Machine(host=host, gpus=tuple(gpus), driver_version=planned.driver, simulated=True,
                   host_probed=False, note="planned from an inventory: not probed")


def plan(hosts: Iterable[PlannedHost], task: str = "infer",
         model: str | None = None) -> Iterable[MachineProfile]:
    """A planned profile per host; hosts with the same hardware share one recommendation.
    With ``model``, each recommendation is planned for it: its batch from the memory model and
    its predicted speed on that host's GPU."""
    shared: dict[tuple, tuple[Any, dict[str, Any], Any]] = {}
    for planned in hosts:
        if planned.hardware not in shared:
            machine = planned_machine(planned)
            recommendation = api.recommend_for(machine, where="by the inventory", task=task, model=model)
            shared[planned.hardware] = (recommendation, machine.to_dict(), fingerprint(machine, []))
        recommendation, machine_dict, prints = shared[planned.hardware]
        yield MachineProfile(purpose=purpose_of(task), fingerprint=replace(prints, host=planned.host),
                             machine=machine_dict, recommendations=(recommendation,), planned=True)


def variant_notes(hosts: Iterable[PlannedHost]) -> list[str]:
    """One line per GPU name the inventory gives that also names other boards ("V100": the
    SXM2 and PCIe cards, 32 and 16 GB), saying which one the plan took and how to pick another."""
    notes: dict[tuple[str, str], str] = {}
    for planned in hosts:
        for group in planned.gpus:
            if not group.asked or (group.asked, group.model) in notes:
                continue
            others = gpudb.other_variants(group.asked, gpudb.resolve(group.model))
            if others:
                notes[(group.asked, group.model)] = (
                    f"GPU {group.asked!r} planned as {group.model}; it also names {', '.join(others)}: "
                    "give the full name in the inventory to plan another")
            else:
                notes[(group.asked, group.model)] = ""
    return [note for note in notes.values() if note]


class PlanWritten(NamedTuple):
    hosts: int  # profiles written
    notes: list[str]  # what the plan assumed (variant_notes)


def write_plan(inventory: Path, out: Path, task: str = "infer", model: str | None = None) -> PlanWritten:
    """Read ``inventory`` whole (nothing is written when any host is wrong), then write one
    planned profile per host into ``out``. Returns the number written and what was assumed."""
    hosts = read_inventory(inventory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {out} ({error.strerror}); choose a writable --out") from None
    written = 0
    rendered: dict[int, str] = {}
    for made in plan(hosts, task, model):
        # One document per hardware group, rendered once with a stand-in host name that each
        # host's own (checked to be a plain DNS-like name) replaces: YAML rendering per host
        # took 16.5 s for 10,000 hosts here, against the 5 s goal.
        group = id(made.recommendations[0])
        if group not in rendered:
            rendered[group] = render_profile(replace(made, fingerprint=replace(made.fingerprint,
                                                                               host=_HOST_TOKEN)))
        text = rendered[group].replace(f"host: {_HOST_TOKEN}", f"host: '{made.fingerprint.host}'", 1)
        path = profile_path(out, made.fingerprint.host, made.purpose)
        write_atomically(path, text.replace(_HOST_TOKEN, made.fingerprint.host))
        written += 1
    return PlanWritten(written, variant_notes(hosts))


_HOST_TOKEN = "AUTOTUNEHOSTNAME"
#: Host names as schedulers and DNS write them: letters, digits, dots, dashes, underscores.
_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
