"""The GPU spec database (``profiles/gpus.yaml``) and the architecture table.

Answers three questions: which precisions a GPU runs (from its architecture *and* its
own entry, S003-2), which database entry a probed NVML name is, and which entry a name
typed by a user (``--gpu "3060 8GB"``, ``--gpu t4``) means.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field
from typing import Any

from autotune.errors import UserError
from autotune.shipped_data import load_profile
from autotune.types import PRECISIONS, Gpu, Host, Machine

GIB = 2**30
# Words that every second board carries: dropped so "RTX 3060", "GeForce RTX 3060" and
# "3060" all normalise to the same key.
_NOISE_WORDS = {"nvidia", "geforce", "tesla", "rtx", "gtx", "quadro"}


@dataclass(frozen=True)
class GpuSpec:
    """One reviewed entry of ``profiles/gpus.yaml``."""

    name: str
    nvml_names: tuple[str, ...]
    aliases: tuple[str, ...]
    architecture: str
    compute_capability: str
    form_factor: str
    vram_gb: float
    memory_bandwidth_gb_s: float
    memory_bus_width_bits: int | None  # None where no vendor text or device report gives it
    sm_count: int | None
    tensor_cores: bool
    fp32_tflops: float
    tensor_tflops: dict[str, float]
    nvlink_links: int = 0
    tdp_w: float | None = None  # board power (TDP/TGP) the vendor states; None where unsourced
    default_for_nvml_name: bool = False
    sources: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)

    @property
    def precisions(self) -> tuple[str, ...]:
        return precisions_for(self.architecture, self.tensor_cores, self.compute_capability)


def normalize_gpu_name(name: str) -> str:
    """``"NVIDIA GeForce RTX 3060 8 GB"`` -> ``"3060 8gb"``."""
    text = re.sub(r"(\d+)\s*gb\b", r"\1gb", name.lower())
    return " ".join(t for t in re.split(r"[^a-z0-9]+", text) if t and t not in _NOISE_WORDS)


def architectures() -> dict[str, dict[str, Any]]:
    return load_profile("architectures.yaml")["architectures"]


def cpu_precisions() -> tuple[str, ...]:
    return tuple(load_profile("architectures.yaml")["cpu_precisions"])


def tensor_core_precisions_for(architecture: str, tensor_cores: bool) -> tuple[str, ...]:
    if not tensor_cores:
        return ()
    return tuple(architectures().get(architecture, {}).get("tensor_core_precisions", ()))


def precisions_for(architecture: str, tensor_cores: bool, compute_capability: str) -> tuple[str, ...]:
    """What a GPU runs well: fp32 always, plus its Tensor Core precisions, or the fast
    non-Tensor-Core paths of its family (of its compute capability, where the family's
    members differ: a P100 is not a GTX 1080) when it has none. Ordered as ``PRECISIONS``."""
    table = architectures().get(architecture, {})
    if tensor_cores:
        extra = table.get("tensor_core_precisions", ())
    else:
        extra = table.get("precisions_without_tensor_cores", ())
        if isinstance(extra, dict):
            extra = extra.get(compute_capability, ())
    wanted = {"fp32", *extra}
    return tuple(p for p in PRECISIONS if p in wanted)


def architecture_for(nvml_architecture: int | None, compute_capability: str) -> str:
    """The family name, from NVML's architecture code or else the compute capability."""
    for name, table in architectures().items():
        if nvml_architecture is not None and table["nvml_architecture"] == nvml_architecture:
            return name
    for name, table in architectures().items():
        if compute_capability in table["compute_capabilities"]:
            return name
    return "unknown"


def has_tensor_cores(architecture: str, name: str) -> bool:
    """For a board missing from the database: its family's answer, unless its name says
    otherwise (GTX 16xx is Turing without Tensor Cores, S003-2)."""
    table = architectures().get(architecture)
    if table is None or not table["tensor_core_precisions"]:
        return False
    pattern = table.get("no_tensor_cores_name_pattern")
    return not (pattern and re.search(pattern, name, re.IGNORECASE))


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@functools.cache
def all_specs() -> tuple[GpuSpec, ...]:
    entries = load_profile("gpus.yaml")["gpus"]
    return tuple(
        GpuSpec(
            name=entry["name"],
            nvml_names=tuple(entry.get("nvml_names") or ()),
            aliases=tuple(entry.get("aliases") or ()),
            architecture=entry["architecture"],
            compute_capability=str(entry["compute_capability"]),
            form_factor=entry["form_factor"],
            vram_gb=float(entry["vram_gb"]),
            memory_bandwidth_gb_s=float(entry["memory_bandwidth_gb_s"]),
            memory_bus_width_bits=_optional_int(entry.get("memory_bus_width_bits")),
            sm_count=_optional_int(entry.get("sm_count")),
            tensor_cores=bool(entry["tensor_cores"]),
            fp32_tflops=float(entry["fp32_tflops"]),
            tensor_tflops={k: float(v) for k, v in (entry.get("tensor_tflops") or {}).items()},
            nvlink_links=int(entry.get("nvlink_links", 0)),
            tdp_w=None if entry.get("tdp_w") is None else float(entry["tdp_w"]),
            default_for_nvml_name=bool(entry.get("default_for_nvml_name", False)),
            sources=tuple(entry.get("sources") or ()),
        )
        for entry in entries
    )


