"""``autotune fleet summary``: what a store of profiles says about a fleet, as one table,
counts by GPU model and by decision, JSON or CSV, and a picture."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.machine_profiles.fingerprint import rules_hash
from autotune.machine_profiles.store import MachineProfile, ProfileError, read_profile
from autotune.recommendation.formats import atomic_file

COLUMNS = ("host", "gpus", "precision", "batch_size", "resolution", "backend", "source", "stale")


def read_store(folder: Path) -> tuple[list[MachineProfile], list[str]]:
    """Every profile in ``folder`` (dot-files and locks skipped), and one line per file that
    could not be read as a profile: a bad file is listed, never fatal."""
    if not folder.is_dir():
        raise UserError(f"no profile store at {folder}; give --store DIR (written by autotune profile or "
                        "autotune fleet plan)")
    profiles, problems = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix not in (".yaml", ".yml", ".json"):
            continue
        try:
            profiles.append(read_profile(path))
        except ProfileError as error:
            problems.append(str(error))
    return profiles, problems


def gpu_text(machine: dict[str, Any]) -> str:
    """``8 x A100 80GB SXM`` (``+`` between models); ``CPU only``."""
    counts = Counter(gpu.get("spec_name") or gpu.get("name") for gpu in machine.get("gpus") or ())
    return " + ".join(f"{count} x {name}" for name, count in counts.items()) or "CPU only"


def row(profile: MachineProfile, rules_hash: str) -> dict[str, Any]:
    settings = profile.recommendations[0].settings
    backends = settings.get("backends") or []
    source = "planned" if profile.planned else "measured" if profile.measured else "probed"
    # Offline, a store of other machines can only be judged on what autotune itself knows:
    # whether its rules changed since (autotune profile check judges a machine on itself).
    stale = "rules changed" if profile.fingerprint.rules_hash != rules_hash else "no"
    return {"host": profile.fingerprint.host, "gpus": gpu_text(profile.machine),
            "precision": settings.get("precision"), "batch_size": settings.get("batch_size"),
            "resolution": settings.get("resolution"), "backend": backends[0] if backends else None,
            "source": source, "stale": stale}


def summarize(profiles: list[MachineProfile]) -> dict[str, Any]:
    current = rules_hash()
    rows = [row(profile, current) for profile in profiles]
    models: Counter[str] = Counter()
    for profile in profiles:
        for gpu in profile.machine.get("gpus") or ():
            models[gpu.get("spec_name") or gpu.get("name")] += 1
    return {"hosts": len(rows), "rows": rows, "gpus_by_model": dict(models.most_common()),
            "hosts_by_precision": dict(Counter(r["precision"] for r in rows).most_common()),
            "hosts_by_backend": dict(Counter(r["backend"] for r in rows).most_common()),
            "hosts_by_source": dict(Counter(r["source"] for r in rows).most_common()),
            "stale_hosts": sum(r["stale"] != "no" for r in rows)}


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer: csv.DictWriter[str] = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def hosts_by_model(summary: dict[str, Any]) -> dict[str, Counter[str]]:
    """Hosts per GPU model, by recommended precision: a mixed host (``1 x L4 + 1 x T4``) is
    counted under each of its models, so no model it carries goes missing from the picture."""
    by_model: dict[str, Counter[str]] = {}
    for entry in summary["rows"]:
        for part in entry["gpus"].split(" + "):
            model = part.split(" x ", 1)[-1]
            by_model.setdefault(model, Counter())[str(entry["precision"])] += 1
    return by_model


def plot(summary: dict[str, Any], path: Path) -> None:
    """A PNG of hosts by GPU model (a mixed host under each of its models), stacked by
    recommended precision."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
        from matplotlib.ticker import MaxNLocator  # noqa: PLC0415
    except ImportError:
        raise UserError("the fleet picture needs matplotlib: pip install 'autotune[bench]'") from None
    by_model = hosts_by_model(summary)
    models = sorted(by_model, key=lambda m: -sum(by_model[m].values()))
    precisions = sorted({p for counts in by_model.values() for p in counts})
    figure, axes = plt.subplots(figsize=(max(6, 0.8 * len(models) + 2), 4.5))
    bottoms = [0] * len(models)
    for precision in precisions:
        heights = [by_model[m][precision] for m in models]
        axes.bar(models, heights, bottom=bottoms, label=precision)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    axes.set_ylabel("hosts")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # hosts come whole
    mixed = sum(" + " in entry["gpus"] for entry in summary["rows"])
    note = f" ({mixed} mixed, under each model)" if mixed else ""
    axes.set_title(f"autotune fleet: {summary['hosts']} hosts{note} by GPU model and recommended precision")
    axes.legend(title="precision")
    axes.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()

    with atomic_file(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
