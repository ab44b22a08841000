"""Machine + request (+ model) -> :class:`Recommendation`: facts, rules, memory model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autotune.errors import UserError
from autotune.hardware import gpu_database as gpudb
from autotune.recommendation.facts import machine_facts
from autotune.recommendation.rules import RuleSet, builtin_rules
from autotune.types import Decision, Machine, Recommendation, Rule
from autotune.version import __version__

if TYPE_CHECKING:  # the model path imports these itself: a plain recommend never needs them
    from autotune.model.source import ModelSource
    from autotune.model.stats import ModelStats

# Decisions whose value names a precision the hardware must run.
_PRECISION_DECISIONS = ("precision", "alternative_precision", "quantization")
GIB = 2**30


@dataclass(frozen=True)
class ModelRequest:
    """``--model`` and the options of the memory model."""

    stats: ModelStats
    optimizer: str = "adam"
    latency_budget_ms: float = 30.0
    headroom: float = 0.9
    source: ModelSource | None = None  # what --model named, for the commands that run it

    @property
    def input_shape_given(self) -> bool:
        """The user's --input-shape: its height is the resolution to plan for, not a tier's."""
        return self.source is not None and self.source.input_shape is not None


def _check_precision_overrides(
    precisions: list[str], gpu_name: str, overrides: Mapping[str, tuple[Any, str]]
) -> None:
    for name in _PRECISION_DECISIONS:
        if name not in overrides:
            continue
        value, where = overrides[name]
        if value != "none" and value not in precisions:
            raise UserError(
                f"{name} {value} ({where}) does not run on {gpu_name}, which runs "
                f"{', '.join(precisions)}; choose one of those"
            )


def _model_plan(model: ModelRequest, facts: dict[str, Any], settings: dict[str, Any],
                user_fixed: set[str]) -> tuple[dict[str, Decision], dict[str, Any]]:
    """The memory model's decisions and the figures shown in the output's ``model:``."""
    from autotune.model import memory as memory_model  # noqa: PLC0415
    from autotune.model import throughput  # noqa: PLC0415

    spec = gpudb.spec_named(facts["gpu.name"])
    usable = memory_model.usable_bytes(facts["gpu.free_vram_gb"] * GIB, model.headroom)
    request = memory_model.PlanRequest(
        task=facts["task"],
        objective=facts["objective"],
        precision=settings["precision"],
        resolution=settings["resolution"] if model.stats.native_resolution else None,
        usable_bytes=usable,
        gpu_name=facts["gpu.name"],
        gpu_precisions=tuple(facts["gpu.precisions"]),
        spec=spec,
        tf32=settings["tf32"],
        optimizer=model.optimizer,
        latency_budget_ms=model.latency_budget_ms,
        fixed=frozenset(user_fixed),
        user_batch=settings["batch_size"] if "batch_size" in user_fixed else None,
    )
    plan = memory_model.plan(model.stats, request)
    figures: dict[str, Any] = {
        "predicted_peak_gb": round(plan.predicted_bytes / GIB, 3),
        "usable_gb": round(plan.usable_bytes / GIB, 3),
        "largest_batch_that_fits": plan.memory_batch,
        "batch_bound": plan.bound,
    }
    if plan.knee is not None:
        figures["estimated_knee_batch"] = plan.knee
    if plan.latency_ms is not None:
        figures["estimated_latency_ms"] = round(plan.latency_ms, 2)
    if spec is not None:
        ceiling = memory_model.roofline(model.stats, spec, plan.resolution, plan.precision,
                                        settings["tf32"], facts["task"])
        figures["roofline_samples_s"] = round(ceiling.ceiling_samples_s, 1)
        figures["roofline_bound"] = ceiling.bound
        figures.update(throughput.figures(model.stats, spec, precision=plan.precision, batch=plan.batch_size,
                                          backends=settings.get("backends") or ("torch",),
                                          resolution=plan.resolution, task=facts["task"],
                                          tf32=settings["tf32"]))
    return plan.decisions(request), figures


def _model_summary(stats: ModelStats, resolution: int | None, optimizer: str, task: str,
                   latency_ms: float | None = None) -> dict[str, Any]:
    from autotune.model.stats import lightweight_verdict  # noqa: PLC0415

    resolution = resolution if stats.native_resolution else None
    verdict, explanation = lightweight_verdict(stats, resolution, latency_ms)
    summary: dict[str, Any] = {
        "name": stats.name,
        "inputs": stats.inputs.describe(),
        "figures_from": stats.method,
        "parameters": stats.parameters,
        "gflops_per_sample": round(stats.at(resolution).flops_per_sample / 1e9, 3),
        "lightweight": verdict,
        "lightweight_reason": explanation,
    }
    if task == "train":
        summary["optimizer"] = optimizer
    return summary


def recommend(
    machine: Machine,
    inputs: Mapping[str, str],
    overrides: Mapping[str, tuple[Any, str]] | None = None,
    extra_rules: Iterable[Rule] = (),
    model: ModelRequest | None = None,
    measured: Mapping[str, Decision] | None = None,
    measurements: tuple[dict[str, Any], ...] = (),
    measured_latency_ms: float | None = None,
    backend_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Recommendation:
    """Every decision for ``machine``; ``extra_rules`` (from plugins) are tried first.

    With ``model``, the memory model then re-plans batch size, resolution and (when
    nothing else fits) precision for that model, and the rules run again around it.
    ``measured`` decisions (from ``autotune verify``) stand over the rules and the
    memory model; the user's overrides stand over everything. ``measured_latency_ms``
    (batch 1, measured) joins the lightweight verdict (S002-4).
    """
    overrides = overrides or {}
    stats = model.stats if model else None
    facts = machine_facts(machine, inputs["task"], inputs["objective"], inputs["tier"], stats)
    gpu_name = facts["gpu.name"] if machine.gpus else "this CPU"
    _check_precision_overrides(facts["gpu.precisions"], gpu_name, overrides)
    fixed = {**(measured or {}), **{
        name: Decision(name, value, "override", "user", f"set by user ({where})")
        for name, (value, where) in overrides.items()}}
    notes: list[str] = []
    if model is not None:
        notes = _model_constraints(model, fixed)
    ruleset = RuleSet([*extra_rules, *builtin_rules()])
    decisions, warnings = ruleset.decide(facts, fixed)
    warnings = [*notes, *warnings]
    summary: dict[str, Any] = {}
    if model is not None:
        settings = {d.name: d.value for d in decisions}
        if settings["device"] == "cuda":
            planned, figures = _model_plan(model, facts, settings, set(fixed))
            decisions, warnings = ruleset.decide(facts, {**fixed, **planned})
            warnings = [*notes, *warnings]
        else:
            figures = {}
        settings = {d.name: d.value for d in decisions}
        summary = _model_summary(model.stats, settings["resolution"], model.optimizer,
                                 inputs["task"], measured_latency_ms) | figures
    text = machine.summary()
    if machine.note:
        text += f" ({machine.note})"
    return Recommendation(
        inputs=dict(inputs),
        machine=text,
        decisions=tuple(decisions),
        warnings=tuple(warnings),
        autotune_version=__version__,
        model=summary,
        measured=bool(measured),
        measurements=measurements,
        backend_options={name: dict(values) for name, values in (backend_options or {}).items()},
    )


def _model_constraints(model: ModelRequest, fixed: dict[str, Decision]) -> list[str]:
    """What the model itself fixes — the resolution the user's input description gives, the
    batch an ONNX graph is exported with — as decisions added to ``fixed``; and the lines
    the output says about it: every guess made about its inputs, and how to free a fixed batch."""
    stats = model.stats
    notes = [f"{stats.name}: {guess}" for guess in stats.inputs.guesses]
    if model.input_shape_given and stats.native_resolution and "resolution" not in fixed:
        fixed["resolution"] = Decision("resolution", stats.native_resolution, "input-shape", "user",
                                       f"the model's input size, set by user ({stats.inputs.describe()})")
    batch = stats.inputs.fixed_batch
    if batch is not None:
        # Every input: a graph with one input batched and the others fixed still runs one batch.
        axes = ", ".join(f"'{name}': {{0: 'batch'}}" for name in stats.inputs.names)
        how = (f"re-export it with a dynamic batch axis on every input (and output) to let autotune "
               f"choose the batch: torch.onnx.export(..., dynamic_axes={{{axes}}}), "
               "or dynamic_shapes with dynamo=True")
        if "batch_size" in fixed and fixed["batch_size"].value != batch:
            raise UserError(f"{stats.name} is exported with its batch fixed at {batch}, so batch "
                            f"{fixed['batch_size'].value} cannot run; drop the batch size or {how}")
        fixed["batch_size"] = Decision("batch_size", batch, "fixed-batch", "model",
                                       f"the model's graph fixes the batch at {batch}")
        notes.append(f"{stats.name} runs at batch {batch} only (its graph fixes it); {how}")
    return notes


def default_model_options() -> dict[str, Any]:
    from autotune.model.stats import memory_constants  # noqa: PLC0415

    constants = memory_constants()
    return {"optimizer": constants["default_optimizer"],
            "latency_budget_ms": float(constants["latency_budget_ms"]),
            "headroom": float(constants["headroom_fraction"])}
