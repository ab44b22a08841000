"""Predicted peak memory against torch.cuda.max_memory_allocated, on a real GPU.

For resnet18 and resnet50, inference and one training step (Adam, FP32), at three batch
sizes: the memory model's prediction (autotune/model/memory.py, from the shipped
profiles/models.yaml) beside what PyTorch's allocator really peaked at. The target is
within 10 %. Needs CUDA; tests/test_gpu.py runs the same measurement.

    python benchmarks/memory_model_accuracy.py
"""

from __future__ import annotations

import gc

import torch
import torchvision

from autotune.model.memory import predict_peak_bytes
from autotune.model.stats import reference_models

CASES = [(model, task, batch) for model in ("resnet18", "resnet50")
         for task in ("infer", "train") for batch in (16, 64, 128)]
RESOLUTION = 224


def measured_peak_bytes(model_name: str, task: str, batch: int) -> int:
    gc.collect()
    torch.cuda.empty_cache()
    model = torchvision.models.get_model(model_name, weights=None).cuda()
    sample = torch.randn(batch, 3, RESOLUTION, RESOLUTION, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    if task == "infer":
        model.eval()
        with torch.inference_mode():
            model(sample)
    else:
        optimizer = torch.optim.Adam(model.parameters())
        model(sample).float().sum().backward()
        optimizer.step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del model, sample
    return peak


def rows() -> list[dict]:
    results = []
    for model_name, task, batch in CASES:
        predicted = predict_peak_bytes(reference_models()[model_name], batch, RESOLUTION, "fp32", task)
        measured = measured_peak_bytes(model_name, task, batch)
        results.append({"model": model_name, "task": task, "batch": batch,
                        "predicted_gb": predicted / 2**30, "measured_gb": measured / 2**30,
                        "error": predicted / measured - 1})
    return results


def main() -> None:
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"{'model':<10}{'task':<7}{'batch':>6}{'predicted GB':>14}{'measured GB':>13}{'error':>8}")
    for row in rows():
        print(f"{row['model']:<10}{row['task']:<7}{row['batch']:>6}{row['predicted_gb']:>14.3f}"
              f"{row['measured_gb']:>13.3f}{row['error']:>+8.1%}")


if __name__ == "__main__":
    main()
