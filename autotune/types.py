"""The small frozen records that hooks yield and the core passes around.

probe -> :class:`Machine` (a :class:`Host` and its :class:`Gpu` list) -> facts ->
:class:`Rule` evaluation -> :class:`Decision` list -> :class:`Recommendation`.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from autotune.distributions import distribution_version

if TYPE_CHECKING:
    pass


def load_reference(reference: str) -> Any:
    """What a ``"package.module:name.attr"`` (or a plain module) that a plugin or an entry
    point declares points at, imported only now."""
    module_name, _, attribute = reference.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in filter(None, attribute.split(".")):
        target = getattr(target, part)
    return target


#: Every precision autotune can recommend, from widest to narrowest.
PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")


@dataclass(frozen=True)
class BackendOption:
    """A setting only one runtime has (torch's ``channels_last``, say), declared in its
    :class:`Backend` registration rather than in the core's run configuration.

    The value a run gets is, in order: what the user set (``--set torch.NAME=VALUE``, or
    ``NAME`` in a ``[torch]`` table of a config file), else the recommendation's
    ``decision`` this option follows, else ``default``. On a device outside ``devices``
    the option has no effect and keeps its default; likewise outside ``precisions`` (when
    given: an INT8 quantisation method means nothing to an FP32 model). ``explore``:
    ``autotune verify`` may measure the option's other values and keep the faster one —
    only ``explore_choices`` when given (the values worth a measurement by default; the
    others are there for ``--set``), plus those of ``explore_also`` whose condition (over
    the facts, in the rules' condition language) holds — and only for a model whose kind is
    in ``model_kinds`` when given (a memory layout of images means nothing to token ids).
    """

    name: str
    type: str  # bool | int | choice
    help: str
    default: Any = None
    choices: tuple[str, ...] = ()
    decision: str | None = None
    explore: bool = False
    devices: tuple[str, ...] = ("cuda", "cpu")
    precisions: tuple[str, ...] = ()
    explore_choices: tuple[str, ...] = ()
    explore_also: tuple[tuple[str, tuple[str, ...]], ...] = ()
    model_kinds: tuple[str, ...] = ()

    def applies_to(self, precision: str) -> bool:
        """Whether the option changes anything for ``precision`` (see ``precisions``)."""
        return not self.precisions or precision in self.precisions

    def coerce(self, value: Any, where: str, backend: str) -> Any:
        from autotune.values import coerce  # noqa: PLC0415

        return coerce(f"{backend}.{self.name}", self.type, value, where, self.choices, minimum=0)

    def alternatives(self, current: Any, also: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        """The other values exploration measures: the explored choices, ``also`` (the values of
        ``explore_also`` whose condition holds, which the measuring stage evaluates), not ``current``."""
        if self.type == "bool":
            return (not current,)
        choices = list(self.explore_choices or self.choices)
        choices += [value for value in also if value not in choices]
        return tuple(choice for choice in choices if choice != current)


@dataclass(frozen=True)
class Backend:
    """A runtime a plugin provides, e.g. PyTorch or ONNX Runtime.

    ``framework`` is the import name checked (never imported) to tell whether the
    backend can run here; ``distributions`` are the pip distributions whose installed
    version is reported, first found wins.
    """

    name: str
    framework: str
    description: str
    distributions: tuple[str, ...] = ()
    #: "module:Class" of its :class:`autotune.backend_api.Runner`, imported only to measure;
    #: None for a backend that can be recommended but not measured by autotune.
    runner: str | None = None
    #: Its runtime-specific settings (see :class:`BackendOption`).
    options: tuple[BackendOption, ...] = ()
    #: The model kinds its runner takes (``reference``, ``callable``, ``onnx``; empty: every
    #: kind, converting what it must): verify neither tries nor lists it for another kind.
    model_kinds: tuple[str, ...] = ()
    #: How to install the framework, where ``pip install <framework>`` is not the answer
    #: (said wherever the backend is "not installed").
    install: str = ""

    def install_command(self) -> str:
        return self.install or f"pip install {(self.distributions or (self.framework,))[0]}"

    def not_installed(self) -> str:
        """``tensorrt is not installed (how to install it)``."""
        return f"{self.framework} is not installed ({self.install_command()})"

    def option(self, name: str) -> BackendOption:
        for option in self.options:
            if option.name == name:
                return option
        raise KeyError(name)

    def load_runner(self):
        """A new runner instance; ImportError when its framework is not installed."""
        if self.runner is None:
            raise LookupError(f"backend {self.name} declares no runner")
        return load_reference(self.runner)()

    def installed_version(self) -> str | None:
        """The framework's installed version, or None when it is not installed here."""
        if importlib.util.find_spec(self.framework) is None:
            return None
        return distribution_version(*(self.distributions or (self.framework,))) or "unknown version"


@dataclass(frozen=True)
class ModelInspector:
    """How a plugin measures models of some kinds (see the ``autotune_model_inspectors`` hook)."""

    name: str
    framework: str
    kinds: tuple[str, ...]
    inspect: str  # "module:function" taking (ModelSource, resolutions), returning ModelStats

    def load(self):
        return load_reference(self.inspect)


@dataclass(frozen=True)
class ModelConverter:
    """How a plugin turns models of some kinds into a file format (``autotune_model_converters``)."""

    name: str
    framework: str
    source_kinds: tuple[str, ...]
    target: str  # the format written, e.g. "onnx"
    convert: str  # "module:function" taking (ModelSource, ConversionRequest), returning a Path

    def load(self):
        return load_reference(self.convert)


@dataclass(frozen=True)
class MigSlice:
    """One MIG instance carved out of a GPU."""

    index: int
    name: str
    uuid: str
    memory_total_bytes: int


@dataclass(frozen=True)
class Gpu:
    """One GPU as probed through NVML, or as simulated from the spec database.

    Fields NVML could not answer (``Not Supported`` on that board) are None.
    ``tensor_core_precisions`` and ``precisions`` come from the architecture table
    and the spec database, never from the compute capability alone (S003-2).
    """

    index: int
    name: str
    uuid: str | None
    compute_capability: str
    architecture: str
    sm_count: int | None
    vram_total_bytes: int
    vram_free_bytes: int
    memory_bus_width_bits: int | None
    max_memory_clock_mhz: int | None
    memory_bandwidth_gb_s: float | None
    pcie_generation: int | None
    pcie_width: int | None
    nvlink_active_links: int
    mig_enabled: bool
    mig_slices: tuple[MigSlice, ...]
    power_limit_w: float | None
    tensor_cores: bool
    tensor_core_precisions: tuple[str, ...]
    precisions: tuple[str, ...]
    spec_name: str | None
    simulated: bool = False

    @property
    def vram_gb(self) -> float:
        """Total memory in GiB: what a board sold as "8 GB" reports (8 x 2**30 bytes)."""
        return self.vram_total_bytes / 2**30

    @property
    def free_vram_gb(self) -> float:
        return self.vram_free_bytes / 2**30

    @property
    def cc_major(self) -> int:
        return int(self.compute_capability.split(".")[0])


@dataclass(frozen=True)
class Host:
    """The CPU side of the machine."""

    cpu_model: str
    logical_cores: int
    physical_cores: int
    available_cores: int
    ram_bytes: int
    os: str
    #: Native BF16 arithmetic (AVX512-BF16 or AMX), which PyTorch's CPU kernels use.
    bf16: bool = False


@dataclass(frozen=True)
class Machine:
    """What a probe found (or what ``--gpu`` simulates).

    ``note`` says why there is no GPU when ``gpus`` is empty ("NVML library not found").
    """

    host: Host
    gpus: tuple[Gpu, ...]
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    simulated: bool = False
    note: str | None = None
    #: The host is the machine autotune runs on (probed), not one an inventory describes. With
    #: ``--gpu`` the GPU is simulated on this host, whose CPU the real GPU's host may not have.
    host_probed: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if not self.gpus:
            return f"CPU only: {self.host.cpu_model}, {self.host.available_cores} cores"
        names: dict[str, int] = {}
        for gpu in self.gpus:
            label = f"{gpu.spec_name or gpu.name} ({gpu.vram_gb:.0f} GB, cc {gpu.compute_capability})"
            names[label] = names.get(label, 0) + 1
        text = " + ".join(f"{count} x {label}" for label, count in names.items())
        return text + (" [simulated]" if self.simulated else "")


@dataclass(frozen=True)
class Rule:
    """One recommendation rule: when ``when`` holds, ``decision`` takes ``value``.

    Exactly one of ``value`` (a literal) or ``compute`` (an expression over the facts,
    e.g. ``"min(8, host.cpu_cores // 2)"``) is set. ``source`` is a SOURCES.md id
    (``S000-4``) or ``practice`` with a ``reference`` URL. ``warning`` is added to the
    recommendation's warnings when the rule decides.
    """

    id: str
    decision: str
    when: str
    source: str
    reason: str
    value: Any = None
    compute: str | None = None
    reference: str | None = None
    warning: str | None = None
    origin: str = "profiles/rules.yaml"


#: What a verified config says of each decision (``Decision.measurement``): ``measured`` —
#: measurement chose the value; ``confirmed`` — the rules' (or the user's) value, which the
#: winning configuration ran; ``unmeasured`` — no measurement ran it (``measurement_note``
#: says why).
MEASUREMENT_CLAIMS = ("measured", "confirmed", "unmeasured")


@dataclass(frozen=True)
class Decision:
    """The value chosen for one decision and why; after ``autotune verify``, also whether
    measurement backs it (one of :data:`MEASUREMENT_CLAIMS`) and what says so."""

    name: str
    value: Any
    rule: str
    source: str
    reason: str
    measurement: str | None = None
    measurement_note: str = ""

    def __post_init__(self) -> None:
        if self.measurement is not None and self.measurement not in MEASUREMENT_CLAIMS:
            raise ValueError(f"decision {self.name}: measurement must be one of "
                             f"{', '.join(MEASUREMENT_CLAIMS)}, not {self.measurement!r}")

    def reasons(self) -> dict[str, Any]:
        """Its rule, source and reason, and after verify what measurement says of it."""
        data: dict[str, Any] = {"rule": self.rule, "source": self.source, "reason": self.reason}
        if self.measurement is not None:
            data["measurement"] = self.measurement
            if self.measurement_note:
                data["measurement_note"] = self.measurement_note
        return data


@dataclass(frozen=True)
class Recommendation:
    """A complete recommendation: the inputs, the machine, every decision with its reason."""

    inputs: dict[str, str]
    machine: str
    decisions: tuple[Decision, ...]
    warnings: tuple[str, ...] = ()
    measured: bool = False
    autotune_version: str = field(default="")
    #: With ``--model``: its stats and the memory model's figures (plain values only).
    model: dict[str, Any] = field(default_factory=dict)
    #: After ``autotune verify``: what each backend measured (plain values only).
    measurements: tuple[dict[str, Any], ...] = ()
    #: After ``autotune verify``: the winning backend's own options as measured, by backend
    #: name (``{"onnxruntime": {"int8_method": "qoperator", ...}}``): what to set to run it.
    backend_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def settings(self) -> dict[str, Any]:
        return {decision.name: decision.value for decision in self.decisions}

    def decision(self, name: str) -> Decision:
        for decision in self.decisions:
            if decision.name == name:
                return decision
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The document every output format writes: settings first, reasons beside them."""
        return {
            "autotune_version": self.autotune_version,
            "machine": self.machine,
            "inputs": dict(self.inputs),
            "measured": self.measured,
            "settings": self.settings,
            "reasons": {d.name: d.reasons() for d in self.decisions},
            "warnings": list(self.warnings),
            **({"model": dict(self.model)} if self.model else {}),
            **({"backend_options": {k: dict(v) for k, v in self.backend_options.items()}}
               if self.backend_options else {}),
            **({"measurements": list(self.measurements)} if self.measurements else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recommendation:
        reasons = data["reasons"]
        decisions = tuple(
            Decision(name=name, value=value, **reasons[name])
            for name, value in data["settings"].items()
        )
        return cls(
            inputs=dict(data["inputs"]),
            machine=data["machine"],
            decisions=decisions,
            warnings=tuple(data.get("warnings", ())),
            measured=bool(data.get("measured", False)),
            autotune_version=data.get("autotune_version", ""),
            model=dict(data.get("model", {})),
            measurements=tuple(data.get("measurements", ())),
            backend_options={k: dict(v) for k, v in data.get("backend_options", {}).items()},
        )
