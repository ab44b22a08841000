"""``autotune bench``: the S001-3 table for this machine — latency, throughput and memory
per batch — with the knee marked (the smallest batch within 5 % of the best throughput,
S001-4), and a plot of throughput and latency against batch."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.errors import UserError
from autotune.measure.measurer import Measurement
from autotune.measure.protocol import protocol
from autotune.recommendation.formats import atomic_file

SWEEP_KEYS = ("batch", "resolution")


def parse_sweep(texts: Iterable[str]) -> dict[str, list[int]]:
    """``["batch=1,2,4", "resolution=160,224"]`` -> ``{"batch": [1, 2, 4], "resolution": [160, 224]}``."""
    sweep: dict[str, list[int]] = {}
    for text in texts:
        key, separator, values = text.partition("=")
        key = key.strip()
        if not separator or key not in SWEEP_KEYS:
            raise UserError(f"--sweep {text!r} must be KEY=V1,V2,... with KEY one of "
                            f"{', '.join(SWEEP_KEYS)}, e.g. batch=1,2,4,8")
        try:
            numbers = [int(v) for v in values.split(",") if v.strip()]
        except ValueError:
            numbers = []
        if not numbers or min(numbers) < 1:
            raise UserError(f"--sweep {text!r} needs positive whole numbers, e.g. batch=1,2,4,8")
        sweep[key] = sorted(set(numbers))
    return sweep


def knees(measurements: list[Measurement]) -> set[int]:
    """ids of the knee measurement of each (precision, resolution) series."""
    series: dict[tuple[str, int | None], list[Measurement]] = {}
    for measurement in measurements:
        if measurement.ok:
            key = (measurement.config.precision, measurement.config.resolution)
            series.setdefault(key, []).append(measurement)
    marked = set()
    for members in series.values():
        best = max(m.throughput for m in members)
        within = [m for m in members if m.throughput >= protocol()["knee_fraction"] * best]
        marked.add(id(min(within, key=lambda m: m.config.batch_size)))
    return marked


def table_rows(measurements: list[Measurement]) -> list[dict]:
    marked = knees(measurements)
    rows = []
    for measurement in measurements:
        row = measurement.to_dict()
        row["knee"] = id(measurement) in marked
        rows.append(row)
    return rows


def plot(measurements: list[Measurement], path: Path, title: str) -> None:
    """Throughput and p50 latency against batch, one line per precision and resolution."""
    import matplotlib  # noqa: PLC0415 - only bench pays for matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (throughput_axis, latency_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    marked = knees(measurements)
    series: dict[str, list[Measurement]] = {}
    for measurement in measurements:
        if measurement.ok:
            resolution = f" {measurement.config.resolution}px" if measurement.config.resolution else ""
            series.setdefault(f"{measurement.config.precision}{resolution}", []).append(measurement)
    for label, members in series.items():
        members.sort(key=lambda m: m.config.batch_size)
        batches = [m.config.batch_size for m in members]
        throughput_axis.plot(batches, [m.throughput for m in members], marker="o", label=label)
        latency_axis.plot(batches, [m.timed.p50_ms for m in members], marker="o", label=label)
        for m in members:
            if id(m) in marked:
                throughput_axis.annotate("knee", (m.config.batch_size, m.throughput),
                                         textcoords="offset points", xytext=(0, 8), ha="center")
    batches = sorted({m.config.batch_size for m in measurements})
    for axis, ylabel in ((throughput_axis, "throughput (samples/s)"), (latency_axis, "p50 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(batches, [str(batch) for batch in batches])
        axis.set_xlabel("batch size")
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    try:
        with atomic_file(path, suffix=".png") as temporary:
            figure.savefig(temporary, dpi=110, format="png")
    finally:
        plt.close(figure)


@dataclass(frozen=True)
class BenchResult:
    """The S001-3 table for this machine: one measurement per point, the knees marked."""

    model: str
    task: str
    backend: str
    device: str
    measurements: tuple[Measurement, ...]
    plot: Path | None

    @property
    def knees(self) -> set[int]:
        from autotune.measure.bench import knees  # noqa: PLC0415

        return knees(list(self.measurements))

    def rows(self) -> list[dict[str, Any]]:
        from autotune.measure.bench import table_rows  # noqa: PLC0415

        return table_rows(list(self.measurements))
