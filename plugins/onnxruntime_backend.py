"""The ONNX Runtime backend: CUDA, TensorRT or CPU execution providers."""

from autotune import hookimpl
from autotune.types import Backend


@hookimpl
def autotune_backends():
    return [
        Backend(
            name="onnxruntime",
            framework="onnxruntime",
            # onnxruntime-gpu and onnxruntime install the same import name.
            distributions=("onnxruntime-gpu", "onnxruntime"),
            description="ONNX Runtime with the CUDA, TensorRT or CPU execution provider",
        )
    ]
