"""``autotune compare --plot``: a bar chart of the GPUs compared, best first, each bar the
best predicted configuration with the interval as its error bar; per watt and per dollar
beside it where there are figures. matplotlib (the ``bench`` extra) is imported here only."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from autotune.errors import UserError
from autotune.recommendation.compare import Comparison, GpuComparison
from autotune.recommendation.formats import atomic_file, check_writable


def check_plot(path: Path) -> None:
    """Fail before any work when the plot cannot be drawn or written."""
    check_writable(path)
    if importlib.util.find_spec("matplotlib") is None:
        raise UserError("autotune compare plots with matplotlib, which is not installed; "
                        "pip install 'autotune[bench]'")


def _best_samples_s(gpu: GpuComparison) -> tuple[float, tuple[float, float]] | None:
    best = gpu.best
    if best is None or best[1].samples_s is None or best[1].samples_s_range is None:
        return None
    return best[1].samples_s, best[1].samples_s_range


def plot(comparison: Comparison, path: Path) -> None:
    """One horizontal bar per GPU and panel, written to ``path`` (PNG) whole or not at all."""
    import matplotlib  # noqa: PLC0415 - only --plot pays for matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    # (axis label, the figure with its interval, what a GPU without it says)
    panels: list[tuple[str, Callable[[GpuComparison], tuple[float, tuple[float, float]] | None], str]] = [
        ("predicted samples/s", _best_samples_s, "not predicted")]
    if any(gpu.per_watt() for gpu in comparison.gpus):
        panels.append(("samples/s per watt (TDP)", GpuComparison.per_watt, "no TDP in the database"))
    if comparison.prices_given:
        panels.append(("samples per $", GpuComparison.per_dollar, "no price given"))
    names = [gpu.spec.name + (f"\n{best[0].precision} {best[1].runtime}, batch {best[0].batch}"
                              if (best := gpu.best) else "") for gpu in comparison.gpus]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 1.5, 0.6 * len(names) + 1.8),
                                sharey=True, squeeze=False)
    for axis, (label, figure_of, missing) in zip(axes[0], panels, strict=True):
        values = [figure_of(gpu) for gpu in comparison.gpus]
        heights = [value[0] if value else 0.0 for value in values]
        errors = [[value[0] - value[1][0] if value else 0.0 for value in values],
                  [value[1][1] - value[0] if value else 0.0 for value in values]]
        axis.barh(range(len(names)), heights, xerr=errors, capsize=3, color="tab:blue", alpha=0.8)
        for row, value in enumerate(values):
            if value is None:
                axis.text(0, row, f" {missing}", va="center", fontsize=8)
        axis.set_xlabel(label)
        axis.grid(True, axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(names)), names)
    axes[0][0].invert_yaxis()  # best first, at the top
    figure.suptitle(f"{comparison.model} {comparison.task}: predicted by the rules, not measured "
                    "(bars: best precision and runtime; whiskers: the interval)", fontsize=9)
    figure.tight_layout()
    try:
        with atomic_file(path, suffix=".png") as temporary:
            figure.savefig(temporary, dpi=110, format="png")
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror}; choose a writable path") from None
    finally:
        plt.close(figure)
