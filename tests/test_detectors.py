"""Detectors that take a list of images (torchvision's), built for real with random weights:
recognised from the model, fed a list of images, trained on synthetic targets, measured on a
real CPU run, verified and benchmarked on torch, and refused by the ONNX export in one line."""

from __future__ import annotations

import json
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
from autotune_plugins.torch.convert import to_onnx  # noqa: E402
from autotune_plugins.torch.detection import (  # noqa: E402
    as_image_list,
    detection_targets,
    synthetic_targets,
    takes_image_list,
)
from autotune_plugins.torch.io import call_model, synthetic_tensors, training_loss  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from torchvision.models import resnet18  # noqa: E402

from autotune.model.source import model_stats_for, parse_model  # noqa: E402
from autotune.model_inputs import DETECTIONS_NOT_COMPARED, DetectionTargets, ModelInputs, from_shape  # noqa: E402
from autotune.sdk.models import ConversionRequest  # noqa: E402
from autotune.sdk.running import BackendUnavailable  # noqa: E402
from tests import detector_models  # noqa: E402
from tests.test_cli import run  # noqa: E402

SIZE = detector_models.SIZE
SHAPE = f"3,{SIZE},{SIZE}"


def stats_of(name: str, shape: str | None = SHAPE):
    return model_stats_for(parse_model(f"tests.detector_models:{name}", shape, None), (SIZE,))


@pytest.mark.parametrize(("name", "expected"), [
    ("fasterrcnn", DetectionTargets(num_classes=5)),
    ("ssdlite", DetectionTargets(num_classes=5)),
    ("retinanet", DetectionTargets(num_classes=5)),
    ("maskrcnn", DetectionTargets(num_classes=5, masks=True)),
    ("keypointrcnn", DetectionTargets(num_classes=2, keypoints=4)),
])
def test_a_torchvision_detector_is_recognised_with_the_targets_it_trains_on(name, expected):
    model = getattr(detector_models, name)()
    assert takes_image_list(model)
    assert detection_targets(model) == expected


def test_a_classifier_is_not_taken_for_a_detector():
    assert not takes_image_list(resnet18())


def test_synthetic_targets_pass_torchvisions_checks():
    spec = DetectionTargets(num_classes=3, masks=True, keypoints=5, boxes_per_image=4)
    images = [torch.zeros(3, 40, 60), torch.zeros(3, 80, 30)]
    for image, target in zip(images, synthetic_targets(spec, images), strict=True):
        height, width = image.shape[1:]
        boxes = target["boxes"]
        assert boxes.shape == (4, 4) and boxes.dtype == torch.float32
        assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
        assert (boxes >= 0).all() and (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
        assert target["labels"].dtype == torch.int64
        assert ((target["labels"] >= 1) & (target["labels"] < 3)).all()
        assert target["masks"].shape == (4, height, width) and target["masks"].dtype == torch.uint8
        assert target["masks"].sum() > 0
        assert target["keypoints"].shape == (4, 5, 3)
    again = synthetic_targets(spec, images)[0]["boxes"]
    assert torch.equal(synthetic_targets(spec, images)[0]["boxes"], again)


@pytest.mark.parametrize("name", ["fasterrcnn", "maskrcnn", "keypointrcnn"])
def test_a_detector_trains_on_synthetic_targets_and_its_loss_is_the_sum_of_its_losses(name):
    model = getattr(detector_models, name)().train()
    inputs = as_image_list(model, from_shape((3, SIZE, SIZE)), guessed=False)
    assert inputs.image_list and inputs.targets == detection_targets(model)
    output = call_model(model, synthetic_tensors(inputs, 1), inputs)
    assert all(key.startswith("loss") for key in output)
    loss = training_loss(output, inputs)
    assert torch.isclose(loss, sum(output.values()))
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    with torch.inference_mode():
        detections = call_model(model, synthetic_tensors(inputs, 2), inputs)
    assert len(detections) == 2 and {"boxes", "scores", "labels"} <= set(detections[0])


def test_inspect_measures_a_detector_on_a_real_cpu_run():
    stats = stats_of("fasterrcnn")
    model = detector_models.fasterrcnn().eval()
    assert stats.parameters == sum(p.numel() for p in model.parameters())
    assert stats.method.startswith("a real CPU run") and "resizes every image itself" in stats.method
    assert stats.output == DETECTIONS_NOT_COMPARED
    assert stats.inputs.image_list and stats.fixed_resolution
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model([torch.randn(3, SIZE, SIZE)])
    figures = stats.at(SIZE)
    assert figures.flops_per_sample == pytest.approx(counter.get_total_flops(), rel=0.05)
    assert figures.train_activation_bytes["fp32"] > figures.infer_activation_bytes["fp32"] > 0
    assert ModelInputs.from_dict(stats.inputs.to_dict()) == stats.inputs


def test_a_detector_without_an_input_shape_takes_the_size_it_resizes_to():
    inputs = stats_of("fasterrcnn", None).inputs
    assert inputs.resolution == SIZE and inputs.image_list
    assert any("transform.min_size" in guess for guess in inputs.guesses)


def test_the_onnx_export_of_a_detector_is_refused_in_one_line_before_building():
    inputs = as_image_list(detector_models.fasterrcnn(), from_shape((3, SIZE, SIZE)), guessed=False)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="list of detections per image") as error:
        to_onnx(parse_model("tests.detector_models:fasterrcnn", SHAPE, None),
                ConversionRequest(inputs=inputs, dynamic_batch=True))
    assert time.monotonic() - started < 1.0 and "\n" not in str(error.value)


def test_a_detectors_recommendation_names_only_the_runtime_that_runs_it(capsys):
    code, out, err = run(capsys, "recommend", "--model", "tests.detector_models:fasterrcnn", "--input-shape",
                         SHAPE, "--gpu", "A100", "--task", "infer", "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    assert document["settings"]["backends"] == ["torch"]
    assert document["reasons"]["backends"]["rule"] == "backends-image-list"
    assert document["settings"]["quantization"] == "none"
    assert document["model"]["predicted_for"]["runtime"] == "pytorch"


@pytest.mark.usefixtures("quick_timing")
def test_a_detector_is_verified_on_torch_and_benchmarked_in_training(capsys):
    model = "tests.detector_models:fasterrcnn"
    code, out, err = run(capsys, "verify", "--model", model, "--input-shape", SHAPE, "--budget-s", "15",
                         "--backend", "onnxruntime,torch", "--set", "batch_size=2", "--format", "json")
    assert code == 0, err
    reports = {report["backend"]: report for report in json.loads(out)["measurements"]}
    assert reports["torch"]["status"] == "measured"
    assert reports["onnxruntime"]["status"] != "measured"
    assert "list of detections per image" in reports["onnxruntime"]["reason"] or \
        "not installed" in reports["onnxruntime"]["reason"]
    half = [row for row in reports["torch"]["measurements"] if row["precision"] != "fp32"]
    assert all(DETECTIONS_NOT_COMPARED in row.get("reason", "") for row in half if row["status"] == "ok")

    started = time.monotonic()
    code, out, err = run(capsys, "bench", "--model", model, "--input-shape", SHAPE, "--task", "train",
                         "--sweep", "batch=1", "--budget-s", "60", "--json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert any(row["status"] == "ok" and row["throughput_samples_s"] > 0 for row in rows), rows
    assert time.monotonic() - started < 90
