"""Training that survives a CUDA out-of-memory error without changing what it learns.

When a training step runs out of GPU memory, :class:`AccumulatingStep` clears the partial
gradients, frees the cache, halves the micro-batch, doubles gradient accumulation and redoes
the same effective batch from its start. The samples per optimizer step stay the same, so
the loss curve and the weights are those of the unsplit run (up to float rounding)::

    from autotune.training.oom_proof import AccumulatingStep

    step = AccumulatingStep(zero_grad=optimizer.zero_grad)
    for inputs, targets in loader:              # the loader yields the effective batch
        def micro_step(inputs, targets, weight):
            loss = criterion(model(inputs), targets) * weight
            loss.backward()
            return loss.detach()
        loss = sum(step(micro_step, inputs, targets))
        optimizer.step()
        optimizer.zero_grad()

Accelerate's ``find_executable_batch_size`` restarts the whole function at 0.9 times the
batch and so changes the effective batch (and with it the learning dynamics) silently; here
the effective batch is kept and the change is said once.

Each change is reported as one line at WARNING level on the logger ``autotune.training.oom_proof``
(a child of ``autotune``, so configuring ``logging.getLogger("autotune")`` reaches it), and
to the optional ``on_change`` callback. torch is imported only when a step runs.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from autotune.errors import AutotuneError

__all__ = ["AccumulatingStep", "MicroBatchChange", "OutOfMemoryAtBatchOne", "is_out_of_memory", "oom_proof"]

_LOG = logging.getLogger("autotune.training.oom_proof")



class OutOfMemoryAtBatchOne(AutotuneError, RuntimeError):
    """Even a micro-batch of one sample ran out of memory: halving cannot help any more.

    Also a ``RuntimeError``, like the out-of-memory error it replaces (kept as
    ``__cause__``). ``effective_batch_size`` is the batch being trained on;
    ``tried_micro_batch_sizes`` the micro-batches that ran out of memory, largest first.
    """

    exit_code = 3  # as errors.DoesNotFit: the model does not fit

    def __init__(self, effective_batch_size: int, tried_micro_batch_sizes: tuple[int, ...]):
        tried = ", ".join(str(size) for size in tried_micro_batch_sizes)
        super().__init__(
            f"out of GPU memory even at micro-batch 1 (effective batch {effective_batch_size}; "
            f"ran out at micro-batches {tried}): one sample of this model does not fit; lower the "
            f"input resolution or sequence length, train in lower precision (bf16 autocast), or "
            f"use a smaller model")
        self.effective_batch_size = effective_batch_size
        self.tried_micro_batch_sizes = tried_micro_batch_sizes


@dataclass(frozen=True)
class MicroBatchChange:
    """The micro-batch shrank during one step: from ``old_micro_batch_size`` samples to
    ``micro_batch_size`` samples times ``accumulation_steps``, for an unchanged
    ``effective_batch_size``."""

    old_micro_batch_size: int
    micro_batch_size: int
    accumulation_steps: int
    effective_batch_size: int

    def __str__(self) -> str:
        return (f"out of GPU memory at micro-batch {self.old_micro_batch_size}; now "
                f"{self.micro_batch_size} samples x {self.accumulation_steps} accumulation steps, "
                f"effective batch unchanged at {self.effective_batch_size}")


#: What torch raises untyped, as a plain ``RuntimeError``, when a library inside it runs out of
#: GPU memory; each with where torch writes it.
UNTYPED_OUT_OF_MEMORY_MARKS = (
    # "CUDA out of memory" (torch before the typed error) and "CUDA error: out of memory"
    # (C10_CUDA_CHECK in c10/cuda/CUDAException.h, on a CUDA call outside the caching allocator).
    "out of memory",
    # "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`":
    # TORCH_CUDABLAS_CHECK in aten/src/ATen/cuda/Exceptions.h, when cuBLAS cannot allocate its
    # handle or workspace.
    "cublas_status_alloc_failed",
    # "cuDNN error: CUDNN_STATUS_ALLOC_FAILED" (cuDNN 8) and "cuDNN error:
    # CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED" (cuDNN 9, which splits the status):
    # AT_CUDNN_CHECK in aten/src/ATen/cuda/Exceptions.h, the text cudnnGetErrorString gives.
    # cuDNN 9's HOST_ALLOCATION_FAILED is host memory, which a smaller batch does not free.
    "cudnn_status_alloc_failed",
    "cudnn_status_internal_error_device_allocation_failed",
)


def is_out_of_memory(error: BaseException) -> bool:
    """True for torch's out-of-memory errors: ``torch.cuda.OutOfMemoryError`` (the caching
    allocator's), or a ``RuntimeError`` carrying one of :data:`UNTYPED_OUT_OF_MEMORY_MARKS`
    (CUDA calls outside the allocator, cuBLAS and cuDNN allocations). The one test, for
    training here and for the torch backend's measurements."""
    try:
        import torch  # noqa: PLC0415 - the package imports without torch
    except ImportError:
        torch = None
    oom_type = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    # cuDNN and cuBLAS report theirs as a RuntimeError whose only mark is the text.
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(mark in text for mark in UNTYPED_OUT_OF_MEMORY_MARKS)


