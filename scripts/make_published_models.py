"""Regenerate profiles/published_models.yaml (`make published-models`): the stats of every
model that profiles/published_measurements.yaml names, at the inputs it names.

The throughput prediction (autotune/model/throughput.py) is fitted on those published
figures and needs each model's FLOPs, bytes moved and kernel launches at the row's input,
measured the way `autotune inspect` measures a user's model (plugins/torch/inspect.py).
The architectures come from timm, torchvision, transformers and ultralytics, built from
their configs without weights; those libraries are not autotune's dependencies, so the
make target installs them into a separate environment (build/models-venv). Never edit the
output by hand.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

import torch
from autotune_plugins.torch.inspect import inspect_module

from autotune.model.stats import ModelStats
from autotune.model_inputs import from_shape, parse_input_spec
from autotune.shipped_data import dump_yaml, load_profile


def _timm(name: str, **kwargs) -> tuple[str, Callable[[], torch.nn.Module]]:
    import timm  # noqa: PLC0415 - only this script needs it

    label = f"timm.create_model({name!r}, pretrained=False)"
    return label, lambda: timm.create_model(name, pretrained=False, **kwargs)


def _torchvision(name: str) -> tuple[str, Callable[[], torch.nn.Module]]:
    import torchvision  # noqa: PLC0415

    label = f"torchvision.models.{name} (weights=None)"
    return label, lambda: torchvision.models.get_model(name, weights=None)


def _bert(name: str) -> tuple[str, Callable[[], torch.nn.Module]]:
    from transformers import BertConfig, BertForQuestionAnswering  # noqa: PLC0415

    sizes = {"bert_base": {}, "bert_large": {"hidden_size": 1024, "num_hidden_layers": 24,
                                            "num_attention_heads": 16, "intermediate_size": 4096}}
    label = f"transformers BertForQuestionAnswering(BertConfig({sizes[name]}))"
    return label, lambda: BertForQuestionAnswering(BertConfig(**sizes[name])).eval()


def _yolo(name: str) -> tuple[str, Callable[[], torch.nn.Module]]:
    from ultralytics.nn.tasks import DetectionModel  # noqa: PLC0415

    return f"ultralytics DetectionModel('{name}.yaml')", lambda: DetectionModel(f"{name}.yaml", verbose=False)


#: The table's model names -> how each architecture is built (weights never matter).
ARCHITECTURES: dict[str, Callable[[], tuple[str, Callable[[], torch.nn.Module]]]] = {
    "resnet18": lambda: _torchvision("resnet18"),
    "resnet34": lambda: _torchvision("resnet34"),
    "resnet50": lambda: _torchvision("resnet50"),
    "resnet101": lambda: _torchvision("resnet101"),
    "resnet152": lambda: _torchvision("resnet152"),
    "resnext101_32x4d": lambda: _timm("resnext101_32x4d"),
    "efficientnet_b0": lambda: _timm("efficientnet_b0"),
    "efficientnet_b2": lambda: _timm("efficientnet_b2"),
    "efficientnet_b4": lambda: _timm("efficientnet_b4"),
    "mobilenet_v3_large": lambda: _timm("mobilenetv3_large_100"),
    "convnext_tiny": lambda: _timm("convnext_tiny"),
    "convnext_small": lambda: _timm("convnext_small"),
    "convnext_base": lambda: _timm("convnext_base"),
    "vit_s_16": lambda: _timm("vit_small_patch16_224", dynamic_img_size=True),
    "vit_b_16": lambda: _timm("vit_base_patch16_224", dynamic_img_size=True),
    "vit_l_16": lambda: _timm("vit_large_patch16_224", dynamic_img_size=True),
    "deit_s_16": lambda: _timm("deit_small_patch16_224", dynamic_img_size=True),
    "swin_t": lambda: _timm("swin_tiny_patch4_window7_224"),
    "regnety_032": lambda: _timm("regnety_032"),
    "bert_base": lambda: _bert("bert_base"),
    "bert_large": lambda: _bert("bert_large"),
    "yolov8n": lambda: _yolo("yolov8n"),
}


def _inputs(model: str, size: str):
    if size.startswith("seq "):
        length = int(size.split()[1])
        return parse_input_spec(f"input_ids:int64[S={length}]:tokens<30522;"
                                f"attention_mask:int64[S={length}]:ones")
    side = int(size)
    return from_shape((3, side, side))


def measured(name: str, size: str, label: str, build: Callable[[], torch.nn.Module]) -> ModelStats:
    """``name``'s stats at the table's input ``size`` ("224", "seq 384")."""
    inputs = _inputs(name, size)
    resolutions = (inputs.resolution,) if inputs.resolution else ()
    stats = inspect_module(build(), name, label, inputs, resolutions)
    # The fit reads the family; the FLOP shares it is decided from are not stored here.
    return replace(stats, convolution_flops_share=None, attention_flops_share=None)


def render() -> str:
    table = load_profile("published_measurements.yaml")["measurements"]
    sizes: dict[str, set[str]] = {}
    for row in table:
        sizes.setdefault(row["model"], set()).add(str(row["input"]))
    unknown = sorted(set(sizes) - set(ARCHITECTURES))
    if unknown:
        raise SystemExit(f"published_measurements.yaml names models with no architecture here: {unknown}")
    models = {}
    for name in sorted(sizes):
        label, build = ARCHITECTURES[name]()
        models[name] = {}
        for size in sorted(sizes[name]):
            stats = measured(name, size, label, build)
            models[name][size] = stats.to_dict()
            print(f"{name} {size}: {stats.at(stats.native_resolution).flops_per_sample / 1e9:.2f} GFLOPs, "
                  f"{stats.kernel_launches} kernels", file=sys.stderr)
    versions = ", ".join(f"{package} {version(package)}"
                         for package in ("torch", "torchvision", "timm", "transformers", "ultralytics"))
    header = ("# Generated by `make published-models` (scripts/make_published_models.py) with "
              f"{versions}:\n# do not edit. The stats of each model published_measurements.yaml "
              "names, at each input it names,\n# measured as `autotune inspect` measures a model.\n")
    return header + dump_yaml({"models": models})


def main() -> None:
    target = Path(__file__).resolve().parent.parent / "profiles" / "published_models.yaml"
    text = render()
    target.write_text(text, "utf-8")
    print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
