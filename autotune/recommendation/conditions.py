"""The condition language of the rules: small Python-like expressions over flat facts.

A rule's ``when`` (and ``compute``) is one expression, for example::

    gpu.vram_gb >= 7 and task == 'infer' and 'fp16' in gpu.precisions
    min(8, host.available_cores // 2)

What it allows, and nothing more:

* facts by their dotted name (``gpu.vram_gb``, ``task``, ``precision``); a name that is
  not a known fact is an error when the rule is loaded, not when it runs;
* literals: numbers, strings in quotes, ``true``/``false`` (or ``True``/``False``),
  lists ``[a, b]``;
* comparisons ``== != < <= > >=``, membership ``in`` / ``not in``, ``and``, ``or``,
  ``not``, parentheses, arithmetic ``+ - * / //``;
* the functions ``min``, ``max``, ``round``, ``int``, ``pow2_floor`` (the largest
  power of two not above its argument, at least 1) and ``scale_tier(native, tier)`` (an
  S000-5 tier resolution scaled to a model whose native size is ``native``).

Expressions are parsed with Python's own :mod:`ast` and evaluated by walking the tree,
never with ``eval``: only the node types above are accepted.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Collection, Mapping
from typing import Any

from autotune.model_inputs import scale_tier


class ConditionError(ValueError):
    """An expression that is not in the language, or names an unknown fact."""


def _pow2_floor(value: float) -> int:
    return 1 if value < 2 else 2 ** int(math.floor(math.log2(value)))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "round": round,
    "int": int,
    "pow2_floor": _pow2_floor,
    "scale_tier": scale_tier,
}
_LITERAL_NAMES = {"true": True, "false": False, "True": True, "False": False}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_ARITHMETIC = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
}


def _fact_name(node: ast.AST) -> str | None:
    """``gpu.vram_gb`` parses as Attribute(Name('gpu'), 'vram_gb'): join it back."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        parent = _fact_name(node.value)
        return None if parent is None else f"{parent}.{node.attr}"
    return None


class Expression:
    """A parsed, validated expression, ready to evaluate against many fact sets."""

    def __init__(self, text: str, known_facts: Collection[str]):
        self.text = text
        try:
            self._tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as error:
            raise ConditionError(f"cannot parse {text!r}: {error.msg}") from None
        self._check(self._tree, known_facts)

    def _check(self, node: ast.AST, known_facts: Collection[str]) -> None:
        name = _fact_name(node)
        if name is not None:
            if name not in known_facts and name not in _LITERAL_NAMES:
                raise ConditionError(f"unknown fact {name!r} in {self.text!r}")
            return
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS) or node.keywords:
                raise ConditionError(
                    f"only {', '.join(FUNCTIONS)} may be called, in {self.text!r}"
                )
            children: list[ast.AST] = list(node.args)
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float, str, bool)):
                raise ConditionError(f"unsupported literal {node.value!r} in {self.text!r}")
            return
        elif isinstance(node, ast.BoolOp):
            children = list(node.values)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            children = [node.operand]
        elif isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            children = [node.left, *node.comparators]
        elif isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            children = [node.left, node.right]
        elif isinstance(node, (ast.List, ast.Tuple)):
            children = list(node.elts)
        else:
            raise ConditionError(
                f"{type(node).__name__} is not allowed in rule expressions: {self.text!r}"
            )
        for child in children:
            self._check(child, known_facts)

    def evaluate(self, facts: Mapping[str, Any]) -> Any:
        return self._evaluate(self._tree, facts)

    def _evaluate(self, node: ast.AST, facts: Mapping[str, Any]) -> Any:
        name = _fact_name(node)
        if name is not None:
            return facts[name] if name in facts else _LITERAL_NAMES[name]
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(self._evaluate(value, facts) for value in node.values)
            return any(self._evaluate(value, facts) for value in node.values)
        if isinstance(node, ast.UnaryOp):
            operand = self._evaluate(node.operand, facts)
            return (not operand) if isinstance(node.op, ast.Not) else -operand
        if isinstance(node, ast.Compare):
            left = self._evaluate(node.left, facts)
            for op, comparator in zip(node.ops, node.comparators, strict=False):
                right = self._evaluate(comparator, facts)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.BinOp):
            return _ARITHMETIC[type(node.op)](
                self._evaluate(node.left, facts), self._evaluate(node.right, facts)
            )
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self._evaluate(element, facts) for element in node.elts]
        assert isinstance(node, ast.Call)  # _check admitted nothing else
        function = FUNCTIONS[node.func.id]  # type: ignore[attr-defined]
        return function(*(self._evaluate(arg, facts) for arg in node.args))
