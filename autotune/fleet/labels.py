"""``autotune fleet labels``: Kubernetes node labels from this machine's profile, in NVIDIA GPU
Feature Discovery's style (``autotune.io/precision=fp16``), written as a Node Feature
Discovery local feature file.

A node with two GPU models is labelled per model (``autotune.io/rtx-4090.precision=...``),
each from a recommendation for that model alone — never from its first GPU only (GFD's
labels flip between runs on such nodes, gpu-feature-discovery #27, #66); a MIG GPU is
labelled per slice profile (``autotune.io/mig-3g.40gb.batch-size=...``). Every value is
valid for Kubernetes: at most 63 characters of ``(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?``,
cleaned as GFD cleans product names, then cut and trimmed, which GFD does not.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from autotune import api
from autotune.errors import UserError
from autotune.fleet.plan import GpuGroup, PlannedHost, planned_machine
from autotune.machine_profiles.store import MachineProfile
from autotune.recommendation.formats import write_atomically

PREFIX = "autotune.io"
#: Where NFD's local source reads feature files (one ``name=value`` a line; dot-files ignored).
FEATURES_FILE = Path("/etc/kubernetes/node-feature-discovery/features.d/autotune")
VALID_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
MAX_CHARS = 63


def clean(text: Any) -> str:
    """A label value (or name part) from any text: GFD's cleaning (keep ``[A-Za-z0-9-_. ]``,
    spaces to ``-``), then at most 63 characters, trimmed to start and end alphanumeric."""
    kept = re.sub(r"[^A-Za-z0-9\-_. ]", "", str(text)).replace(" ", "-")
    value = kept[:MAX_CHARS].strip("-_.")
    assert VALID_VALUE.match(value), value  # cleaning leaves nothing else
    return value


def _decision_labels(settings: dict[str, Any], scope: str = "") -> dict[str, str]:
    backends = settings.get("backends") or []
    values = {"precision": settings.get("precision"), "batch-size": settings.get("batch_size"),
              "backend": backends[0] if backends else None, "resolution": settings.get("resolution")}
    names = {key: clean(f"{scope}.{key}" if scope else key) for key in values}
    return {f"{PREFIX}/{names[key]}": clean(str(value).lower() if isinstance(value, bool) else value)
            for key, value in values.items() if value is not None}


def _groups(machine: dict[str, Any]) -> list[tuple[str, int, tuple[str, ...]]]:
    """(model, count, MIG slice profiles) per GPU model of the profile's machine."""
    counts: Counter[tuple[str, tuple[str, ...]]] = Counter()
    for gpu in machine.get("gpus") or ():
        slices = tuple(sorted(str(s.get("name", "")).rsplit(" ", 1)[-1] for s in gpu.get("mig_slices") or ())
                       ) if gpu.get("mig_enabled") else ()
        counts[(gpu.get("spec_name") or gpu.get("name"), slices)] += 1
    return [(model, count, slices) for (model, slices), count in counts.items()]


def _alone(profile: MachineProfile, model: str, count: int, mig: tuple[str, ...]) -> dict[str, Any]:
    """The rules' settings for ``count`` GPUs of ``model`` (with ``mig`` slices) on this host."""
    host = profile.machine.get("host") or {}
    planned = PlannedHost(host=profile.fingerprint.host or "node", gpus=(GpuGroup(model, count, mig),),
                          cpu_cores=max(1, int(host.get("logical_cores") or 1)),
                          ram_gb=max(1, round((host.get("ram_bytes") or 2**30) / 2**30)),
                          driver=profile.fingerprint.driver_version)
    inputs = dict(profile.recommendations[0].inputs)
    return api.recommend_for(planned_machine(planned), where="by the profile", **inputs).settings


def labels_for(profile: MachineProfile) -> dict[str, str]:
    """The node's labels: the profile's decisions for a node of one GPU model; per model, and
    per MIG slice profile, from a recommendation for each alone otherwise."""
    groups = _groups(profile.machine)
    source = "planned" if profile.planned else "measured" if profile.measured else "probed"
    labels = {f"{PREFIX}/source": source}
    if len(groups) <= 1 and not any(slices for _, _, slices in groups):
        labels.update(_decision_labels(profile.recommendations[0].settings))
        if groups:
            labels[f"{PREFIX}/gpu.product"] = clean(groups[0][0])
            labels[f"{PREFIX}/gpu.count"] = str(groups[0][1])
        return labels
    for model, count, slices in groups:
        scope = clean(model).lower()
        labels[f"{PREFIX}/{clean(f'{scope}.count')}"] = str(count)
        if not slices:
            labels.update(_decision_labels(_alone(profile, model, count, ()), scope))
        for slice_profile in sorted(set(slices)):
            alone = _alone(profile, model, 1, (slice_profile,))
            labels.update(_decision_labels(alone, f"mig-{slice_profile}"))
    return labels


def features_text(labels: dict[str, str], profile_path: Path | None = None) -> str:
    origin = f" from {profile_path}" if profile_path else ""
    header = f"# autotune node labels{origin}; written by autotune fleet labels\n"
    return header + "".join(f"{name}={value}\n" for name, value in sorted(labels.items()))


def write_features(text: str, path: Path) -> None:
    """Into place whole: NFD ignores dot-files, and :func:`autotune.recommendation.formats.write_atomically`
    writes a dot-file beside the target and renames it over it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {path.parent} ({error.strerror}); pass --out FILE") from None
    write_atomically(path, text)
