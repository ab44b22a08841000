"""The roofline is an upper bound: no published throughput in profiles/published_measurements.yaml
whose conditions are known (usable_for_fit) may exceed it, in any precision (INT8 and FP8
included, where the table has them)."""

import pytest

from autotune.hardware.gpu_database import spec_named
from autotune.model import memory as memory_model
from autotune.model.stats import ModelStats
from autotune.shipped_data import load_profile

#: How the table's precision words map onto the roofline's (AMP runs the Tensor Cores in FP16).
PRECISION = {"amp": "fp16", "fp16": "fp16", "bf16": "bf16", "fp32": "fp32", "tf32": "tf32",
             "int8": "int8", "fp8": "fp8"}


def published_stats(row) -> ModelStats | None:
    """The stats of the row's model at the row's input (profiles/published_models.yaml)."""
    entry = load_profile("published_models.yaml")["models"].get(row["model"], {}).get(str(row["input"]))
    return ModelStats.from_dict(entry) if entry is not None else None


def bounded_rows():
    return [row for row in load_profile("published_measurements.yaml")["measurements"]
            if row["metric"] == "samples_s" and row["usable_for_fit"] and published_stats(row) is not None
            and spec_named(row["gpu"]) is not None]


def test_the_table_has_rows_the_roofline_can_be_held_to():
    rows = bounded_rows()
    assert len(rows) >= 500
    assert sum(row["precision"] == "int8" for row in rows) >= 5


def row_id(row) -> str:
    return (f"{row['model']}-{row['input']}-{row['gpu']}-{row['runtime']}-{row['precision']}-{row['task']}"
            f"-b{row['batch']}")


@pytest.mark.parametrize("row", bounded_rows(), ids=row_id)
def test_no_published_throughput_is_above_the_roofline(row):
    precision = PRECISION[row["precision"]]
    stats, spec = published_stats(row), spec_named(row["gpu"])
    resolution = int(row["input"]) if str(row["input"]).isdigit() else None
    ceiling = memory_model.roofline(stats, spec, resolution, precision, tf32=precision == "tf32",
                                    task=row["task"]).ceiling_samples_s
    assert row["value"] <= ceiling


def test_int8_published_figures_beat_the_unfused_bytes_limit_where_tensorrt_fuses():
    """Why the roofline is peak FLOPs alone: MLPerf's TensorRT INT8 ResNet-50 on an L4 runs
    above what its operators' unfused bytes would allow."""
    row = next(row for row in bounded_rows() if row["gpu"] == "L4" and row["precision"] == "int8")
    roofline = memory_model.roofline(published_stats(row), spec_named("L4"), int(row["input"]), "int8")
    assert roofline.memory_samples_s < row["value"] <= roofline.ceiling_samples_s
