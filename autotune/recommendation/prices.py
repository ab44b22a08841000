"""``autotune compare --prices FILE``: what each GPU costs an hour, as the user writes it.

A YAML mapping (``T4: 0.35``) or a CSV of ``gpu,usd_per_hour`` rows (a header line is
allowed). Every GPU name is resolved as ``--gpu`` resolves it, so ``a100`` and
``A100 40GB SXM`` are one board; a problem with the file is one :class:`UserError` naming
the file, the problem and the fix.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from autotune.errors import UserError
from autotune.files import CONFIG_MAX_BYTES, parse_user_yaml, read_user_file, yaml_error_text
from autotune.hardware import gpu_database as gpudb

FIX = "write one GPU name and its price in $/hour per entry, e.g. 'T4: 0.35' (YAML) or 'T4,0.35' (CSV)"


def read_prices(path: Path) -> dict[str, float]:
    """GPU spec name -> $/hour, from ``path`` (``.yaml``/``.yml`` or ``.csv``)."""
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".csv"):
        raise UserError(f"prices file {path}: autotune reads .yaml, .yml or .csv; rename it to say which")
    text = read_user_file(path, "prices file", max_bytes=CONFIG_MAX_BYTES, text=True, fix=FIX)
    entries = _csv_entries(text, path) if suffix == ".csv" else _yaml_entries(text, path)
    if not entries:
        raise UserError(f"prices file {path} names no GPU; {FIX}")
    return _table(entries)


def check_prices(prices: Mapping[str, Any]) -> dict[str, float]:
    """GPU spec name -> $/hour, from a mapping given in code (names as ``--gpu`` takes them)."""
    return _table([(f"prices[{name!r}]", str(name), value) for name, value in prices.items()])


def _table(entries: list[tuple[str, str, Any]]) -> dict[str, float]:
    """Each entry is (where it was written, GPU name, price)."""
    prices: dict[str, float] = {}
    written_as: dict[str, str] = {}
    for where, name, value in entries:
        spec = _resolve(name, where)
        price = _price(value, name, where)
        if spec.name in prices and prices[spec.name] != price:
            raise UserError(f"{where}: {name!r} is {spec.name}, already priced {prices[spec.name]:g} as "
                            f"{written_as[spec.name]!r}; keep one price per GPU")
        prices[spec.name], written_as[spec.name] = price, name
    return prices


def _yaml_entries(text: str, path: Path) -> list[tuple[str, str, Any]]:
    try:
        data = parse_user_yaml(text)
    except yaml.YAMLError as error:
        raise UserError(f"prices file {path} is not valid YAML{yaml_error_text(error)}; {FIX}") from None
    if not isinstance(data, dict):
        raise UserError(f"prices file {path} must be a mapping of GPU name to $/hour, got "
                        f"{type(data).__name__}; {FIX}")
    return [(f"prices file {path}", str(name), value) for name, value in data.items()]


def _csv_entries(text: str, path: Path) -> list[tuple[str, str, Any]]:
    entries = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if len(cells) != 2:
            raise UserError(f"prices file {path} line {number}: {len(cells)} columns, expected 2 "
                            f"(gpu, usd_per_hour); {FIX}")
        if not entries and number == 1 and not _is_number(cells[1]):
            continue  # a header line
        entries.append((f"prices file {path} line {number}", cells[0], cells[1]))
    return entries


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _resolve(name: str, where: str) -> gpudb.GpuSpec:
    try:
        return gpudb.resolve(name)
    except UserError as error:
        raise UserError(f"{where}: {error}") from None


def _price(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool):
        value = None  # YAML's yes/no are not prices
    try:
        price = float(value)
    except (TypeError, ValueError):
        price = float("nan")
    if not math.isfinite(price) or price <= 0:
        raise UserError(f"{where}: the price of {name} must be a positive number of "
                        f"$/hour, got {value!r}; {FIX}")
    return price
