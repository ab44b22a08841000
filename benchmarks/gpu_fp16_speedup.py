"""On a GPU: FP16 against FP32 for ResNet-18 inference at batch 1 and 16, compared with
S001-5 (T4: 1.68x at batch 1, 1.84x at batch 16). Configurations interleaved, repeated,
medians quoted.

    python benchmarks/gpu_fp16_speedup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from autotune_plugins.torch.runner import TorchRunner

from autotune.backend_api import RunConfig
from autotune.measure.measurer import Measurer
from autotune.model.source import parse_model
from autotune.model.stats import reference_models

DOCUMENT = {1: 1.68, 16: 1.84}  # S001-5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    measurer = Measurer("torch", TorchRunner(), parse_model("resnet18"), reference_models()["resnet18"],
                        "cuda", ("fp32", "fp16"))
    latencies: dict[tuple[str, int], list[float]] = {}
    for _ in range(repeats):
        for batch in DOCUMENT:
            for precision in ("fp32", "fp16"):
                config = RunConfig("infer", precision, batch, 224).with_options(cudnn_benchmark=True)
                latencies.setdefault((precision, batch), []).append(
                    measurer.measure(config, check_accuracy=False).timing.p50_ms)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, resnet18 224 px, "
          f"median of {repeats} interleaved runs")
    for batch, document in DOCUMENT.items():
        fp32 = statistics.median(latencies[("fp32", batch)])
        fp16 = statistics.median(latencies[("fp16", batch)])
        print(f"batch {batch:>2}: fp32 {fp32:.2f} ms, fp16 {fp16:.2f} ms: {fp32 / fp16:.2f}x "
              f"(S001-5 on a T4: {document:.2f}x)")


if __name__ == "__main__":
    main()
