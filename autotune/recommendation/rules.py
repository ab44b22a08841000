"""The rule engine: decisions made in order, the first matching rule per decision wins.

The rules and the decisions they make are data (``profiles/rules.yaml``); plugins add
rules through the ``autotune_rules`` hook, and those are tried before the built-in ones.
A user override (config file or flag) skips the rules for its decision.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from autotune.errors import UserError
from autotune.recommendation.conditions import ConditionError, Expression
from autotune.recommendation.facts import FACTS
from autotune.shipped_data import load_profile
from autotune.types import Decision, Rule
from autotune.values import coerce

_SOURCE_ID = re.compile(r"S\d{3}-\d+")


@dataclass(frozen=True)
class DecisionSpec:
    """One decision a recommendation makes: its type and the values it may take.

    ``choices_from: backends`` (the ``backends`` decision) takes its choices from the
    backends registered at run time, so a third-party runtime can be recommended.
    """

    name: str
    type: str  # choice | bool | int | list
    help: str
    static_choices: tuple[str, ...] = ()
    min: int | None = None
    choices_from: str | None = None
    nullable: bool = False  # may be none: the decision does not apply to this model

    @property
    def choices(self) -> tuple[str, ...]:
        if self.choices_from == "backends":
            from autotune import plugins  # noqa: PLC0415 - only this decision needs the registry

            return tuple(sorted(plugins.backends()))
        return self.static_choices

    def coerce(self, value: Any, where: str) -> Any:
        """``value`` as this decision's type; strings from flags and env files convert.

        Raises :class:`UserError` naming the decision, ``where`` it was set, and the fix.
        """
        return coerce(self.name, self.type, value, where, self.choices, self.min, self.nullable)

    def proposal(self, value: Any) -> Any:
        """A rule's value as the recommendation holds it: a rule may name backends that are
        not registered here (a restricted AUTOTUNE_LOAD_PLUGINS, say), which drop out."""
        if self.choices_from is None:
            return value
        registered = self.choices
        return [item for item in value if item in registered]


@functools.cache
def decision_specs() -> dict[str, DecisionSpec]:
    """Every decision, in the order they are made."""
    return {
        name: DecisionSpec(
            name=name,
            type=spec["type"],
            help=spec["help"],
            static_choices=tuple(spec.get("choices", ())),
            min=spec.get("min"),
            choices_from=spec.get("choices_from"),
            nullable=spec.get("nullable", False),
        )
        for name, spec in load_profile("rules.yaml")["decisions"].items()
    }


@functools.cache
def source_texts() -> dict[str, str]:
    """SOURCES.md id -> what that source says (``profiles/sources.yaml``)."""
    return dict(load_profile("sources.yaml")["sources"])


def builtin_rules() -> list[Rule]:
    return [Rule(**entry) for entry in load_profile("rules.yaml")["rules"]]


def known_facts() -> set[str]:
    return set(FACTS) | set(decision_specs())


class CompiledRule:
    """A rule whose expressions are parsed and whose fields are checked."""

    def __init__(self, rule: Rule, facts: set[str]):
        self.rule = rule
        problem = self._problem(rule)
        if problem:
            raise UserError(f"rule {rule.id!r} ({rule.origin}): {problem}")
        try:
            self.when = Expression(str(rule.when).lower() if isinstance(rule.when, bool)
                                   else rule.when, facts)
            self.compute = Expression(rule.compute, facts) if rule.compute else None
        except ConditionError as error:
            raise UserError(f"rule {rule.id!r} ({rule.origin}): {error}") from None
        spec = decision_specs()[rule.decision]
        if self.compute is None and spec.choices_from is None:
            spec.coerce(rule.value, f"in rule {rule.id!r}")
        elif self.compute is None and not (isinstance(rule.value, list)
                                           and all(isinstance(item, str) for item in rule.value)):
            raise UserError(f"rule {rule.id!r} ({rule.origin}): {rule.decision} must be a list of names")

    @staticmethod
    def _problem(rule: Rule) -> str | None:
        if rule.decision not in decision_specs():
            return f"unknown decision {rule.decision!r}; known: {', '.join(decision_specs())}"
        if (rule.value is None) == (rule.compute is None):
            return "set exactly one of value and compute"
        if rule.source == "practice":
            return None if rule.reference else "source 'practice' needs a reference URL"
        if not _SOURCE_ID.fullmatch(rule.source) or rule.source not in source_texts():
            return f"source {rule.source!r} is not an id in SOURCES.md (or 'practice')"
        return None

    def value(self, facts: Mapping[str, Any]) -> Any:
        if self.compute is None:
            spec = decision_specs()[self.rule.decision]
            # Checked when loaded; coerced here so ``none`` of a nullable decision is None.
            return self.rule.value if spec.choices_from else spec.coerce(self.rule.value, "")
        return decision_specs()[self.rule.decision].coerce(
            self.compute.evaluate(facts), f"computed by rule {self.rule.id!r}"
        )


class RuleSet:
    """Rules grouped by decision, in the order they are tried."""

    def __init__(self, rules: Iterable[Rule]):
        facts = known_facts()
        self.by_decision: dict[str, list[CompiledRule]] = {name: [] for name in decision_specs()}
        seen: dict[str, str] = {}
        for rule in rules:
            if rule.id in seen:
                raise UserError(
                    f"two rules share the id {rule.id!r} ({seen[rule.id]} and {rule.origin}); "
                    "rename one"
                )
            seen[rule.id] = rule.origin
            compiled = CompiledRule(rule, facts)
            self.by_decision[rule.decision].append(compiled)

    @property
    def rules(self) -> list[Rule]:
        return [c.rule for compiled in self.by_decision.values() for c in compiled]

    def decide(
        self, facts: Mapping[str, Any], fixed: Mapping[str, Decision]
    ) -> tuple[list[Decision], list[str]]:
        """Make every decision in order; ``fixed`` decisions (the user's overrides, the
        memory model's plan) are taken as they are, and later rules see them as facts.

        Returns the decisions and the warnings of the rules that decided.
        """
        facts = dict(facts)
        decisions, warnings = [], []
        for name, candidates in self.by_decision.items():
            if name in fixed:
                decision = fixed[name]
            else:
                decision = self._first_match(name, candidates, facts, warnings)
            facts[name] = decision.value
            decisions.append(decision)
        return decisions, warnings

    @staticmethod
    def _first_match(name: str, candidates: list[CompiledRule], facts: dict[str, Any],
                     warnings: list[str]) -> Decision:
        for compiled in candidates:
            if compiled.when.evaluate(facts):
                rule = compiled.rule
                if rule.warning and rule.warning not in warnings:
                    warnings.append(rule.warning)
                value = decision_specs()[name].proposal(compiled.value(facts))
                return Decision(name, value, rule.id, rule.source, rule.reason)
        raise UserError(f"no rule decides {name!r} for these facts; the rules need a fallback "
                        f"rule with `when: true` for {name!r}")
