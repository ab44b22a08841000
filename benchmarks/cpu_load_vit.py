"""Issue 27's check: with one CPU-bound process beside it, ``verify`` and ``bench --task
train`` on a small Hugging Face ViT come within 1.5x of a plain PyTorch loop given the best
thread count for that load — side by side in one run, interleaved and repeated.

Run from the repository root with a Python that has torch and transformers::

    PYTHONPATH=.:<autotune on the path> python benchmarks/cpu_load_vit.py [--rounds 3]

Like for like: the plain loop runs verify's winning configuration as the torch backend does
(the model and inputs cast to its precision, channels_last where it chose it, the same batch),
and bench's FP32 train step at batch 2 as an Adam step, each at 1 and 2 threads. Reported per
round: the plain loop's samples/s at each thread count (the best one is the baseline), autotune
verify's winner (throughput, its configuration) and autotune bench's train step; then the
medians and autotune / best-plain ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

TRAIN_BATCH = 2


def tiny_vit():
    """ViTForImageClassification from a small config: hidden 192, 6 layers, 224 px."""
    from transformers import ViTConfig, ViTForImageClassification  # noqa: PLC0415

    return ViTForImageClassification(ViTConfig(hidden_size=192, num_hidden_layers=6, num_attention_heads=3,
                                               intermediate_size=768, image_size=224, num_labels=10))


def plain_samples_s(task: str, batch: int, threads: int, precision: str = "fp32",
                    channels_last: bool = False, seconds: float = 3.0) -> float:
    """A plain PyTorch loop's samples/s: eval forward under inference_mode with the model and
    inputs cast to ``precision``, or an FP32 Adam train step."""
    import torch  # noqa: PLC0415

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = tiny_vit().to(dtype=dtype, memory_format=layout)
    pixels = torch.randn(batch, 3, 224, 224).to(dtype=dtype, memory_format=layout)
    labels = torch.randint(0, 10, (batch,))
    if task == "train":
        model.train()
        optimizer = torch.optim.Adam(model.parameters())

        def step():
            optimizer.zero_grad()
            model(pixel_values=pixels, labels=labels).loss.backward()
            optimizer.step()
    else:
        model.eval()

        def step():
            with torch.inference_mode():
                model(pixel_values=pixels)
    for _ in range(3):
        step()
    times = []
    ended = time.monotonic() + seconds
    while time.monotonic() < ended or len(times) < 3:
        begun = time.perf_counter()
        step()
        times.append(time.perf_counter() - begun)
    return batch / statistics.median(times)


def autotune_verify() -> tuple[float, str, int, str, bool, float]:
    """(samples/s, label, batch, precision, channels_last, wall s) of verify's winning torch
    configuration."""
    import autotune  # noqa: PLC0415

    started = time.monotonic()
    verification = autotune.verify(model="benchmarks.cpu_load_vit:tiny_vit", input_shape="3,224,224",
                                   backends="torch")
    wall_s = time.monotonic() - started
    (report,) = verification.reports
    best = report.best
    config = best.config
    return (best.throughput, best.label, config.batch_size, config.precision,
            bool(config.option("channels_last", False)), wall_s)


def autotune_bench_train() -> tuple[float, str]:
    import autotune  # noqa: PLC0415

    result = autotune.bench(model="benchmarks.cpu_load_vit:tiny_vit", input_shape="3,224,224", task="train",
                            batches=[TRAIN_BATCH], precisions=["fp32"], budget_s=10.0)
    measured = next(m for m in result.measurements if m.ok)
    return measured.throughput, measured.label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # the outside load
    rows: dict[str, list[float]] = {}
    try:
        time.sleep(0.5)
        for number in range(1, rounds + 1):
            verified, label, batch, precision, channels_last, wall_s = autotune_verify()
            plain_infer = {t: plain_samples_s("infer", batch, t, precision, channels_last) for t in (1, 2)}
            trained, train_label = autotune_bench_train()
            plain_train = {t: plain_samples_s("train", TRAIN_BATCH, t) for t in (1, 2)}
            round_rows = {
                "verify samples/s": verified, "plain infer best samples/s": max(plain_infer.values()),
                "verify / plain": verified / max(plain_infer.values()),
                "bench train samples/s": trained, "plain train best samples/s": max(plain_train.values()),
                "bench / plain": trained / max(plain_train.values()), "verify wall s": wall_s}
            for key, value in round_rows.items():
                rows.setdefault(key, []).append(value)
            print(f"round {number}: verify {label} {verified:.1f}/s ({wall_s:.0f} s); "
                  f"plain infer {precision} batch {batch}{' channels_last' if channels_last else ''} "
                  + ", ".join(f"{t} thread(s) {v:.1f}/s" for t, v in plain_infer.items())
                  + f"; bench train {train_label} {trained:.2f}/s; plain train batch {TRAIN_BATCH} "
                  + ", ".join(f"{t} thread(s) {v:.2f}/s" for t, v in plain_train.items()), flush=True)
    finally:
        spinner.kill()
        spinner.wait()
    print("medians over", rounds, "rounds:")
    for key, values in rows.items():
        print(f"  {key}: {statistics.median(values):.2f}  (each: {', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
