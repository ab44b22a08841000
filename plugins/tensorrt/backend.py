"""The TensorRT backend: engines built from ONNX for NVIDIA GPUs (TensorRT 10 and 11)."""

from autotune.sdk import Backend, BackendOption, hookimpl

OPTIONS = (
    BackendOption("tf32", "bool", "TF32 for the engine's FP32 layers (TensorRT's BuilderFlag.TF32, on by "
                  "default in TensorRT; cleared unless the tf32 decision says so)", default=False,
                  decision="tf32", devices=("cuda",)),
    BackendOption("optimization_level", "choice", "the builder's optimisation level: higher builds slower "
                  "and may find faster kernels (TensorRT's default is 3)", default="3",
                  choices=("0", "1", "2", "3", "4", "5"), devices=("cuda",)),
)


@hookimpl
def autotune_backends():
    return [
        Backend(
            name="tensorrt",
            framework="tensorrt",
            # NVIDIA publishes the Python bindings under CUDA-specific names too.
            distributions=("tensorrt", "tensorrt-cu13", "tensorrt-cu12"),
            description="NVIDIA TensorRT engines built from ONNX (TensorRT 10 and 11; FP32, TF32, FP16, "
                        "BF16 on 10, INT8 from Q/DQ); inference on NVIDIA GPUs",
            runner="autotune_plugins.tensorrt.runner:TrtRunner",
            options=OPTIONS,
            # The tensorrt packages on PyPI are stubs that download NVIDIA's libraries from
            # NVIDIA's own index while they install.
            install="pip install tensorrt-cu13 (or tensorrt-cu12 for TensorRT 10 with CUDA 12): its "
                    "PyPI package downloads NVIDIA's libraries from pypi.nvidia.com while it installs, so "
                    "that host must be reachable",
        )
    ]
