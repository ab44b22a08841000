"""Small torchvision detectors for tests/test_detectors.py: the real models, random weights,
resized to 96 px and few classes so each runs in a fraction of a second on a CPU."""

from __future__ import annotations

from torchvision.models import detection

#: The size every factory here resizes images to (``transform.min_size``).
SIZE = 96
SMALL = {"weights": None, "weights_backbone": None, "num_classes": 5}


def fasterrcnn():
    return detection.fasterrcnn_mobilenet_v3_large_320_fpn(**SMALL, min_size=SIZE, max_size=SIZE)


def ssdlite():
    return detection.ssdlite320_mobilenet_v3_large(**SMALL)


def retinanet():
    return detection.retinanet_resnet50_fpn(**SMALL, min_size=SIZE, max_size=SIZE)


def maskrcnn():
    return detection.maskrcnn_resnet50_fpn(**SMALL, min_size=SIZE, max_size=SIZE)


def keypointrcnn():
    return detection.keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_keypoints=4,
                                               min_size=SIZE, max_size=SIZE)
