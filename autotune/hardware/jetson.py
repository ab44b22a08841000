"""A Jetson, which has no NVML: its board named by the device tree, its GPU from the spec database.

The probe asks here only where the NVML library is missing. The board is read from
``/proc/device-tree`` (only an NVIDIA Tegra board is a Jetson), matched to its entry in the
spec database by name and RAM, and its GPU's memory is the RAM it shares with the CPU.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from autotune.hardware import gpu_database as gpudb
from autotune.hardware.cuda_devices import visible_gpus
from autotune.types import Gpu, Host, Machine

#: Where Linux shows the firmware's device tree, in which a Jetson names its board. Read
#: only where NVML is missing, so a machine with the NVIDIA desktop driver never reads it.
DEVICE_TREE = Path("/proc/device-tree")
#: The kernel's memory figures: a Jetson's GPU allocates from the RAM the CPU also uses.
MEMINFO = Path("/proc/meminfo")
# A Jetson's database entry may miss by the RAM the firmware reserves for itself (a 64 GB
# AGX Orin shows about 61 GiB), not by a whole variant (the 32 GB AGX Orin shares its name).
_JETSON_RAM_TOLERANCE = 0.25


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


def jetson_machine(device_tree: Path, host: Host, cuda_visible_devices: str | None) -> Machine | None:
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
