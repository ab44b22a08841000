"""What ``import autotune.auto`` does, as functions a training script, a test or a worker can
call: find this machine's training profile (or make a rules-only one), apply PyTorch's global
settings it chose, and expose its choices — and never break the script.

Every failure (no GPU, no store, an unwritable store, a corrupt, hostile or stale profile,
NVML missing, a bad project config) becomes one warning line on stderr and a safe
configuration: FP32 and the rules' batch for FP32. Nothing here initialises CUDA: the probe
reads NVML, and the settings applied (``torch.backends...``) are flags.

Environment: ``AUTOTUNE_DISABLE=1`` turns it off (nothing read, applied or printed; every
choice None); ``AUTOTUNE_PROFILE=FILE`` reads that profile; ``AUTOTUNE_STORE`` is the
store; ``AUTOTUNE_QUIET=1`` silences the line saying what was applied (warnings stay).
"""

from __future__ import annotations

import functools
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autotune.errors import AutotuneError
from autotune.machine_profiles.fingerprint import fingerprint
from autotune.machine_profiles.store import MachineProfile, profile_path, store_folder, write_profile

#: The purpose whose profile a training script reads (``<host>.train.yaml``).
PURPOSE_TASK = "train"
#: torch's default TF32 use, (CUDA matmuls, cuDNN convolutions): a script whose use differs
#: set it before ``import autotune.auto``, and it is kept.
TORCH_TF32_DEFAULT = (False, True)


@dataclass(frozen=True)
class TrainingConfig:
    """The choices a training script uses: ``config.batch_size``, ``config.precision``, ...;
    ``reasons`` maps each decision to why it was made. ``source`` says where they came from:
    ``profile``, ``rules`` (computed now, no benchmark), ``fallback`` or ``disabled``."""

    source: str
    device: str | None = None
    precision: str | None = None
    amp: bool = False
    amp_dtype_name: str | None = None
    grad_scaler: bool = False
    batch_size: int | None = None
    resolution: int | None = None
    channels_last: bool = False
    num_workers: int | None = None
    pin_memory: bool = False
    tf32: bool = False
    cudnn_benchmark: bool = False
    reasons: dict[str, str] = field(default_factory=dict)
    profile_path: Path | None = None
    #: What was applied to PyTorch's global settings, and what was kept as the user set it.
    applied: tuple[str, ...] = ()
    #: A precision the rules say may run faster here, not measured on this machine (a CPU
    #: with native BF16): the summary says how to measure it.
    unmeasured_alternative: str | None = None

    @property
    def amp_dtype(self):
        """``torch.float16`` / ``torch.bfloat16`` for autocast, or None."""
        if self.amp_dtype_name is None:
            return None
        import torch  # noqa: PLC0415 - only a script that asks has torch

        return getattr(torch, self.amp_dtype_name)

    @classmethod
    def from_recommendation(cls, recommendation, source: str, path: Path | None = None,
                            measured: bool = False) -> TrainingConfig:
        """``measured``: the recommendation comes from a profile verify measured here."""
        settings = recommendation.settings
        return cls(source=source, device=settings.get("device"), precision=settings.get("precision"),
                   amp=bool(settings.get("amp")), amp_dtype_name=settings.get("amp_dtype") or None,
                   grad_scaler=bool(settings.get("grad_scaler")), batch_size=settings.get("batch_size"),
                   resolution=settings.get("resolution"), channels_last=bool(settings.get("channels_last")),
                   num_workers=settings.get("num_workers"), pin_memory=bool(settings.get("pin_memory")),
                   tf32=bool(settings.get("tf32")), cudnn_benchmark=bool(settings.get("cudnn_benchmark")),
                   reasons={d.name: d.reason for d in recommendation.decisions}, profile_path=path,
                   unmeasured_alternative=None if measured else _alternative(settings))


def _alternative(settings: Mapping[str, Any]) -> str | None:
    alternative = settings.get("alternative_precision")
    if (settings.get("device") == "cpu" and alternative in ("bf16", "fp16")
            and alternative != settings.get("precision")):
        return alternative
    return None


def warn(message: str) -> None:
    print(f"autotune: warning: {message}", file=sys.stderr)


def _rules_recommendation(machine, **overrides: Any):
    """A rules-only training recommendation for ``machine`` (the project's config files apply)."""
    from autotune import api  # noqa: PLC0415

    return api.recommend_for(machine, where="by autotune.auto", task=PURPOSE_TASK, **overrides)


def _fallback(machine, why: str) -> TrainingConfig:
    """FP32 at the rules' batch for FP32: what cannot go wrong on any machine."""
    warn(f"{why}; using FP32 and the rules' batch")
    try:
        recommendation = _rules_recommendation(machine, precision="fp32")
        return TrainingConfig.from_recommendation(recommendation, "fallback")
    except Exception:  # noqa: BLE001 - the last resort must not fail the script
        return TrainingConfig(source="fallback", precision="fp32")


