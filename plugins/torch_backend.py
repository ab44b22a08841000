"""The PyTorch backend: eager PyTorch (optionally torch.compile) on CUDA or the CPU."""

from autotune import hookimpl
from autotune.types import Backend, ModelInspector


@hookimpl
def autotune_backends():
    return [
        Backend(
            name="torch",
            framework="torch",
            distributions=("torch",),
            description="PyTorch eager on CUDA or the CPU; trains and infers",
            runner="autotune_plugins.torch_runner:TorchRunner",
        )
    ]


@hookimpl
def autotune_model_inspectors():
    return [
        ModelInspector(
            name="torch",
            framework="torch",
            kinds=("reference", "callable"),
            inspect="autotune_plugins.torch_inspect:inspect_source",
        )
    ]
