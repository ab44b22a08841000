"""The PyTorch backend: eager PyTorch (optionally torch.compile) on CUDA or the CPU."""

from autotune.sdk import Backend, BackendOption, ModelConverter, ModelInspector, hookimpl

#: What only PyTorch has. Those that follow a decision take the recommendation's value.
OPTIONS = (
    BackendOption("channels_last", "bool", "model and inputs in torch.channels_last memory format "
                  "(image inputs only)", default=False, decision="channels_last", explore=True,
                  model_kinds=("image",)),
    BackendOption("cudnn_benchmark", "bool", "torch.backends.cudnn.benchmark: time convolution "
                  "algorithms once per shape", default=False, decision="cudnn_benchmark", devices=("cuda",)),
    BackendOption("tf32", "bool", "TF32 for FP32 matmuls and cuDNN convolutions (off: IEEE FP32 for both)",
                  default=False, decision="tf32", devices=("cuda",)),
    BackendOption("compile", "bool", "run the model through torch.compile", default=False),
)


@hookimpl
def autotune_backends():
    return [
        Backend(
            name="torch",
            framework="torch",
            distributions=("torch",),
            description="PyTorch eager on CUDA or the CPU; trains and infers",
            runner="autotune_plugins.torch.runner:TorchRunner",
            options=OPTIONS,
            model_kinds=("reference", "callable"),  # an .onnx file runs on ONNX Runtime or TensorRT
        )
    ]


@hookimpl
def autotune_model_inspectors():
    return [
        ModelInspector(
            name="torch",
            framework="torch",
            kinds=("reference", "callable"),
            inspect="autotune_plugins.torch.inspect:inspect_source",
        )
    ]


@hookimpl
def autotune_model_converters():
    return [
        ModelConverter(
            name="torch-onnx",
            framework="torch",
            source_kinds=("reference", "callable"),
            target="onnx",
            convert="autotune_plugins.torch.convert:to_onnx",
        )
    ]
