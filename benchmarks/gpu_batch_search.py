"""On a GPU: autotune's batch search against the true largest batch and against a peer.

- The true largest batch: bisection with real training steps until exact (slow; ground truth).
- autotune: the memory model's prediction confirmed by `search_largest_batch` (target: at
  most 2 trials when the prediction holds, and within 10 % of the true largest).
- Accelerate's `find_executable_batch_size` (when accelerate is installed): starts at 1024,
  halves on every out-of-memory error — trials and time to answer.

    python benchmarks/gpu_batch_search.py [--model resnet50] [--task train]
"""

from __future__ import annotations

import argparse
import gc
import time
from dataclasses import replace

import torch
from autotune_plugins.torch.runner import TorchRunner

from autotune.backend_api import RunConfig
from autotune.measure.batch_search import Trial, search_largest_batch
from autotune.model import memory as memory_model
from autotune.model.source import parse_model, shape_at_resolution
from autotune.model.stats import reference_models


def open_session(runner: TorchRunner, model, config: RunConfig):
    shape = shape_at_resolution(reference_models()[model.spec].input_shape, config.resolution)
    return runner.open(runner.prepare(model, config.preparation(shape), "cuda", config.batch_size), config)


def peak_or_none(runner: TorchRunner, model, config: RunConfig) -> int | None:
    """One real step at ``config``: its peak memory, or None when it ran out of memory."""
    session = None
    try:
        session = open_session(runner, model, config)
        session.step()
        torch.cuda.synchronize()
        return session.peak_memory_bytes()
    except torch.OutOfMemoryError:
        return None
    finally:
        if session is not None:
            session.close()
        gc.collect()
        torch.cuda.empty_cache()


def trial(runner: TorchRunner, model, config: RunConfig) -> Trial:
    peak = peak_or_none(runner, model, config)
    return Trial(peak is not None, peak)


def true_largest(fits, high: int = 1 << 15) -> int:
    low = 0  # fits(low) is True for low = 0 by definition
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def autotune_search(runner, model, stats, config: RunConfig, usable: float):
    predicted = memory_model.max_batch(stats, usable, config.resolution, config.precision,
                                       config.task, "adam")
    started = time.monotonic()
    result = search_largest_batch(
        lambda batch: trial(runner, model, replace(config, batch_size=batch)),
        max(1, predicted), memory_model.static_bytes(stats, config.precision, config.task, "adam"), usable,
        lambda batch: memory_model.predict_peak_bytes(stats, batch, config.resolution, config.precision,
                                                      config.task))
    return result, time.monotonic() - started, predicted


def accelerate_search(runner, model, config: RunConfig):
    from accelerate.utils import find_executable_batch_size

    trials = []

    @find_executable_batch_size(starting_batch_size=1024)
    def step(batch_size):
        trials.append(batch_size)
        session = open_session(runner, model, replace(config, batch_size=batch_size))
        try:
            session.step()
            torch.cuda.synchronize()
        finally:
            session.close()
        return batch_size

    started = time.monotonic()
    answer = step()
    return answer, len(trials), time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--task", default="train", choices=["infer", "train"])
    parser.add_argument("--precision", default="fp32")
    arguments = parser.parse_args()
    runner, model = TorchRunner(), parse_model(arguments.model)
    stats = reference_models()[arguments.model]
    config = RunConfig(arguments.task, "fp32", 1, 224).with_precision(arguments.precision) \
        if arguments.precision != "fp32" else RunConfig(arguments.task, "fp32", 1, 224)
    free, _ = torch.cuda.mem_get_info()
    usable = memory_model.usable_bytes(free, 0.9)
    limit = usable * 0.95
    truth = true_largest(lambda b: (p := peak_or_none(
        runner, model, replace(config, batch_size=b))) is not None and p <= limit)
    result, seconds, predicted = autotune_search(runner, model, stats, config, usable)
    print(f"{torch.cuda.get_device_name()}: {arguments.model} {arguments.task} {arguments.precision} 224 px")
    print(f"true largest batch within {limit / 2**30:.2f} GB: {truth}")
    print(f"autotune: predicted {predicted}, answered {result.batch_size} in {result.trial_count} trials, "
          f"{seconds:.1f} s ({result.batch_size / truth:.1%} of the true largest); peak predicted "
          f"{result.predicted_peak_bytes / 2**30:.2f} GB, measured "
          f"{(result.measured_peak_bytes or 0) / 2**30:.2f} GB")
    try:
        answer, trials, seconds = accelerate_search(runner, model, config)
        print(f"accelerate find_executable_batch_size: answered {answer} in {trials} trials, {seconds:.1f} s")
    except ImportError:
        print("accelerate is not installed: peer comparison skipped")


if __name__ == "__main__":
    main()
