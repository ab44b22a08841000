"""The CUDA device the TensorRT backend runs on, through PyTorch: device memory for the
engine's buffers, the engine's own stream and the CUDA-event clock on it, and the engine's
I/O tensors with the torch dtypes their buffers take.

Buffers, the stream and the clock come from PyTorch, so no extra CUDA binding is needed;
:class:`CudaDevice` is the one place that touches them (tests put a host-memory device in
its place to run the same code against a TensorRT stand-in).

The engine runs on a CUDA stream of its own, never on the default (legacy) stream that is
torch's current one: there ``enqueueV3`` warns "Using default stream in enqueueV3()" and
adds synchronisations of its own, which the latency would include. The buffers are filled,
the clock's events recorded and the results waited for on that same stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from autotune.sdk.running import BackendUnavailable, UnsupportedConfig

if TYPE_CHECKING:  # the stub in typings/; the module itself is imported when first needed
    import tensorrt as trt_types  # pyright: ignore[reportMissingModuleSource] - installed only where NVIDIA's index is

#: TensorRT's DataType names and the torch dtypes their buffers take.
TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
                "INT64": "int64", "BOOL": "bool", "UINT8": "uint8", "FP8": "float8_e4m3fn"}


class CudaDevice:
    """Device memory, the engine's own stream and the clock on it, through PyTorch."""

    #: Where the buffers live: the GPU (a test that fakes ``torch.cuda`` keeps them on the host).
    memory = "cuda"

    def __init__(self) -> None:
        try:
            import torch  # noqa: PLC0415 - the buffers' one dependency, needed only to measure
        except ImportError:
            raise BackendUnavailable("the TensorRT backend keeps its buffers on the GPU through PyTorch, "
                                     "which is not installed: pip install torch") from None
        if not torch.cuda.is_available():
            from autotune.sdk.cuda import cuda_unavailable_reason  # noqa: PLC0415

            # Say why (a driver too old for torch's CUDA, a CPU-only torch, no GPU) so the fix is
            # in the message, as the torch backend does (issue 24, item 10).
            raise BackendUnavailable("TensorRT needs a CUDA GPU, and PyTorch sees none here: "
                                     f"{cuda_unavailable_reason()}")
        from autotune_plugins.common.cuda_clock import CudaClock  # noqa: PLC0415 - imports torch

        self.torch, self._clock = torch, CudaClock
        # A new stream is never the default one (handle 0), which torch's current stream is.
        self.stream = torch.cuda.Stream()

    def name(self) -> str:
        return self.torch.cuda.get_device_name()

    def compute_capability(self) -> str:
        major, minor = self.torch.cuda.get_device_capability()
        return f"{major}.{minor}"

    def total_memory_bytes(self) -> int:
        return self.torch.cuda.get_device_properties(0).total_memory

    def tensor(self, array: np.ndarray, dtype: str):
        """A device copy of ``array`` in the torch dtype named ``dtype``, made on the
        engine's stream so that the engine reads it only once it is there."""
        with self.torch.cuda.stream(self.stream):
            host = self.torch.from_numpy(np.ascontiguousarray(array))
            return host.to(self.memory).to(getattr(self.torch, dtype))

    def empty(self, shape: tuple[int, ...], dtype: str):
        with self.torch.cuda.stream(self.stream):
            return self.torch.empty(shape, dtype=getattr(self.torch, dtype), device=self.memory)

    def stream_handle(self) -> int:
        """The engine's stream, as ``execute_async_v3`` takes it (a ``cudaStream_t``)."""
        return self.stream.cuda_stream

    def synchronize(self) -> None:
        """Wait for what was queued on the engine's stream (its results are then readable)."""
        self.stream.synchronize()

    def clock(self):
        return self._clock(self.stream)

    def release(self) -> None:
        self.torch.cuda.synchronize()
        self.torch.cuda.empty_cache()

    def is_out_of_memory(self, error: BaseException) -> bool:
        return isinstance(error, self.torch.cuda.OutOfMemoryError)


@dataclass(frozen=True)
class IoTensor:
    name: str
    is_input: bool
    dtype: str  # a torch dtype name


def io_tensors(trt: ModuleType, engine: trt_types.ICudaEngine) -> tuple[IoTensor, ...]:
    """The engine's inputs and outputs, in its order, each with the torch dtype of its buffer.

    :raises UnsupportedConfig: a tensor's type has no torch dtype here.
    """
    tensors = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        dtype_name = engine.get_tensor_dtype(name).name
        if dtype_name not in TORCH_DTYPES:
            raise UnsupportedConfig(f"the engine's tensor {name} is {dtype_name}, which autotune cannot feed")
        tensors.append(IoTensor(name, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                                TORCH_DTYPES[dtype_name]))
    return tuple(tensors)
