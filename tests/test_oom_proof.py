"""autotune.training.oom_proof on the CPU, with CUDA out-of-memory errors simulated by the micro-step."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections import namedtuple

import pytest
import torch
from torch import nn

from autotune.errors import AutotuneError
from autotune.training.oom_proof import (
    AccumulatingStep,
    MicroBatchChange,
    OutOfMemoryAtBatchOne,
    is_out_of_memory,
    oom_proof,
)

EFFECTIVE_BATCH = 16
STEPS = 6


def oom() -> torch.cuda.OutOfMemoryError:
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def dataset() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(EFFECTIVE_BATCH, 8, generator=generator),
             torch.randint(0, 3, (EFFECTIVE_BATCH,), generator=generator)) for _ in range(STEPS)]


def sgd_step(model: nn.Module, lr: float = 0.1) -> None:
    # Plain SGD by hand: torch.optim's first use imports torch._dynamo, a second of the file's time.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter -= lr * parameter.grad


def train(fails) -> dict:
    """Trains a seeded model for STEPS steps; ``fails(step, call, size)`` says whether the
    micro-step runs out of memory (``call`` counts micro-steps within the attempt)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    criterion = nn.CrossEntropyLoss()
    changes: list[MicroBatchChange] = []
    step = AccumulatingStep(zero_grad=model.zero_grad, on_change=changes.append)
    losses, samples_per_step, micro_sizes, accumulation = [], [], [], []
    attempt = {"step": 0, "call": 0, "samples": 0, "sizes": []}  # the current try at the whole batch
    calls: list[list[int]] = []  # every micro-step's size, failed ones included, per step

    def micro_step(inputs, targets, weight):
        attempt["call"] += 1
        calls[-1].append(len(inputs))
        loss = criterion(model(inputs), targets) * weight
        loss.backward()  # before failing: an error partway leaves partial gradients behind
        if fails(attempt["step"], attempt["call"], len(inputs)):
            attempt.update(call=0, samples=0, sizes=[])
            raise oom()
        attempt["samples"] += len(inputs)
        attempt["sizes"].append(len(inputs))
        return loss.detach()

    for number, (inputs, targets) in enumerate(dataset()):
        attempt.update(step=number, call=0, samples=0, sizes=[])
        calls.append([])
        losses.append(sum(step(micro_step, inputs, targets)))
        sgd_step(model)
        model.zero_grad()
        samples_per_step.append(attempt["samples"])
        micro_sizes.append(attempt["sizes"])
        accumulation.append(step.accumulation_steps)
    return {"losses": torch.stack(losses), "weights": [p.detach().clone() for p in model.parameters()],
            "samples": samples_per_step, "sizes": micro_sizes, "accumulation": accumulation,
            "calls": calls, "step": step,
            "changes": changes}


def test_out_of_memory_mid_training_keeps_the_effective_batch_and_the_result(caplog):
    def fails(step, call, size):
        # From the 2nd step on more than 4 samples do not fit, except that the first
        # micro-batch of 8 gets through: the error comes partway through accumulation.
        return step >= 1 and size > 4 and not (size == 8 and call == 1)

    reference = train(lambda step, call, size: False)
    with caplog.at_level(logging.WARNING, logger="autotune"):
        shrunk = train(fails)

    assert shrunk["calls"][1] == [16, 8, 8, 4, 4, 4, 4]  # the second 8 failed after the first's backward
    assert reference["samples"] == shrunk["samples"] == [EFFECTIVE_BATCH] * STEPS
    assert shrunk["step"].effective_batch_size == EFFECTIVE_BATCH
    assert (shrunk["step"].micro_batch_size, shrunk["step"].accumulation_steps) == (4, 4)
    assert shrunk["accumulation"] == [1, 4, 4, 4, 4, 4]
    # The smaller size persists: later steps never try 16 or 8 again.
    assert shrunk["sizes"][0] == [16] and all(sizes == [4] * 4 for sizes in shrunk["sizes"][1:])
    assert torch.allclose(reference["losses"], shrunk["losses"], atol=1e-6)
    for expected, got in zip(reference["weights"], shrunk["weights"], strict=True):
        assert torch.allclose(expected, got, atol=1e-6)
    # Once per step that shrank, with where it settled, not once per halving.
    assert shrunk["changes"] == [MicroBatchChange(16, 4, 4, 16)]
    lines = [record for record in caplog.records if record.name.startswith("autotune")]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert lines[0].getMessage() == ("out of GPU memory at micro-batch 16; now 4 samples x 4 accumulation "
                                     "steps, effective batch unchanged at 16")


def test_no_out_of_memory_means_no_message_and_one_micro_step(caplog):
    step = AccumulatingStep(zero_grad=lambda: None)
    with caplog.at_level(logging.WARNING, logger="autotune"):
        results = step(lambda x, weight: weight, torch.zeros(16, 2))
    assert results == [1.0]
    assert (step.micro_batch_size, step.accumulation_steps, step.effective_batch_size) == (None, 1, 16)
    assert not caplog.records


