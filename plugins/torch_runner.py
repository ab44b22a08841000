"""The PyTorch backend's runner: applies a recommendation to a model and runs it.

Imported only when something is measured (``autotune verify``/``bench``): it imports
torch at the top. Precision: FP32, TF32, FP16 and BF16 (for inference the model and
inputs are cast, as S001-5 did; for training ``torch.autocast`` with a
``torch.amp.GradScaler`` for FP16 only — the torch.amp API, not the deprecated
torch.cuda.amp). Eager PyTorch has no general INT8/FP8 path for these models, so those
precisions are left to the TensorRT and ONNX Runtime backends.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from autotune_plugins.torch_inspect import factory_for, guess_input_shape
from torch import nn

from autotune.backend_api import RunConfig, UnsupportedConfig
from autotune.model_stats import reference_models

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
OPTIMIZERS = {
    "adam": lambda params: torch.optim.Adam(params),
    "adamw": lambda params: torch.optim.AdamW(params),
    "sgd": lambda params: torch.optim.SGD(params, lr=0.01),
    "sgd_momentum": lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9),
    "rmsprop": lambda params: torch.optim.RMSprop(params),
    "adagrad": lambda params: torch.optim.Adagrad(params),
}


class CpuClock:
    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self) -> float:
        return (time.perf_counter() - self._start) * 1000


class CudaClock:
    """CUDA events around the work; ``stop`` waits for the GPU, then reads the events."""

    def __init__(self) -> None:
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self._start.record()

    def stop(self) -> float:
        self._end.record()
        self._end.synchronize()
        return self._start.elapsed_time(self._end)


class TorchSession:
    def __init__(self, base: nn.Module, shape: tuple[int, ...], config: RunConfig, device: str,
                 memory_budget_bytes: float | None, predicted_peak_bytes: float | None):
        if config.precision not in DTYPES:
            raise UnsupportedConfig(f"eager PyTorch has no {config.precision} path for this model; "
                                    "the tensorrt and onnxruntime backends run it")
        if device == "cpu" and config.precision == "fp16":
            raise UnsupportedConfig("FP16 on the CPU is emulated and slow; BF16 is the CPU's half precision")
        self.config, self.device = config, device
        self._saved_flags = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
                             torch.backends.cudnn.allow_tf32, torch.get_num_threads())
        if device == "cuda":
            self.device_name = torch.cuda.get_device_name()
            if memory_budget_bytes is not None:
                total = torch.cuda.get_device_properties(0).total_memory
                torch.cuda.set_per_process_memory_fraction(min(1.0, memory_budget_bytes / total))
            torch.cuda.reset_peak_memory_stats()
        else:
            if config.cpu_threads:
                torch.set_num_threads(config.cpu_threads)
            self.device_name = f"CPU ({torch.get_num_threads()} threads)"
            if memory_budget_bytes is not None and predicted_peak_bytes is not None \
                    and predicted_peak_bytes > memory_budget_bytes:
                # The CPU has no allocator limit to hit: the memory budget is enforced on the
                # memory model's prediction, raising the error a GPU would.
                raise torch.OutOfMemoryError(
                    f"predicted {predicted_peak_bytes / 2**30:.2f} GB exceeds the memory budget of "
                    f"{memory_budget_bytes / 2**30:.2f} GB")
        torch.backends.cudnn.benchmark = config.cudnn_benchmark
        allow_tf32 = config.tf32 or config.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        torch.backends.cudnn.allow_tf32 = allow_tf32

        self.cast_dtype = DTYPES[config.precision] if config.task == "infer" else torch.float32
        self.amp_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(config.amp_dtype)
        self.memory_format = (torch.channels_last if config.channels_last and len(shape) == 3
                              else torch.contiguous_format)
        module = copy.deepcopy(base).to(device=device, dtype=self.cast_dtype,
                                        memory_format=self.memory_format)
        self.module = torch.compile(module) if config.compile else module
        generator = torch.Generator().manual_seed(1)
        self.batch = self._to_device(torch.randn((config.batch_size, *shape), generator=generator))
        if config.task == "train":
            self.module.train()
            self.optimizer = OPTIMIZERS[config.optimizer](self.module.parameters())
            self.scaler = torch.amp.GradScaler(device, enabled=config.grad_scaler)
            self.target = None
        else:
            self.module.eval()

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.to(device=self.device, dtype=self.cast_dtype)
        return tensor.contiguous(memory_format=self.memory_format) if tensor.dim() == 4 else tensor

    def _loss(self, output: torch.Tensor) -> torch.Tensor:
        """A synthetic target: random classes for class scores, zeros for anything else."""
        if self.target is None:
            if output.dim() == 2 and output.shape[1] >= 2:
                generator = torch.Generator().manual_seed(2)
                self.target = torch.randint(output.shape[1], (output.shape[0],), generator=generator)
            else:
                self.target = torch.zeros(output.shape)
            self.target = self.target.to(self.device)
        if self.target.dtype == torch.int64:
            return nn.functional.cross_entropy(output.float(), self.target)
        return nn.functional.mse_loss(output.float(), self.target)

    def step(self) -> None:
        if self.config.task == "infer":
            with torch.inference_mode():
                self.module(self.batch)
            return
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device, dtype=self.amp_dtype or torch.float32, enabled=self.config.amp):
            loss = self._loss(self.module(self.batch))
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def clock(self):
        return CudaClock() if self.device == "cuda" else CpuClock()

    def outputs(self, inputs: np.ndarray) -> np.ndarray:
        training = self.module.training
        self.module.eval()
        results = []
        try:
            with torch.inference_mode(), torch.autocast(
                    self.device, dtype=self.amp_dtype or torch.float32, enabled=self.config.amp):
                for start in range(0, len(inputs), self.config.batch_size):
                    chunk = self._to_device(torch.from_numpy(inputs[start:start + self.config.batch_size]))
                    results.append(self.module(chunk).float().cpu().numpy())
        finally:
            self.module.train(training)
        return np.concatenate(results)

    def peak_memory_bytes(self) -> int | None:
        return torch.cuda.max_memory_allocated() if self.device == "cuda" else None

    def close(self) -> None:
        for name in ("module", "batch", "optimizer", "scaler", "target"):
            self.__dict__.pop(name, None)
        benchmark, matmul_tf32, cudnn_tf32, threads = self._saved_flags
        torch.backends.cudnn.benchmark = benchmark
        torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
        torch.set_num_threads(threads)
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.set_per_process_memory_fraction(1.0)


class TorchRunner:
    """Builds each model once (FP32, on the CPU, seeded), then a session per configuration."""

    def __init__(self) -> None:
        self._models: dict[str, tuple[nn.Module, tuple[int, ...]]] = {}

    def device(self, wanted: str) -> str:
        return "cuda" if wanted == "cuda" and torch.cuda.is_available() else "cpu"

    def is_out_of_memory(self, error: BaseException) -> bool:
        return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()

    def _base(self, model) -> tuple[nn.Module, tuple[int, ...]]:
        if model.spec not in self._models:
            torch.manual_seed(0)
            module = factory_for(model)()
            if not isinstance(module, nn.Module):
                raise TypeError(f"{model.spec} did not return a torch.nn.Module")
            shipped = reference_models().get(model.spec)
            shape = model.input_shape or (shipped.input_shape if shipped else guess_input_shape(module))
            self._models[model.spec] = (module.float().cpu(), tuple(shape))
        return self._models[model.spec]

    def open(self, model, config: RunConfig, device: str, memory_budget_bytes: float | None = None,
             predicted_peak_bytes: float | None = None) -> TorchSession:
        base, shape = self._base(model)
        if config.resolution is not None and len(shape) == 3:
            channels, height, width = shape
            shape = (channels, config.resolution, max(1, round(width * config.resolution / height)))
        return TorchSession(base, shape, config, device, memory_budget_bytes, predicted_peak_bytes)