def load_training_config(environ: Mapping[str, str] | None = None) -> TrainingConfig:
    """The configuration ``import autotune.auto`` exposes; never raises (see the module)."""
    environ = os.environ if environ is None else environ
    if environ.get("AUTOTUNE_DISABLE") == "1":
        return TrainingConfig(source="disabled")
    machine = None
    try:
        # With a cached profile only the probe, the fingerprint and the reader are imported:
        # the rules engine (autotune.api) comes in only when a recommendation is computed.
        from autotune.hardware.probe import probe  # noqa: PLC0415
        from autotune.machine_profiles.fingerprint import compare, fingerprint  # noqa: PLC0415
        from autotune.machine_profiles.store import profile_path, read_profile, store_folder  # noqa: PLC0415

        machine = probe()
        given = environ.get("AUTOTUNE_PROFILE")
        store = environ.get("AUTOTUNE_STORE")
        path = Path(given) if given else profile_path(store_folder(store), socket.gethostname(), PURPOSE_TASK)
        if given or path.is_file():
            found = read_profile(path)
            staleness = compare(found.fingerprint, fingerprint(machine, list(found.fingerprint.runtimes)))
            if not staleness.stale:
                return TrainingConfig.from_recommendation(found.recommendations[0], "profile", path,
                                                          measured=found.measured)
            if staleness.rules_hold and not found.measured:
                return TrainingConfig.from_recommendation(found.recommendations[0], "profile", path)
            if not staleness.hardware_changed:
                # What was measured on this very hardware still holds where the rules only guess.
                measured = found.recommendations[0].settings.get("precision")
                kept = {"precision": measured} if found.measured else {}
                said = f" with the precision measured here ({kept['precision']})" if kept else ""
                warn(f"{path}: {staleness.verdict()}; using the rules' recommendation{said} (rerun autotune "
                     "profile --task train to refresh it)")
                return TrainingConfig.from_recommendation(_rules_recommendation(machine, **kept), "rules",
                                                          measured=found.measured)
            return _fallback(machine, f"{path}: {staleness.verdict()}")
        recommendation = _rules_recommendation(machine)
        _save(machine, recommendation, store)
        return TrainingConfig.from_recommendation(recommendation, "rules", path)
    except Exception as error:  # noqa: BLE001 - a training script must never break on autotune
        from autotune.errors import one_line  # noqa: PLC0415

        why = one_line(str(error), 200) or type(error).__name__
        if machine is None:  # not even the probe: nothing to compute a batch from
            warn(f"{why}; using FP32")
            return TrainingConfig(source="fallback", precision="fp32")
        return _fallback(machine, why)


def _save(machine, recommendation, store: str | None) -> None:
    """Keep the rules-only recommendation as this machine's training profile; a store that
    cannot be written is one warning, and the script goes on."""
    prints = fingerprint(machine)
    made = MachineProfile(purpose=PURPOSE_TASK, fingerprint=prints, machine=machine.to_dict(),
                          recommendations=(recommendation,))
    try:
        write_profile(made, profile_path(store_folder(store), prints.host, PURPOSE_TASK))
    except AutotuneError as error:
        warn(f"{error}; the recommendation is used but not saved")


def apply_torch_settings(config: TrainingConfig, torch_was_imported: bool) -> tuple[str, ...]:
    """Set TF32 and ``cudnn.benchmark`` as ``config`` chose, on a GPU only; a setting the
    user changed before (``torch_was_imported`` and not torch's default) is kept. TF32 goes
    through :func:`autotune.training.torch_tf32.set_tf32`, which keeps every PyTorch reader of it
    working (Lightning's ``get_float32_matmul_precision``, ``cudnn.flags``). Returns what was
    done, one phrase each."""
    if config.device != "cuda":
        return ()
    try:
        import torch  # noqa: PLC0415 - a training script imports it anyway
    except ImportError:
        return ()
    from autotune.training.torch_tf32 import set_tf32, tf32_in_use  # noqa: PLC0415 - imports torch

    done = []
    backends = torch.backends
    if torch_was_imported and backends.cudnn.benchmark:  # torch's default is off
        done.append(f"kept your cudnn.benchmark={backends.cudnn.benchmark}")
    else:
        backends.cudnn.benchmark = config.cudnn_benchmark
        done.append(f"cudnn.benchmark={'on' if config.cudnn_benchmark else 'off'}")
    in_use = tf32_in_use()
    if torch_was_imported and in_use != TORCH_TF32_DEFAULT:
        matmul, conv = ("tf32" if on else "ieee" for on in in_use)
        done.append(f"kept your TF32 settings (matmul {matmul}, cuDNN conv {conv})")
    else:
        set_tf32(config.tf32)
        done.append(f"tf32={'on' if config.tf32 else 'off'}")
    return tuple(done)


def summary(config: TrainingConfig) -> str:
    """The one line saying what ``import autotune.auto`` chose and applied."""
    precision = f"{config.precision} AMP" if config.amp else config.precision
    where = f" from {config.profile_path}" if config.profile_path and config.source == "profile" else ""
    applied = f"; applied {', '.join(config.applied)}" if config.applied else ""
    alternative = config.unmeasured_alternative
    untried = (f"; {alternative.upper()} may run faster on this CPU, not measured here (autotune profile "
               "--task train --verify --model M measures it, and this import then uses the faster)"
               if alternative else "")
    return (f"autotune: {config.source}{where}: {precision}, batch {config.batch_size} on "
            f"{config.device}{applied}{untried} (AUTOTUNE_QUIET=1 silences this)")


@functools.cache
def process_config() -> TrainingConfig:
    """This process's configuration: loaded, its PyTorch settings applied and said in one line
    (unless ``AUTOTUNE_QUIET=1``), once per process — what ``import autotune.auto`` exposes and
    what :func:`autotune.apply` uses when given none."""
    config = load_training_config()
    if config.source != "disabled":
        torch_was_imported = "torch" in sys.modules
        config = replace(config, applied=apply_torch_settings(config, torch_was_imported=torch_was_imported))
        if os.environ.get("AUTOTUNE_QUIET") != "1":
            print(summary(config), file=sys.stderr)
    return config