class AccumulatingStep:
    """Runs one effective batch as micro-batches with gradient accumulation, halving the
    micro-batch on a CUDA out-of-memory error.

    ``zero_grad`` clears the gradients (``optimizer.zero_grad`` or ``model.zero_grad``); it
    is called before every retry so that a step that failed partway leaves no partial
    gradients behind, and before giving up. Gradients must be zero when a step starts (as
    after ``optimizer.zero_grad()``), since a retry clears them all.

    ``micro_batch_size``: the samples per micro-step to start with; None runs the whole
    batch until the first out-of-memory error. Once reduced it stays reduced for later steps
    (retrying the larger size every step would cost an error each time); set the attribute
    back to None to try the whole batch again.

    ``on_change`` is called with a :class:`MicroBatchChange` after each step in which the
    micro-batch shrank, in addition to the one WARNING line on the ``autotune.training.oom_proof``
    logger; a step that shrinks twice (16 to 8 to 4) reports once, with where it settled.

    ``micro_step``: given when the object is made (see :func:`oom_proof`), or passed first
    to each call. Attributes after a call: ``effective_batch_size`` (samples in the last
    batch), ``accumulation_steps`` (micro-steps it took), ``micro_batch_size``.
    """

    def __init__(self, *, zero_grad: Callable[[], object], micro_batch_size: int | None = None,
                 on_change: Callable[[MicroBatchChange], object] | None = None,
                 micro_step: Callable[..., Any] | None = None):
        if micro_batch_size is not None and (not isinstance(micro_batch_size, int) or micro_batch_size < 1):
            raise ValueError(f"micro_batch_size must be a positive int or None, not {micro_batch_size!r}")
        self.zero_grad = zero_grad
        self.micro_batch_size = micro_batch_size
        self.on_change = on_change
        self.micro_step = micro_step
        self.effective_batch_size: int | None = None
        self.accumulation_steps: int | None = None
        self._out_of_memory_sizes: list[int] = []  # over the whole run: for the give-up message

    def __call__(self, *args: Any, **kwargs: Any) -> list[Any]:
        """Run ``micro_step`` over one effective batch and return its results, one per
        micro-step, in order (``sum()`` them for the step's loss).

        Call as ``step(micro_step, *batch, **batch_kwargs)``, or ``step(*batch,
        **batch_kwargs)`` when the micro-step was given when the object was made. Each
        micro-step is called with the same arguments cut to its samples, plus the keyword
        ``weight=len(micro-batch) / len(effective batch)``: multiplying a mean loss by it
        makes the accumulated gradients those of the mean loss over the whole batch.

        Tensors are cut along dim 0, also inside dicts (given back as dicts), lists and
        tuples; every other value, and 0-dim tensors, are passed unchanged. All tensors cut
        must have the same dim 0, else ``ValueError``.

        On a CUDA out-of-memory error (:func:`is_out_of_memory`) anywhere in a micro-step:
        ``zero_grad()``, ``gc.collect()``, ``torch.cuda.empty_cache()``, then the whole
        batch again at half the micro-batch. Below 1 it raises
        :class:`OutOfMemoryAtBatchOne`. Any other exception, Ctrl-C included, propagates
        unchanged and leaves the micro-batch as it was. An out-of-memory error in
        ``optimizer.step()`` is outside this call and not handled.
        """
        micro_step = self.micro_step
        if micro_step is None:
            if not args or not callable(args[0]):
                raise TypeError("pass the micro-step function first: step(micro_step, *batch)")
            micro_step, args = args[0], args[1:]
        effective = _sample_count(args, kwargs)
        self.effective_batch_size = effective
        size_at_start = min(self.micro_batch_size or effective, effective)
        while True:
            size = min(self.micro_batch_size or effective, effective)
            try:
                results = self._run(micro_step, args, kwargs, effective, size)
                break
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                if size not in self._out_of_memory_sizes:
                    self._out_of_memory_sizes.append(size)
                if size == 1:
                    self.zero_grad()
                    tried = tuple(sorted(self._out_of_memory_sizes, reverse=True))
                    raise OutOfMemoryAtBatchOne(effective, tried) from error
            # Outside the except block: the error and its traceback, which hold the failed
            # step's activations, are gone before the cache is emptied.
            self.zero_grad()
            _free_memory()
            self.micro_batch_size = size // 2
        self.accumulation_steps = len(results)
        if size < size_at_start:
            change = MicroBatchChange(size_at_start, size, len(results), effective)
            _LOG.warning("%s", change)
            if self.on_change is not None:
                self.on_change(change)
        return results

    def _run(self, micro_step: Callable[..., Any], args: list[Any] | tuple[Any, ...],
             kwargs: dict[str, Any], effective: int, size: int) -> list[Any]:
        results = []
        for start in range(0, effective, size):
            stop = min(start + size, effective)
            results.append(micro_step(*_cut(list(args), start, stop), weight=(stop - start) / effective,
                                      **_cut(kwargs, start, stop)))
        return results