def test_below_batch_one_gives_up_with_one_clear_error(caplog):
    tried, cleared = [], []

    def micro_step(x, weight):
        tried.append(len(x))
        raise oom()

    step = AccumulatingStep(zero_grad=lambda: cleared.append(True))
    with caplog.at_level(logging.WARNING, logger="autotune"), pytest.raises(OutOfMemoryAtBatchOne) as caught:
        step(micro_step, torch.zeros(16, 2))
    error = caught.value
    assert tried == [16, 8, 4, 2, 1]
    assert error.tried_micro_batch_sizes == (16, 8, 4, 2, 1)
    assert error.effective_batch_size == 16
    assert isinstance(error, AutotuneError) and isinstance(error, RuntimeError)
    assert is_out_of_memory(error.__cause__)
    assert str(error) == (
        "out of GPU memory even at micro-batch 1 (effective batch 16; ran out at micro-batches 16, 8, 4, "
        "2, 1): one sample of this model does not fit; lower the input resolution or sequence length, "
        "train in lower precision (bf16 autocast), or use a smaller model")
    assert len(cleared) == 5  # before each of the 4 retries and before giving up
    assert not caplog.records  # the error is the message; nothing said before it


def test_old_style_runtime_error_counts_as_out_of_memory():
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(oom())
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("CUDA out of memory"))

    def micro_step(x, weight):
        if len(x) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return len(x)

    step = AccumulatingStep(zero_grad=lambda: None)
    assert step(micro_step, torch.zeros(8, 1)) == [2, 2, 2, 2]


@pytest.mark.parametrize("message", [
    # torch's own texts (aten/src/ATen/cuda/Exceptions.h) as reported from real GPUs.
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED",
])
def test_cublas_and_cudnn_allocation_failures_count_as_out_of_memory(message):
    from autotune_plugins.torch.runner import TorchRunner  # noqa: PLC0415

    assert is_out_of_memory(RuntimeError(message))
    assert TorchRunner().is_out_of_memory(RuntimeError(message))  # the backend asks the same test
    assert not is_out_of_memory(ValueError(message))  # torch raises these as RuntimeError only

    def micro_step(x, weight):
        if len(x) > 2:
            raise RuntimeError(message)
        return len(x)

    assert AccumulatingStep(zero_grad=lambda: None)(micro_step, torch.zeros(8, 1)) == [2, 2, 2, 2]


def test_other_cudnn_and_cublas_errors_are_not_out_of_memory():
    for message in ("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a "
                    "non-contiguous input.",
                    "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED",
                    "CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm( handle, opa, opb, "
                    "m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc)`"):
        assert not is_out_of_memory(RuntimeError(message))


def test_non_out_of_memory_error_propagates_and_keeps_the_batch():
    error = RuntimeError("mat1 and mat2 shapes cannot be multiplied (16x8 and 7x3)")
    cleared = []

    def micro_step(x, weight):
        raise error

    step = AccumulatingStep(zero_grad=lambda: cleared.append(True))
    with pytest.raises(RuntimeError) as caught:
        step(micro_step, torch.zeros(16, 8))
    assert caught.value is error
    assert step.micro_batch_size is None and not cleared


def test_ctrl_c_propagates():
    def micro_step(x, weight):
        raise KeyboardInterrupt

    step = AccumulatingStep(zero_grad=lambda: None, micro_batch_size=8)
    with pytest.raises(KeyboardInterrupt):
        step(micro_step, torch.zeros(16, 8))
    assert step.micro_batch_size == 8


def test_dicts_are_split_and_other_values_pass_through():
    Pair = namedtuple("Pair", "left right")
    seen = []

    def micro_step(batch, scale, pair, weight, note):
        seen.append((batch["pixels"].shape[0], batch["labels"].tolist(), batch["name"], scale,
                     len(pair.left), pair.right, note, weight))
        return weight

    step = AccumulatingStep(zero_grad=lambda: None, micro_batch_size=4)
    batch = {"pixels": torch.zeros(6, 3), "labels": torch.arange(6), "name": "cats"}
    temperature = torch.tensor(2.0)
    results = step(micro_step, batch, temperature, Pair(torch.zeros(6), "x"), note="hi")
    assert seen == [(4, [0, 1, 2, 3], "cats", temperature, 4, "x", "hi", 4 / 6),
                    (2, [4, 5], "cats", temperature, 2, "x", "hi", 2 / 6)]
    assert sum(results) == pytest.approx(1.0)
    assert (step.accumulation_steps, step.effective_batch_size) == (2, 6)


def test_tensors_with_different_dim_0_are_refused():
    step = AccumulatingStep(zero_grad=lambda: None)
    mismatch = r"disagree on dim 0 .*argument 0 has 16, argument 1\['mask'\] has 15"
    with pytest.raises(ValueError, match=mismatch):
        step(lambda x, y, weight: None, torch.zeros(16, 2), {"mask": torch.zeros(15)})
    with pytest.raises(ValueError, match="no tensor"):
        step(lambda x, weight: None, "text")
    with pytest.raises(ValueError, match="empty"):
        step(lambda x, weight: None, torch.zeros(0, 2))
    with pytest.raises(ValueError, match="micro_batch_size"):
        AccumulatingStep(zero_grad=lambda: None, micro_batch_size=0)


def test_decorator_form_is_the_same_object():
    @oom_proof(zero_grad=lambda: None)
    def micro_step(x, weight):
        if len(x) > 5:
            raise oom()
        return len(x)

    assert isinstance(micro_step, AccumulatingStep)
    assert micro_step(torch.zeros(10, 1)) == [5, 5]
    assert (micro_step.micro_batch_size, micro_step.accumulation_steps) == (5, 2)
    assert micro_step(torch.zeros(7, 1)) == [5, 2]  # a short last batch: the size persists


def test_out_of_memory_empties_the_cuda_cache(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))

    def micro_step(x, weight):
        if len(x) > 4:
            raise oom()

    AccumulatingStep(zero_grad=lambda: None)(micro_step, torch.zeros(16, 1))
    assert len(emptied) == 2


def test_importing_the_module_does_not_import_torch():
    code = "import sys, autotune.training.oom_proof; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
