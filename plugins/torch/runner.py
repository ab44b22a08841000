"""The PyTorch backend's runner: applies a recommendation to a model and runs it.

Imported only when something is measured (``autotune verify``/``bench``): it imports
torch at the top. Precision: FP32, TF32, FP16 and BF16 (for inference the model and
inputs are cast, as S001-5 did; for training ``torch.autocast`` with a
``torch.amp.GradScaler`` for FP16 only — the torch.amp API, not the deprecated
torch.cuda.amp). Eager PyTorch has no general INT8/FP8 path for these models, so those
precisions are left to the TensorRT and ONNX Runtime backends.
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import torch
from autotune_plugins.common.cuda_clock import CudaClock
from autotune_plugins.torch.build import build_seeded
from autotune_plugins.torch.io import call_model, select_output, synthetic_tensors, to_tensors, training_loss
from torch import nn

from autotune.sdk.cuda import is_out_of_memory, read_state, set_tf32
from autotune.sdk.cuda import restore as restore_tf32
from autotune.sdk.models import ModelInputs
from autotune.sdk.running import (
    IEEE_MATH,
    TF32_MATH,
    BackendUnavailable,
    MemoryFigure,
    Preparation,
    RunConfig,
    UnsupportedConfig,
    WallClock,
)

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
OPTIMIZERS = {
    "adam": lambda params: torch.optim.Adam(params),
    "adamw": lambda params: torch.optim.AdamW(params),
    "sgd": lambda params: torch.optim.SGD(params, lr=0.01),
    "sgd_momentum": lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9),
    "rmsprop": lambda params: torch.optim.RMSprop(params),
    "adagrad": lambda params: torch.optim.Adagrad(params),
}


def missing_kernels(arch_list: list[str], capability: tuple[int, int]) -> str | None:
    """Why this torch build cannot run on a GPU of ``capability``, or None when it can.

    A wheel carries machine code (``sm_XY``) that runs on compute capability X.Y and later
    minors of X, and PTX (``compute_XY``) the driver compiles for X.Y and anything newer.
    Fleets hold boards current wheels leave out (PyTorch 2.11's CUDA 12.8 wheels start at
    7.5): torch only warns, then every kernel fails with "no kernel image is available", so
    the backend is skipped with the wheel to install instead of measuring nothing.
    """
    major, minor = capability
    built: list[tuple[str, int, int]] = []
    for arch in arch_list:
        kind, _, digits = arch.partition("_")
        digits = digits.rstrip("af")  # sm_90a / sm_100f: arch-specific variants of 9.0 / 10.0
        if digits.isdigit():
            built.append((kind, int(digits[:-1]), int(digits[-1])))
    if not built:  # a build that does not say: let torch try
        return None
    for kind, arch_major, arch_minor in built:
        if kind == "sm" and arch_major == major and arch_minor <= minor:
            return None
        if kind == "compute" and (arch_major, arch_minor) <= (major, minor):
            return None
    if (major, minor) < (5, 0):
        fix = "no current wheel runs below 5.0 (CUDA 12 dropped Kepler); run it on the CPU (--set device=cpu)"
    elif (major, minor) < min((arch_major, arch_minor) for _, arch_major, arch_minor in built):
        fix = ("install an older-GPU wheel (the CUDA 12.6 wheels start at 5.0: "
               "pip install torch --index-url https://download.pytorch.org/whl/cu126)")
    else:
        fix = "install a wheel for a newer CUDA (https://pytorch.org/get-started/locally/)"
    return (f"this PyTorch {torch.__version__} has kernels for {' '.join(arch_list)}, none for this "
            f"GPU's compute capability {major}.{minor}; {fix}")


def autocast_plan(task: str, precision: str) -> tuple[bool, torch.dtype | None, bool]:
    """(autocast on, its dtype, GradScaler on): training in FP16/BF16 runs under autocast
    with FP32 master weights (S003-1); only FP16 needs loss scaling. Inference casts the
    model itself (S001-5) and needs neither."""
    if task != "train" or precision not in ("fp16", "bf16"):
        return False, None, False
    return True, DTYPES[precision], precision == "fp16"


def fp32_math(precision: str, tf32: bool, device: str) -> str:
    """What an FP32 or TF32 session's matmuls and convolutions compute in on a GPU, for the
    results to say: autotune's FP32 is IEEE throughout, where stock PyTorch runs cuDNN
    convolutions in TF32 (``torch.backends.cudnn.allow_tf32`` defaults to True). Empty for
    FP16 and BF16, and on the CPU, which has no TF32: its FP32 is IEEE FP32 alone."""
    if precision not in ("fp32", "tf32") or device != "cuda":
        return ""
    return TF32_MATH if tf32 else IEEE_MATH


class TorchPrepared:
    """The FP32 CPU model and the inputs it takes in this preparation. Eager PyTorch has
    nothing to compile ahead, so preparing costs a dictionary lookup; the module is copied
    to the device, cast and (optionally) compiled when a session opens."""

    def __init__(self, base: nn.Module, inputs: ModelInputs, device: str, source=None):
        self.base, self.inputs, self.device, self.source = base, inputs, device, source

    def fresh_module(self) -> nn.Module:
        """A copy of the base model for one session (training changes its weights). A model
        that holds what deepcopy cannot copy (a module object, a lock) is built again: the
        seeded build gives the same weights."""
        try:
            return copy.deepcopy(self.base)
        except Exception:  # noqa: BLE001 - TypeError from pickling, and whatever __deepcopy__ raises
            if self.source is None:
                raise
            return build_seeded(self.source)

    def close(self) -> None:
        pass  # the base model is the runner's, shared by every preparation


class TorchSession:
    def __init__(self, prepared: TorchPrepared, config: RunConfig, memory_budget_bytes: float | None):
        self.config, self.device, self.inputs = config, prepared.device, prepared.inputs
        # The process-wide settings a session changes, read before it changes any: close(), or
        # an __init__ that fails (out of memory in .to(device)), puts them back.
        self._saved_tf32 = read_state()
        self._saved_flags = (torch.backends.cudnn.benchmark, torch.get_num_threads())
        self._memory_capped = False
        try:
            self._open(prepared, config, memory_budget_bytes)
        except BaseException:
            # An error in putting things back must not replace the one that stopped the session
            # (an out-of-memory error is what the ladder steps down on).
            with contextlib.suppress(Exception):
                self._release()
            raise

    def _open(self, prepared: TorchPrepared, config: RunConfig, memory_budget_bytes: float | None) -> None:
        device, inputs = prepared.device, prepared.inputs
        if device == "cuda":
            self.device_name = torch.cuda.get_device_name()
            if memory_budget_bytes is not None:
                total = torch.cuda.get_device_properties(0).total_memory
                torch.cuda.set_per_process_memory_fraction(min(1.0, memory_budget_bytes / total))
                self._memory_capped = True
            torch.cuda.reset_peak_memory_stats()
        else:
            if config.cpu_threads:
                torch.set_num_threads(config.cpu_threads)
            self.device_name = f"CPU ({torch.get_num_threads()} threads)"
        torch.backends.cudnn.benchmark = bool(config.option("cudnn_benchmark", False))
        tf32 = bool(config.option("tf32", False)) or config.precision == "tf32"
        set_tf32(tf32)
        #: What the matmuls and convolutions computed in (FP32 and TF32 sessions), for the results.
        self.math = fp32_math(config.precision, tf32, device)

        self.cast_dtype = DTYPES[config.precision] if config.task == "infer" else torch.float32
        self.amp, self.amp_dtype, grad_scaler = autocast_plan(config.task, config.precision)
        # channels_last is a layout of 4-D image tensors; a text model has none to change.
        self.memory_format = (torch.channels_last if config.option("channels_last", False)
                              and inputs.kind == "image" else torch.contiguous_format)
        # Module.to takes memory_format beside device and dtype (torch._C._nn._parse_to), which
        # torch's overloads of it do not declare.
        module = prepared.fresh_module().to(  # pyright: ignore[reportCallIssue]
            device=device, dtype=self.cast_dtype, memory_format=self.memory_format)
        # torch.compile of a module returns an OptimizedModule (an nn.Module); its annotation
        # says only Callable.
        self.module: nn.Module = (
            torch.compile(module) if config.option("compile", False) else module)  # pyright: ignore[reportAttributeAccessIssue]
        self.batch = synthetic_tensors(inputs, config.batch_size, device, self.cast_dtype, seed=1,
                                       memory_format=self.memory_format)
        if config.task == "train":
            self.module.train()
            self.optimizer = OPTIMIZERS[config.optimizer](self.module.parameters())
            self.scaler = torch.amp.GradScaler(device, enabled=grad_scaler)
        else:
            self.module.eval()

    def _autocast(self):
        return torch.autocast(self.device, dtype=self.amp_dtype or torch.float32, enabled=self.amp)

    def step(self) -> None:
        if self.config.task == "infer":
            with torch.inference_mode():
                call_model(self.module, self.batch, self.inputs)
            return
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = training_loss(call_model(self.module, self.batch, self.inputs), self.inputs)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def clock(self):
        return CudaClock() if self.device == "cuda" else WallClock()

    def outputs(self, inputs) -> np.ndarray:
        training = self.module.training
        self.module.eval()
        results = []
        count, size = len(next(iter(inputs.values()))), self.config.batch_size
        try:
            with torch.inference_mode(), self._autocast():
                for start in range(0, count, size):
                    chunk = to_tensors({name: array[start:start + size] for name, array in inputs.items()},
                                       self.device, self.cast_dtype, self.memory_format)
                    output, _ = select_output(call_model(self.module, chunk, self.inputs))
                    results.append(output.float().cpu().numpy())
        finally:
            self.module.train(training)
        return np.concatenate(results)

    def peak_memory_bytes(self) -> int | None:
        return torch.cuda.max_memory_allocated() if self.device == "cuda" else None

    @property
    def peak_memory_figure(self) -> MemoryFigure | None:
        """The allocator's peak of live tensors: no CUDA context, workspaces or cache, so it
        reads lower than the NVML figures the ONNX-based runtimes report."""
        return MemoryFigure.ALLOCATOR if self.device == "cuda" else None

    def close(self) -> None:
        self._release()

    def _release(self) -> None:
        """Drop the session's tensors and put back every process-wide setting it changed."""
        for name in ("module", "batch", "optimizer", "scaler"):
            self.__dict__.pop(name, None)
        benchmark, threads = self._saved_flags
        torch.backends.cudnn.benchmark = benchmark
        restore_tf32(self._saved_tf32)
        torch.set_num_threads(threads)
        if self.device == "cuda":
            if self._memory_capped:
                torch.cuda.set_per_process_memory_fraction(1.0)
            torch.cuda.synchronize()
            torch.cuda.empty_cache()


