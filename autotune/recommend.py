"""Machine + request -> :class:`Recommendation`: facts, then rules, then checks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import autotune
from autotune.errors import UserError
from autotune.facts import machine_facts
from autotune.rules import RuleSet, builtin_rules
from autotune.types import Machine, Recommendation, Rule

# Decisions whose value names a precision the hardware must run.
_PRECISION_DECISIONS = ("precision", "alternative_precision", "quantization")


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


def recommend(
    machine: Machine,
    inputs: Mapping[str, str],
    overrides: Mapping[str, tuple[Any, str]] | None = None,
    extra_rules: Iterable[Rule] = (),
) -> Recommendation:
    """Every decision for ``machine``; ``extra_rules`` (from plugins) are tried first."""
    overrides = overrides or {}
    facts = machine_facts(machine, inputs["task"], inputs["objective"], inputs["tier"])
    gpu_name = facts["gpu.name"] if machine.gpus else "this CPU"
    _check_precision_overrides(facts["gpu.precisions"], gpu_name, overrides)
    decisions, warnings = RuleSet([*extra_rules, *builtin_rules()]).decide(facts, overrides)
    summary = machine.summary()
    if machine.note:
        summary += f" ({machine.note})"
    return Recommendation(
        inputs=dict(inputs),
        machine=summary,
        decisions=tuple(decisions),
        warnings=tuple(warnings),
        autotune_version=autotune.__version__,
    )