@functools.cache
def _specs_by_name() -> dict[str, GpuSpec]:
    return {spec.name: spec for spec in all_specs()}


def spec_named(name: str | None) -> GpuSpec | None:
    """The entry whose display name is exactly ``name`` (a probed GPU's ``spec_name``)."""
    return _specs_by_name().get(name or "")


@functools.cache
def _keys() -> dict[str, tuple[GpuSpec, ...]]:
    """Every normalised name, NVML name and alias -> the entries it names."""
    keys: dict[str, list[GpuSpec]] = {}
    for spec in all_specs():
        for name in {spec.name, *spec.nvml_names, *spec.aliases}:
            bucket = keys.setdefault(normalize_gpu_name(name), [])
            if spec not in bucket:
                bucket.append(spec)
    return {key: tuple(specs) for key, specs in keys.items()}


def _pick_default(specs: tuple[GpuSpec, ...]) -> GpuSpec | None:
    if len(specs) == 1:
        return specs[0]
    defaults = [spec for spec in specs if spec.default_for_nvml_name]
    return defaults[0] if len(defaults) == 1 else None


def resolve(query: str) -> GpuSpec:
    """The entry a user means by ``query``, or a :class:`UserError` naming the closest.

    An exact (normalised) name, NVML name or alias wins; otherwise the query's words must
    all appear in exactly one entry's name ("80gb pcie" -> A100 80GB PCIe).
    """
    key = normalize_gpu_name(query)
    keys = _keys()
    if key in keys:
        spec = _pick_default(keys[key])
        if spec is not None:
            return spec
        candidates = keys[key]
    else:
        words = set(key.split())
        candidates = tuple(
            spec for spec in all_specs()
            if words and words <= set(normalize_gpu_name(spec.name).split())
        )
        if len(candidates) == 1:
            return candidates[0]
    if candidates:
        names = ", ".join(spec.name for spec in candidates)
        raise UserError(f"GPU name {query!r} is ambiguous: it matches {names}; pass one of those")
    close = difflib.get_close_matches(key, list(keys), n=4, cutoff=0.5)
    suggestions = list(dict.fromkeys(keys[k][0].name for k in close))
    hint = f"closest known: {', '.join(suggestions)}" if suggestions else "no close match"
    raise UserError(f"unknown GPU {query!r} ({hint}); run `autotune gpus` for every known name")


def other_variants(query: str, spec: GpuSpec) -> tuple[str, ...]:
    """The other entries ``query``'s words name, where it resolved to ``spec`` by a short
    alias ("V100" -> V100 SXM2 32GB, while the PCIe and 16 GB boards are V100s too); () when
    the query names ``spec`` alone."""
    key = normalize_gpu_name(query)
    if key in {normalize_gpu_name(name) for name in (spec.name, *spec.nvml_names)}:
        return ()
    words = set(key.split())
    return tuple(other.name for other in all_specs() if other is not spec and words
                 and words <= set(normalize_gpu_name(other.name).split()))


def match_probed(nvml_name: str, vram_total_bytes: int) -> GpuSpec | None:
    """The database entry for a probed board: its NVML name, then the nearest VRAM size
    (an RTX 3060 reports the same name with 8 GB and with 12 GB)."""
    specs = _keys().get(normalize_gpu_name(nvml_name), ())
    if not specs:
        return None
    return min(specs, key=lambda spec: abs(spec.vram_gb * GIB - vram_total_bytes))


def simulated_gpu(spec: GpuSpec, index: int) -> Gpu:
    """A :class:`Gpu` as the database describes it: all memory free, nothing probed."""
    vram_bytes = int(spec.vram_gb * GIB)
    return Gpu(
        index=index,
        name=spec.nvml_names[0] if spec.nvml_names else spec.name,
        uuid=None,
        compute_capability=spec.compute_capability,
        architecture=spec.architecture,
        sm_count=spec.sm_count,
        vram_total_bytes=vram_bytes,
        vram_free_bytes=vram_bytes,
        memory_bus_width_bits=spec.memory_bus_width_bits,
        max_memory_clock_mhz=None,
        memory_bandwidth_gb_s=spec.memory_bandwidth_gb_s,
        pcie_generation=None,
        pcie_width=None,
        nvlink_active_links=spec.nvlink_links,
        mig_enabled=False,
        mig_slices=(),
        power_limit_w=None,
        tensor_cores=spec.tensor_cores,
        tensor_core_precisions=tensor_core_precisions_for(spec.architecture, spec.tensor_cores),
        precisions=spec.precisions,
        spec_name=spec.name,
        simulated=True,
    )


def simulate(names: list[str] | tuple[str, ...], host: Host) -> Machine:
    """The machine ``--gpu NAME`` (repeatable) describes, on this host's CPU."""
    gpus = tuple(simulated_gpu(resolve(name), index) for index, name in enumerate(names))
    return Machine(host=host, gpus=gpus, simulated=True)