class TorchRunner:
    """Builds each model once (FP32, on the CPU, seeded); a session per configuration."""

    def __init__(self) -> None:
        self._models: dict[str, nn.Module] = {}

    def device(self, wanted: str) -> str:
        if wanted != "cuda":
            return "cpu"
        if not torch.cuda.is_available():
            # A driver older than this torch's CUDA: a CPU row would pass for the GPU's answer.
            from autotune.sdk.cuda import torch_driver_problem  # noqa: PLC0415

            too_old = torch_driver_problem()
            if too_old is not None:
                raise BackendUnavailable(too_old.message())
            return "cpu"
        missing = missing_kernels(torch.cuda.get_arch_list(), torch.cuda.get_device_capability())
        if missing:
            raise BackendUnavailable(missing)
        return "cuda"

    def is_out_of_memory(self, error: BaseException) -> bool:
        return is_out_of_memory(error)

    def enforces_memory_budget(self, device: str) -> bool:
        # set_per_process_memory_fraction caps the CUDA caching allocator; the CPU has no cap.
        return device == "cuda"

    def _base(self, model) -> nn.Module:
        if model.spec not in self._models:
            self._models[model.spec] = build_seeded(model)
        return self._models[model.spec]

    def prepare(self, model, preparation: Preparation, device: str, max_batch_size: int) -> TorchPrepared:
        if model.kind == "onnx":
            raise UnsupportedConfig("the torch backend runs PyTorch models; an .onnx file runs on an "
                                    "ONNX Runtime or TensorRT runner")
        if preparation.precision not in DTYPES:
            raise UnsupportedConfig(f"eager PyTorch has no {preparation.precision} path for this model; "
                                    "the tensorrt and onnxruntime backends run it")
        if device == "cpu" and preparation.precision == "fp16":
            raise UnsupportedConfig("FP16 on the CPU is emulated and slow; BF16 is the CPU's half precision")
        return TorchPrepared(self._base(model), preparation.inputs, device, model)

    def open(self, prepared: TorchPrepared, config: RunConfig,
             memory_budget_bytes: float | None = None) -> TorchSession:
        return TorchSession(prepared, config, memory_budget_bytes)
