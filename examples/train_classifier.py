"""Train a torchvision classifier the way autotune says this machine should, on synthetic data.

    python examples/train_classifier.py [--steps 20] [--model resnet18] [--batch-size N] [--resolution PX]

``import autotune.auto`` reads this machine's training profile (or makes a rules-only one),
applies TF32 and cudnn.benchmark as it chose, and says so in one line. ``autotune.apply``
places the model, and gives the autocast context and the loss scaler (on for FP16 only).
``AccumulatingStep`` keeps the effective batch when CUDA runs out of memory mid-training: it
halves the micro-batch and doubles the gradient accumulation instead of failing.
"""

from __future__ import annotations

import argparse

import torch
import torchvision

import autotune
import autotune.auto  # noqa: F401 - first, before the model is built: it applies global settings
from autotune.training.oom_proof import AccumulatingStep


def main() -> None:
    config = autotune.auto.config
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model", default="resnet18", help="a torchvision classifier")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"default: autotune's ({config.batch_size})")
    parser.add_argument("--resolution", type=int, default=None,
                        help=f"default: autotune's ({config.resolution})")
    args = parser.parse_args()
    batch_size = args.batch_size or config.batch_size or 32
    resolution = args.resolution or config.resolution or 224
    why = "given" if args.batch_size else config.reasons.get("batch_size", "autotune disabled")
    print(f"batch {batch_size} ({why}); {resolution} px; precision {config.precision}")

    torch.manual_seed(0)
    model, autocast, scaler = autotune.apply(getattr(torchvision.models, args.model)(num_classes=10))
    device = next(model.parameters()).device
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()

    def micro_step(images, labels, weight):
        with autocast():
            loss = criterion(model(images), labels) * weight
        scaler.scale(loss).backward()
        return loss.detach()

    step = AccumulatingStep(zero_grad=optimizer.zero_grad, micro_step=micro_step)
    model.train()
    for index in range(args.steps):
        images = torch.randn(batch_size, 3, resolution, resolution, device=device)
        images = images.to(memory_format=memory_format)
        labels = torch.randint(0, 10, (batch_size,), device=device)
        loss = sum(step(images, labels))
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
        print(f"step {index + 1}/{args.steps}: loss {float(loss):.4f} "
              f"({step.accumulation_steps} x {step.micro_batch_size or batch_size} samples)")


if __name__ == "__main__":
    main()
