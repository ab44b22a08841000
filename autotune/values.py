"""Typed values from text: the one coercion every setting goes through.

Decisions (``profiles/rules.yaml``), backend options (declared by each backend) and
config-file values are all bool, int, a choice, or a list of choices, and arrive as
Python values (YAML, TOML, the API) or as text (flags, ``--set``, env files).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from autotune.errors import UserError

TRUE_WORDS = {"true", "yes", "on", "1"}
FALSE_WORDS = {"false", "no", "off", "0"}
TYPES = ("bool", "int", "choice", "list")


def coerce(name: str, kind: str, value: Any, where: str, choices: Iterable[str] = (),
           minimum: int | None = None, nullable: bool = False) -> Any:
    """``value`` as a ``kind`` value; raises :class:`UserError` naming ``name``, ``where``
    it was set, and what it must be. A ``nullable`` value may also be ``none`` (None): a
    decision that does not apply to this model (no resolution for a text model)."""
    choices = tuple(choices)
    if nullable and (value is None or (isinstance(value, str) and value.lower() == "none")):
        return None

    def fail(expected: str) -> UserError:
        return UserError(f"{name} {where} must be {expected}, got {value!r}")

    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in TRUE_WORDS | FALSE_WORDS:
            return value.lower() in TRUE_WORDS
        raise fail("true or false")
    if kind == "int":
        if isinstance(value, bool):
            raise fail("a whole number")
        try:
            number = int(value) if isinstance(value, (int, str)) else None
        except ValueError:
            number = None
        if number is None or (minimum is not None and number < minimum):
            raise fail(f"a whole number of at least {minimum}" + (" or none" if nullable else ""))
        return number
    if kind == "list":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise fail(f"a list drawn from {', '.join(choices)}")
        items = [str(item).strip().lower() for item in items]
        if any(item not in choices for item in items):
            raise fail(f"a list drawn from {', '.join(choices)}")
        return items
    text = str(value).lower() if isinstance(value, str) else value
    if text not in choices:
        raise fail(f"one of {', '.join(choices)}")
    return text
