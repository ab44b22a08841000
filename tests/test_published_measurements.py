"""profiles/published_measurements.yaml: published GPU figures, every row complete and sourced."""

from __future__ import annotations

import re

import pytest

from autotune.hardware.gpu_database import all_specs, spec_named
from autotune.shipped_data import load_profile

REQUIRED = ("model", "gpu", "runtime", "runtime_version", "precision", "task", "batch", "input",
            "metric", "value", "source", "usable_for_fit", "notes")
OPTIONAL = ("unclear",)
PRECISIONS = {"fp32", "tf32", "fp16", "amp", "bf16", "int8", "fp8"}
RUNTIMES = {"pytorch", "tensorrt", "onnxruntime", "tensorflow", "paddle"}
TASKS = {"infer", "train"}
METRICS = {"samples_s", "latency_ms", "memory_gb"}
COMMIT = re.compile(r"@ [0-9a-f]{40}\b")


def rows() -> list[dict]:
    return load_profile("published_measurements.yaml")["measurements"]


@pytest.mark.parametrize("index", range(len(rows())))
def test_row_is_complete(index):
    row = rows()[index]
    assert set(row) - set(REQUIRED) - set(OPTIONAL) == set(), row
    for key in REQUIRED:
        assert key in row, (key, row)
    for key in ("model", "gpu", "runtime_version", "input", "source", "notes"):
        assert isinstance(row[key], str) and row[key].strip(), (key, row)
    assert row["precision"] in PRECISIONS, row
    assert row["runtime"] in RUNTIMES, row
    assert row["task"] in TASKS, row
    assert row["metric"] in METRICS, row
    assert re.fullmatch(r"\d+|seq \d+", row["input"]), row
    assert isinstance(row["value"], (int, float)) and not isinstance(row["value"], bool), row
    assert row["value"] > 0, row
    assert isinstance(row["usable_for_fit"], bool), row
    if row["usable_for_fit"]:
        assert "unclear" not in row, row
        assert isinstance(row["batch"], int) and not isinstance(row["batch"], bool) and row["batch"] > 0, row
    else:
        assert isinstance(row.get("unclear"), str) and row["unclear"].strip(), row
        assert row["batch"] is None or row["batch"] > 0, row


@pytest.mark.parametrize("index", range(len(rows())))
def test_row_names_a_known_gpu_or_says_not(index):
    row = rows()[index]
    assert spec_named(row["gpu"]) is not None or "not in the GPU database" in row["notes"], row
    if spec_named(row["gpu"]) is not None:
        assert row["gpu"] in {spec.name for spec in all_specs()}


@pytest.mark.parametrize("index", range(len(rows())))
def test_source_names_repository_file_and_commit(index):
    source = rows()[index]["source"]
    if source.startswith("github:"):
        assert COMMIT.search(source), source
        assert re.match(r"github:[\w.-]+/[\w.-]+ \S+", source), source
    else:
        assert source.startswith("https://"), source


def test_no_row_repeats():
    keys = [(r["model"], r["gpu"], r["runtime"], r["runtime_version"], r["precision"], r["task"],
             r["batch"], r["input"], r["metric"], r["source"]) for r in rows()]
    assert len(keys) == len(set(keys))


def test_counts_reached():
    table = rows()
    assert len(table) == 1548
    assert len({r["gpu"] for r in table}) == 16
    assert {r["runtime"] for r in table} == {"pytorch", "tensorflow", "onnxruntime", "tensorrt"}
    assert sum(not r["usable_for_fit"] for r in table) == 182
