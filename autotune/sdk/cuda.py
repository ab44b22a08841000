"""What a CUDA runtime's runner shares with autotune's other GPU code: recognising an
out-of-memory error however the library words it, TF32 set so every PyTorch reader agrees,
whether the driver runs the installed torch's CUDA, and NVML's view of this machine's GPUs.
torch is imported inside these functions, never by importing this module."""

from autotune.hardware.driver_support import DriverTooOld, cuda_unavailable_reason, torch_driver_problem
from autotune.hardware.probe import probe, uuid_hex
from autotune.training.oom_proof import is_out_of_memory
from autotune.training.torch_tf32 import Tf32State, read_state, restore, set_tf32

__all__ = ["DriverTooOld", "cuda_unavailable_reason", "torch_driver_problem", "probe", "uuid_hex",
           "is_out_of_memory", "Tf32State", "read_state", "restore", "set_tf32"]
