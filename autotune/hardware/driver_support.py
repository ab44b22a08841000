"""Whether this machine's NVIDIA driver runs the CUDA the installed torch was built for, and
which torch would run where it does not.

A torch built for CUDA 13 on a driver older than 580 answers ``torch.cuda.is_available()``
with False and a generic warning, and a script that asked for the GPU goes on on the CPU.
The driver's version is the probe's (:class:`autotune.types.Machine` ``driver_version``,
read from NVML, which answers whatever CUDA torch was built for); the minimum driver of each
CUDA major and the wheel index serving it are data, in ``profiles/cuda_drivers.yaml`` with
their sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autotune.hardware.probe import probe
from autotune.shipped_data import load_profile

if TYPE_CHECKING:
    from autotune.types import Machine

_TABLE = "cuda_drivers.yaml"


@dataclass(frozen=True)
class DriverTooOld:
    """The driver is older than the CUDA of the installed torch needs; ``wheel_*`` name the
    newest CUDA major with a torch wheel index whose minimum this driver meets (None: none
    does, the driver must be updated)."""

    driver_version: str
    torch_cuda_version: str
    minimum_driver: int
    wheel_cuda_major: str | None
    wheel_index_url: str | None

    def message(self) -> str:
        """``driver 535.104 is older than CUDA 13.0 needs (580); install torch built for ...``."""
        needs = (f"driver {self.driver_version} is older than CUDA {self.torch_cuda_version} needs "
                 f"({self.minimum_driver})")
        if self.wheel_index_url is not None:
            return (f"{needs}; install torch built for CUDA {self.wheel_cuda_major}.x: "
                    f"pip install torch --index-url {self.wheel_index_url}")
        return (f"{needs}; no current torch build runs on it: update the NVIDIA driver to "
                f"{_lowest_wheel_minimum()} or newer")


def _table() -> dict[str, Any]:
    return load_profile(_TABLE)


def _lowest_wheel_minimum() -> int:
    table = _table()
    return min(table["minimum_driver"][major] for major in table["wheel_index"])


def _major(version: str | None) -> int | None:
    """``"535.154.05"`` -> 535, ``"13.0"`` -> 13; None for what is not a version."""
    head = (version or "").strip().split(".")[0]
    return int(head) if head.isdigit() else None


def check(driver_version: str | None, torch_cuda_version: str | None) -> DriverTooOld | None:
    """A :class:`DriverTooOld` when ``driver_version`` (NVML's, e.g. ``"535.154.05"``) is below
    the minimum of ``torch_cuda_version``'s major (``torch.version.cuda``, e.g. ``"13.0"``);
    None when it is not, or when either is unknown (no driver, a CPU build, a CUDA major the
    table does not hold: nothing to claim)."""
    driver, cuda = _major(driver_version), _major(torch_cuda_version)
    table = _table()
    minimum = table["minimum_driver"].get(str(cuda))
    if driver is None or minimum is None or driver >= minimum:
        return None
    runnable = sorted((major for major in table["wheel_index"] if table["minimum_driver"][major] <= driver),
                      key=int, reverse=True)
    wheel = runnable[0] if runnable else None
    return DriverTooOld(driver_version=str(driver_version), torch_cuda_version=str(torch_cuda_version),
                        minimum_driver=int(minimum), wheel_cuda_major=wheel,
                        wheel_index_url=table["wheel_index"][wheel] if wheel else None)


def _probed_machine() -> Machine:
    """This machine as the probe sees it (tests replace this with a recorded machine)."""
    return probe()


def torch_driver_problem(machine: Machine | None = None) -> DriverTooOld | None:
    """:func:`check` for the installed torch on ``machine`` (default: this one, probed now)."""
    import torch  # noqa: PLC0415 - only a caller that uses torch asks

    if torch.version.cuda is None:
        return None
    return check((machine or _probed_machine()).driver_version, torch.version.cuda)


def cuda_unavailable_reason(machine: Machine | None = None) -> str:
    """Why torch sees no CUDA GPU, in one line, for a caller that wanted one: the driver and
    the wheel that would run where the driver is too old, else what the probe saw."""
    import torch  # noqa: PLC0415

    if torch.version.cuda is None:
        return (f"torch {torch.__version__} is a CPU-only build; install one built for CUDA "
                "(https://pytorch.org/get-started/locally/)")
    machine = machine or _probed_machine()
    too_old = check(machine.driver_version, torch.version.cuda)
    if too_old is not None:
        return too_old.message()
    if not machine.gpus:
        return f"no GPU here ({machine.note or 'NVML shows none'})"
    return (f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU although NVML shows "
            f"{machine.summary()} with driver {machine.driver_version}")
