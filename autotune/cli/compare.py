"""``autotune compare``: parsing and rendering only; the work is :func:`autotune.api.compare`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from autotune import api
from autotune.cli.options import GPU_OPTION, INPUT_SHAPE_OPTION, INPUT_SPEC_OPTION, WHERE
from autotune.config import INPUT_CHOICES, check_not_a_config_file
from autotune.recommendation.formats import check_writable, write_atomically


@click.command()
@click.option("--model", required=True, help="A reference model (resnet50, vit_b_16...), "
              "package.module:callable, or a .onnx file.")
@GPU_OPTION
@click.option("--task", type=click.Choice(INPUT_CHOICES["task"]), default="infer", show_default=True,
              help="infer or train (training is predicted for PyTorch only).")
@click.option("--precision", "precisions", multiple=True, metavar="LIST",
              help="Only these precisions, e.g. fp16,int8 (repeatable; default: each one a GPU runs).")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Predict at this batch (default: the batch recommend would choose on each GPU).")
@INPUT_SHAPE_OPTION
@INPUT_SPEC_OPTION
@click.option("--resolution", type=click.IntRange(min=8), help="Input size in pixels (default: the model's).")
@click.option("--optimizer", help="Optimizer assumed for training memory (default adam).")
@click.option("--headroom", type=float, help="Share of free GPU memory a batch may fill (default 0.9).")
@click.option("--prices", type=click.Path(path_type=Path), metavar="FILE",
              help="GPU name -> $/hour (YAML 'T4: 0.35' or CSV 'T4,0.35'): adds samples per $ and "
              "orders by it.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="What to print.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw a bar chart to FILE.png (needs matplotlib: pip install 'autotune[bench]').")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the JSON to FILE (atomically).")
def compare(model, gpu_names, task, precisions, batch_size, input_shape, input_spec, resolution, optimizer,
            headroom, prices, output_format, plot, output) -> None:
    """Which GPU to run MODEL on: for each --gpu, the largest batch that fits and the predicted
    samples/s and latency per precision and runtime, per watt and per $, best first.

    Rules only: nothing is measured, no GPU is needed. Predictions are calibrated on
    published measurements; where none covers a runtime or precision, it says so.
    """
    if output is not None:
        check_writable(output)
        check_not_a_config_file(output)
    comparison = api.compare(
        model, gpu_names, task=task,
        precisions=[p.strip() for value in precisions for p in value.split(",") if p.strip()] or None,
        batch_size=batch_size, input_shape=input_shape, input_spec=input_spec, resolution=resolution,
        optimizer=optimizer, headroom=headroom, prices=prices, plot=plot, where=WHERE)
    report = comparison.to_dict()
    if output is not None:
        write_atomically(output, json.dumps(report, indent=2) + "\n")
    if output_format == "json":
        if output is None:
            click.echo(json.dumps(report, indent=2))
    else:
        render(report)
    for path in (plot, output):
        if path is not None:
            click.echo(f"wrote {path}", err=True)


def number(value: float) -> str:
    """Three significant figures at most, grouped: 6,180; 88.3; 63.6M."""
    if value >= 1e6:
        return f"{value / 1e6:.3g}M"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def with_interval(value: float | None, interval: list[float] | None, unit: str = "") -> str:
    """``6,180 (3,370–11,990)``, or ``-`` where there is no figure."""
    if value is None or interval is None:
        return "-"
    return f"{number(value)}{unit} ({number(interval[0])}–{number(interval[1])})"


def render(report: dict[str, Any]) -> None:
    """The summary table, best first, then every precision and runtime, then the reasons."""
    from rich import box  # noqa: PLC0415 - rich only where a table is drawn
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    console = Console()
    console.width = max(console.width, 160 if console.is_terminal else 200)
    at = f" at {report['resolution']} px" if report["resolution"] else ""
    order = "samples per $" if report["order_by"] == "samples_per_dollar" else "predicted samples/s"
    summary = Table(title=f"autotune compare: {report['model']} {report['task']}{at}, best first by {order} "
                    "(predicted by the rules, not measured)", title_justify="left", box=box.SIMPLE_HEAD)
    priced = report["order_by"] == "samples_per_dollar"
    for column in ("#", "GPU", "best", "samples/s", "latency ms, batch 1", "largest batch", "samples/s per W",
                   *(("samples per $",) if priced else ()), "note"):
        summary.add_column(column, no_wrap=column != "note",
                           justify="right" if column in ("#", "largest batch") else "left")
    for rank, gpu in enumerate(report["gpus"], start=1):
        best = gpu["best"] or {}
        summary.add_row(
            str(rank), gpu["gpu"],
            f"{best['precision']} {best['runtime']}, batch {best['batch']}" if best else "-",
            with_interval(best.get("samples_s"), best.get("samples_s_range")),
            with_interval(best.get("latency_ms"), best.get("latency_ms_range"))
            + (f" at batch {best['latency_batch']}" if best and best["latency_batch"] != 1 else ""),
            str(best["largest_batch"]) if best else "-",
            with_interval(gpu["samples_s_per_watt"], gpu["samples_s_per_watt_range"]),
            *((with_interval(gpu["samples_per_dollar"], gpu["samples_per_dollar_range"]),) if priced else ()),
            "; ".join(gpu["notes"]))
    console.print(summary)
    reasons: dict[str, int] = {}
    console.print(_detail_table(report, reasons))
    for reason, mark in reasons.items():
        console.print(f"  [{mark}] not predicted: {reason}", highlight=False)
    interval = report["interval"]
    spreads = ", ".join(f"{runtime} {spread['low']}x–{spread['high']}x"
                        for runtime, spread in interval["by_runtime"].items())
    console.print(f"  intervals: {interval['meaning']} ({spreads}); "
                  "latency: one batch of 1 (a training step when training)", highlight=False)
    for note in report["notes"]:
        console.print(f"  note: {note}", highlight=False)


def _detail_table(report: dict[str, Any], reasons: dict[str, int]):
    """Every GPU x precision: what fits, the batch, each runtime's samples/s and latency."""
    from rich import box  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(title="every precision and runtime (samples/s at the batch; latency ms at batch 1)",
                  title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("GPU", "precision", "largest batch", "batch", *report["runtimes"]):
        table.add_column(column, no_wrap=True, justify="right" if "batch" in column else "left")
    for gpu in report["gpus"]:
        for row in gpu["precisions"]:
            cells = []
            for figure in row["runtimes"]:
                if figure["samples_s"] is None:
                    mark = reasons.setdefault(figure["not_predicted"], len(reasons) + 1)
                    cells.append(f"not predicted [{mark}]")
                else:
                    cells.append(f"{with_interval(figure['samples_s'], figure['samples_s_range'])}/s; "
                                 f"{number(figure['latency_ms'])} ms")
            if row["not_run"]:
                cells = [row["not_run"]] + [""] * (len(report["runtimes"]) - 1)
            table.add_row(gpu["gpu"], row["precision"], str(row["largest_batch"]),
                          str(row["batch"]) if row["batch"] is not None else "-", *cells)
        table.add_section()
    return table
