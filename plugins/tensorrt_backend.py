"""The TensorRT backend: engines built from ONNX for NVIDIA GPUs."""

from autotune import hookimpl
from autotune.types import Backend


@hookimpl
def autotune_backends():
    return [
        Backend(
            name="tensorrt",
            framework="tensorrt",
            # NVIDIA publishes the Python bindings under CUDA-specific names too.
            distributions=("tensorrt", "tensorrt-cu13", "tensorrt-cu12"),
            description="NVIDIA TensorRT engines built from ONNX (FP16, INT8, FP8)",
        )
    ]
