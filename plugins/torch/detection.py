"""Detectors that take a list of images: recognised from the model, fed and trained as they expect.

torchvision's detection and segmentation models (Faster R-CNN, Mask R-CNN, Keypoint R-CNN,
RetinaNet, SSD, SSDlite, FCOS) take ``forward(images, targets=None)``: a list of C, H, W
tensors, one per image, and, in training, one dict of targets per image; in eval mode
they return one dict of detections per image (``boxes``, ``scores``, ``labels``...), in
training a dict of losses. They resize every image to their own size
(``transform.min_size``), and their box selection (``nonzero``, NMS) depends on values,
so neither the meta device nor FakeTensorMode can run them: they are measured on a real
CPU run.

A model is recognised by its torchvision base class, or by a ``forward`` whose parameters
are ``images, targets=None`` (the same convention outside torchvision); its targets'
structure (classes, masks, keypoints) is read from its heads.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from autotune.sdk.models import DetectionTargets, ModelInputs, from_shape

#: torchvision's base classes of the models that take a list of images.
LIST_INPUT_BASES = ("GeneralizedRCNN", "RetinaNet", "SSD", "FCOS")
#: Labels are drawn from [1, this) when the model's heads do not say their classes.
GUESSED_NUM_CLASSES = 2


def takes_image_list(module: nn.Module) -> bool:
    """Whether ``forward`` takes a list of images (and targets in training) rather than a
    batched tensor: a torchvision detection model, or ``forward(images, targets=None)``."""
    for klass in type(module).__mro__:
        if klass.__module__.startswith("torchvision.models.detection") and klass.__name__ in LIST_INPUT_BASES:
            return True
    try:
        parameters = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return False
    return [p.name for p in parameters[:2]] == ["images", "targets"] and parameters[1].default is None


def _num_classes(module: nn.Module) -> int | None:
    """The classes the heads score, the background included, where a head says it."""
    predictor = getattr(getattr(module, "roi_heads", None), "box_predictor", None)
    score = getattr(predictor, "cls_score", None)
    if isinstance(score, nn.Linear):
        return score.out_features
    head = getattr(getattr(module, "head", None), "classification_head", None)
    for attribute in ("num_classes", "num_columns"):  # RetinaNet and FCOS; SSD and SSDlite
        value = getattr(head, attribute, None)
        if isinstance(value, int) and value > 1:
            return value
    return None


def detection_targets(module: nn.Module) -> DetectionTargets:
    """The targets ``module`` trains on: its classes, and masks or keypoints where its ROI
    heads predict them (Mask R-CNN, Keypoint R-CNN)."""
    roi_heads = getattr(module, "roi_heads", None)
    masks = getattr(roi_heads, "mask_predictor", None) is not None
    keypoint_predictor = getattr(roi_heads, "keypoint_predictor", None)
    keypoints = getattr(getattr(keypoint_predictor, "kps_score_lowres", None), "out_channels", 0)
    return DetectionTargets(num_classes=_num_classes(module) or GUESSED_NUM_CLASSES,
                            masks=masks, keypoints=int(keypoints or 0))


def native_size(module: nn.Module) -> int | None:
    """The size the model resizes each image's shorter side to (``transform.min_size``)."""
    min_size = getattr(getattr(module, "transform", None), "min_size", None)
    if isinstance(min_size, (tuple, list)) and min_size:
        min_size = min_size[-1]
    return int(min_size) if isinstance(min_size, int) and min_size > 0 else None


def as_image_list(module: nn.Module, inputs: ModelInputs, guessed: bool) -> ModelInputs:
    """``inputs`` marked as a list of images with the model's targets, for a model that takes
    them so; unchanged for any other model. A guessed image takes the model's own size."""
    if not takes_image_list(module):
        return inputs
    size = native_size(module)
    if guessed and size is not None and inputs.kind == "image":
        channels = inputs.primary.shape[0]
        inputs = replace(from_shape((channels, size, size), inputs.primary.name), guesses=(
            f"input {channels}x{size}x{size}: the size the model resizes every image to "
            "(transform.min_size), the channels from the first Conv2d",))
    return replace(inputs, image_list=True, targets=detection_targets(module))


def synthetic_targets(targets: DetectionTargets, images: Sequence[torch.Tensor], seed: int = 0
                      ) -> list[dict[str, torch.Tensor]]:
    """One seeded target dict per image, valid for torchvision's checks: boxes inside the
    image with x1 < x2 and y1 < y2, labels in [1, num_classes), masks filling each box,
    keypoints inside it and visible."""
    generator = torch.Generator().manual_seed(seed)
    found = []
    for image in images:
        height, width = int(image.shape[-2]), int(image.shape[-1])
        count = targets.boxes_per_image
        size = torch.tensor([width, height], dtype=torch.float32)
        corner = torch.rand(count, 2, generator=generator) * 0.5 * size
        extent = (0.125 + torch.rand(count, 2, generator=generator) * 0.375) * size
        boxes = torch.cat([corner, corner + extent], dim=1)
        target = {"boxes": boxes,
                  "labels": torch.randint(1, targets.num_classes, (count,), generator=generator)}
        if targets.masks:
            masks = torch.zeros(count, height, width, dtype=torch.uint8)
            for index, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
                masks[index, y1:y2, x1:x2] = 1
            target["masks"] = masks
        if targets.keypoints:
            share = torch.rand(count, targets.keypoints, 2, generator=generator)
            points = corner[:, None, :] + share * extent[:, None, :]
            target["keypoints"] = torch.cat([points, torch.ones(count, targets.keypoints, 1)], dim=2)
        found.append({key: value.to(image.device) for key, value in target.items()})
    return found
