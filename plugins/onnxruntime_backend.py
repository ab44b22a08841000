"""The ONNX Runtime backend: CUDA, TensorRT or CPU execution providers."""

from autotune import hookimpl
from autotune.types import Backend, ModelInspector


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


@hookimpl
def autotune_model_inspectors():
    return [
        ModelInspector(
            name="onnx",
            framework="onnx",
            kinds=("onnx",),
            inspect="autotune_plugins.onnx_inspect:inspect_source",
        )
    ]
