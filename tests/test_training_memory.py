"""The memory of real training loops against published training figures (issue 26).

Every training-memory row of profiles/published_measurements.yaml whose model's stats are
shipped (profiles/published_models.yaml): the predicted reserved memory within TOLERANCE of the
published figure, and the largest batch the memory model allows on that GPU below every batch
that failed there and, for a known loop, within one step of timm's batch schedule of the batch
that ran (for a loop not known, the stated margin below it).
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from autotune.hardware.gpu_database import spec_named
from autotune.model import memory as memory_model
from autotune.model import training_loop as loops
from autotune.model.stats import ModelStats, reference_models
from autotune.recommendation.engine import ModelRequest, recommend
from autotune.shipped_data import load_profile
from tests.conftest import simulated

GIB = 2**30
#: Predicted reserved memory against the published figure (the highest a run printed).
TOLERANCE = 0.10
#: The CUDA context (kernels) the transformers page measured before loading the model
#: ("GPU memory occupied: 1343 MB." after torch.ones((1, 1)).to("cuda")): its device_used figure
#: holds it besides what the allocator reserved.
HF_PAGE_CONTEXT_MIB = 1343
PRECISIONS = {"amp": "fp16", "fp32": "fp32"}
BATCH_METRICS = ("largest_batch_ran", "smallest_batch_failed")
MEMORY_METRICS = ("memory_gb", "memory_mib")


def _rows(metrics: tuple[str, ...]) -> list[dict]:
    shipped = load_profile("published_models.yaml")["models"]
    return [row for row in load_profile("published_measurements.yaml")["measurements"]
            if row["task"] == "train" and row["metric"] in metrics
            and str(row["input"]) in shipped.get(row["model"], {})]


def _stats(row: dict) -> ModelStats:
    shipped = load_profile("published_models.yaml")["models"]
    return ModelStats.from_dict(shipped[row["model"]][str(row["input"])])


def _largest_batch(row: dict) -> int:
    """The largest batch the memory model allows on the row's GPU, all of it free."""
    stats = _stats(row)
    usable = memory_model.usable_bytes(spec_named(row["gpu"]).vram_gb * GIB, 0.9)
    return memory_model.max_batch(stats, usable, stats.native_resolution, PRECISIONS[row["precision"]],
                                  "train", "adam")


def _timm_step_below(batch: int) -> int:
    """timm.utils.decay_batch_step(batch): the batch benchmark.py tries after ``batch`` fails."""
    base = int(2 ** (math.log(batch - 1) // math.log(2)))
    step = max(base // 2, 1)
    return base + ((batch - base - 1) // step) * step


def _published_reserved_bytes(row: dict) -> float:
    if row["memory_measure"] == "reserved" and row["metric"] == "memory_gb":
        return row["value"] * 1e9  # Ultralytics prints memory_reserved() / 1E9
    if row["memory_measure"] == "device_used" and row["metric"] == "memory_mib":
        return (row["value"] - HF_PAGE_CONTEXT_MIB) * 2**20
    raise AssertionError(f"no conversion for {row['metric']} / {row['memory_measure']}: {row}")


def test_the_published_training_rows_are_there():
    assert len(_rows(MEMORY_METRICS)) == 3
    assert len(_rows(BATCH_METRICS)) == 34


@pytest.mark.parametrize("row", _rows(MEMORY_METRICS), ids=lambda r: f"{r['model']}-{r['value']}")
def test_predicted_reserved_memory_matches_the_published_figure(row):
    stats = _stats(row)
    predicted = memory_model.fit_bytes(stats, row["batch"], stats.native_resolution,
                                       PRECISIONS[row["precision"]], "train")
    same_run = [other for other in _rows(MEMORY_METRICS)
                if (other["model"], other["gpu"], other["batch"]) == (row["model"], row["gpu"], row["batch"])]
    peak = max(_published_reserved_bytes(other) for other in same_run)
    # The prediction is the loop's peak: within TOLERANCE of the highest figure the run printed,
    # and never below a lower one (Ultralytics' first epoch, before its first validation).
    assert abs(predicted / peak - 1) <= TOLERANCE, (predicted / GIB, peak / GIB)
    assert predicted >= _published_reserved_bytes(row) * (1 - TOLERANCE)


@pytest.mark.parametrize("row", _rows(("smallest_batch_failed",)), ids=lambda r: f"{r['model']}-{r['batch']}")
def test_largest_batch_is_below_the_batch_that_failed(row):
    assert _largest_batch(row) < row["batch"]


@pytest.mark.parametrize("row", _rows(("largest_batch_ran",)), ids=lambda r: f"{r['model']}-{r['batch']}")
def test_largest_batch_is_near_the_batch_that_ran(row):
    largest, stats = _largest_batch(row), _stats(row)
    step_below = _timm_step_below(row["batch"])
    if stats.training_loop:
        assert largest > step_below, (largest, row["batch"])
    else:  # the loop is not known: the margin kept free may cost a step, not more
        assert largest >= step_below * (1 - loops.unknown_loop_margin()), (largest, row["batch"])


def test_the_loop_is_recognised_from_the_models_package():
    shipped = load_profile("published_models.yaml")["models"]
    loop = {name: next(iter(sizes.values())).get("training_loop", "") for name, sizes in shipped.items()}
    assert loop["yolov8n"] == "ultralytics"
    assert loop["convnext_tiny"] == loop["vit_b_16"] == "timm"
    assert loop["bert_large"] == "transformers"
    assert loop["resnet50"] == ""  # torchvision: no training loop of its own
    assert loops.loop_for_package("ultralytics") == "ultralytics" and loops.loop_for_package("numpy") == ""


def test_an_unknown_loop_keeps_the_margin_free():
    stats = reference_models()["resnet50"]
    known = dataclasses.replace(stats, training_loop="timm")
    usable = 20 * GIB
    unknown_batch = memory_model.max_batch(stats, usable, 224, "fp16", "train", "adam")
    known_batch = memory_model.max_batch(known, usable, 224, "fp16", "train", "adam")
    assert unknown_batch < known_batch
    margin = loops.unknown_loop_margin()
    assert memory_model.fit_bytes(stats, unknown_batch, 224, "fp16", "train") <= usable * (1 - margin)
    assert memory_model.fit_bytes(stats, unknown_batch + 1, 224, "fp16", "train") > usable * (1 - margin)


def test_ultralytics_validation_at_twice_the_batch_counts():
    stats = _stats(_rows(MEMORY_METRICS)[0])
    loop = loops.loop_named(stats.training_loop)
    assert loop is not None and loop.validation_batch_factor == 2 and loop.ema_weight_copies == 1
    # With no loss extras, training at batch b still reserves at least validation at 2b.
    bare = dataclasses.replace(loop, extra_bytes_per_pixel=0)
    assert loop.extras().startswith("the loss's assigner") and "EMA" in loop.extras()
    assert "validation at 2x the batch" in bare.extras()


def test_recommend_names_the_training_loops_extras():
    yolo = _stats(_rows(MEMORY_METRICS)[0])
    train = {"task": "train", "objective": "throughput", "tier": "balanced"}
    decision = recommend(simulated("T4"), train, model=ModelRequest(stats=yolo)).decision("batch_size")
    assert "Ultralytics trainer" in decision.reason and "EMA" in decision.reason
    assert "assigner" in decision.reason and "validation at 2x" in decision.reason
    unknown = recommend(simulated("T4"), train, model=ModelRequest(stats=reference_models()["resnet50"]))
    assert "training loop not known" in unknown.decision("batch_size").reason
