"""The PyTorch backend: eager PyTorch (optionally torch.compile) on CUDA or the CPU."""

from autotune import hookimpl
from autotune.types import Backend


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
