"""profiles/published_measurements.yaml: published GPU figures, every row complete and sourced."""

from __future__ import annotations

import re

import pytest

from autotune.hardware.gpu_database import all_specs, spec_named
from autotune.shipped_data import load_profile

REQUIRED = ("model", "gpu", "runtime", "runtime_version", "precision", "task", "batch", "input",
            "metric", "value", "source", "usable_for_fit", "notes")
OPTIONAL = ("unclear", "accelerator", "compiler", "served_by", "memory_measure")
PRECISIONS = {"fp32", "tf32", "fp16", "amp", "bf16", "int8", "fp8"}
RUNTIMES = {"pytorch", "tensorrt", "onnxruntime", "tensorflow", "paddle"}
TASKS = {"infer", "train"}
METRICS = {"samples_s", "latency_ms", "memory_gb"}
#: Training memory rows (tests/test_training_memory.py): memory in MiB, the batch a run
#: finished at / failed at.
METRICS |= {"memory_mib", "largest_batch_ran", "smallest_batch_failed"}
#: Which counter a memory figure read: torch.cuda.memory_reserved, max_memory_allocated, or
#: NVML's used memory.
MEMORY_MEASURES = {"reserved", "allocated", "device_used"}
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
    assert (row.get("memory_measure") in MEMORY_MEASURES) == row["metric"].startswith("memory_"), row
    if row["metric"] in ("largest_batch_ran", "smallest_batch_failed"):
        assert row["value"] == row["batch"], row
    if row["usable_for_fit"]:
        assert "unclear" not in row, row
        assert isinstance(row["batch"], int) and not isinstance(row["batch"], bool) and row["batch"] > 0, row
    else:
        assert isinstance(row.get("unclear"), str) and row["unclear"].strip(), row
        assert row["batch"] is None or row["batch"] > 0, row


def test_accelerator_and_compiler_say_what_ran():
    """ONNX Runtime rows run by its TensorRT accelerator, and PyTorch rows run through
    torch.compile, say so in a field (the fit tells those runtimes apart by it)."""
    for row in rows():
        assert row.get("accelerator") in (None, "tensorrt"), row
        assert row.get("accelerator") is None or row["runtime"] == "onnxruntime", row
        assert row.get("compiler") in (None, "torch.compile"), row
        assert row.get("compiler") is None or row["runtime"] == "pytorch", row
        assert row.get("served_by") in (None, "triton"), row


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
    assert len(table) == 1548 + 37  # + the training-memory block at the end
    assert len({r["gpu"] for r in table}) == 16
    assert {r["runtime"] for r in table} == {"pytorch", "tensorflow", "onnxruntime", "tensorrt"}
    assert sum(not r["usable_for_fit"] for r in table) == 262