def oom_proof(*, zero_grad: Callable[[], object], micro_batch_size: int | None = None,
              on_change: Callable[[MicroBatchChange], object] | None = None,
              ) -> Callable[[Callable[..., Any]], AccumulatingStep]:
    """Decorator form of :class:`AccumulatingStep`: the decorated micro-step becomes an
    :class:`AccumulatingStep` called with the batch only::

        @oom_proof(zero_grad=optimizer.zero_grad)
        def train_step(inputs, targets, weight):
            loss = criterion(model(inputs), targets) * weight
            loss.backward()
            return loss.detach()

        for inputs, targets in loader:
            loss = sum(train_step(inputs, targets))
            optimizer.step()
            optimizer.zero_grad()
    """

    def decorate(micro_step: Callable[..., Any]) -> AccumulatingStep:
        return AccumulatingStep(zero_grad=zero_grad, micro_batch_size=micro_batch_size,
                                on_change=on_change, micro_step=micro_step)

    return decorate


def _free_memory() -> None:
    import torch  # noqa: PLC0415 - the package imports without torch

    gc.collect()  # reference cycles can hold tensors the cache cannot give back
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sample_count(args: list[Any] | tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    import torch  # noqa: PLC0415 - the package imports without torch

    found: list[tuple[str, int]] = []

    def visit(value: Any, where: str) -> None:
        if isinstance(value, torch.Tensor):
            if value.dim() > 0:
                found.append((where, value.shape[0]))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                visit(item, f"{where}[{key!r}]")
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(item, f"{where}[{index}]")

    for index, value in enumerate(args):
        visit(value, f"argument {index}")
    for name, value in kwargs.items():
        visit(value, f"argument {name!r}")
    if not found:
        raise ValueError("the batch holds no tensor to split into micro-batches")
    sizes = {size for _, size in found}
    if len(sizes) > 1:
        listed = ", ".join(f"{where} has {size}" for where, size in found)
        raise ValueError(f"the batch's tensors disagree on dim 0 (samples): {listed}; "
                         f"every tensor must hold the same samples")
    (count,) = sizes
    if count == 0:
        raise ValueError("the batch is empty (dim 0 is 0)")
    return count


def _cut(value: Any, start: int, stop: int) -> Any:
    """``value`` with its tensors cut to samples ``start:stop`` (views: no copy)."""
    import torch  # noqa: PLC0415 - the package imports without torch

    if isinstance(value, torch.Tensor):
        return value[start:stop] if value.dim() > 0 else value
    if isinstance(value, Mapping):
        return {key: _cut(item, start, stop) for key, item in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return type(value)(*(_cut(item, start, stop) for item in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_cut(item, start, stop) for item in value)
    return value

