"""``autotune verify`` and ``autotune bench``: the commands that measure, and the spinner
they share with ``autotune profile --verify``.

Parsing and rendering only; the work is :func:`autotune.api.verify` and :func:`autotune.api.bench`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from autotune import api
from autotune.cli.options import (
    CONFIG_OPTION,
    INPUT_SHAPE_OPTION,
    INPUT_SPEC_OPTION,
    MEASURE_OPTIONS,
    OUTPUT_OPTIONS,
    REQUEST_OPTIONS,
    SET_OPTION,
    WHERE,
    apply_options,
    check_output,
    emit,
    settings_from,
)
from autotune.config import INPUT_CHOICES
from autotune.errors import DoesNotFit, Interrupted, NoBackend
from autotune.recommendation.formats import check_writable


def measuring(title: str, run: Callable[[Callable, Callable], Any]) -> Any:
    """Run a measurement with a spinner; on a failure or Ctrl-C, show what was measured.

    The spinner starts with the first measurement, so an error found before any (a bad
    flag, an unknown backend) stays one clean line."""
    from autotune.cli import render  # noqa: PLC0415 - rich only where a table is drawn

    progress = render.progress()
    task = progress.add_task("measuring", total=None)

    def describe(text: str) -> None:
        if not progress.live.is_started:
            progress.start()
        progress.update(task, description=text)

    def stop() -> None:
        if progress.live.is_started:  # stopping one never started still prints a line
            progress.stop()

    def show(measurement) -> None:
        describe(f"{measurement.backend}: {measurement.label} {measurement.throughput:.1f} samples/s")

    try:
        return run(show, lambda backend: describe(f"{backend}: starting"))
    except Interrupted as interrupted:
        stop()
        render.results_table(interrupted.measurements, f"{title} (interrupted)")
        raise click.Abort() from None
    except (NoBackend, DoesNotFit) as failure:
        stop()
        if failure.measurements:
            render.results_table(failure.measurements, title)
        for report in getattr(failure, "reports", ()):
            if report.status != "measured" or report.reason:
                click.echo(f"{report.backend}: {report.status}"
                           f"{': ' + report.reason if report.reason else ''}", err=True)
        raise
    finally:
        stop()


@click.command()
@click.option("--backend", "backend_names", metavar="NAMES",
              help="A registered backend (autotune plugins lists them), a comma list, or all "
              "(default: the recommendation's order).")
@lambda function: apply_options(MEASURE_OPTIONS + REQUEST_OPTIONS + OUTPUT_OPTIONS, function)
def verify(backend_names, budget_s, inputs_path, accuracy_budget, memory_budget_gb, use_compile,
           as_json, config_file, **options) -> None:
    """Apply the recommendation with each backend, measure it, and let measurement decide.

    \b
    Exit codes: 0 measured; 1 no backend could run; 2 bad input;
    3 the model fits at no batch in any precision; 130 interrupted (nothing written).
    """
    from autotune.cli import render  # noqa: PLC0415 - rich only where a table is drawn

    if as_json:
        options["output_format"] = json_format(options["output_format"])
    check_output(options)
    settings = settings_from(options, **({"torch.compile": True} if use_compile else {}))
    verification = measuring("autotune verify", lambda show, starting: api.verify(
        backends=backend_names, budget_s=budget_s, inputs=inputs_path, accuracy_budget=accuracy_budget,
        memory_budget_gb=memory_budget_gb, config=config_file, where=WHERE, on_measurement=show,
        on_backend=starting, **settings))
    if verification.cpu_load is not None and verification.cpu_load.busy:
        click.echo(verification.cpu_load.line(), err=True)
    if verification.measurements:
        render.results_table(verification.measurements, f"autotune verify: {verification.proposed.machine}")
    for report in verification.reports:
        if report.status != "measured" or report.reason:
            click.echo(f"{report.backend}: {report.status}{': ' + report.reason if report.reason else ''}",
                       err=True)
    emit(verification.recommendation, options)


def json_format(output_format: str) -> str:
    """``--json`` is ``--format json`` (so ``-o FILE`` writes the JSON there); refused before
    any measuring when ``--format`` names another format."""
    source = click.get_current_context().get_parameter_source("output_format")
    if source is not None and source is not click.core.ParameterSource.DEFAULT and output_format != "json":
        raise click.UsageError(f"--json and --format {output_format} ask for two formats; give one")
    return "json"


@click.command()
@click.option("--model", help="A reference model, package.module:callable, or a .onnx file "
              "(default: the config's model, else resnet18).")
@INPUT_SHAPE_OPTION
@INPUT_SPEC_OPTION
@click.option("--task", type=click.Choice(INPUT_CHOICES["task"]), help="infer (default) or train.")
@click.option("--backend", "backend_name", default=None,
              help="The backend to run (default: torch; for an .onnx file the first backend the "
              "recommendation lists that runs it).")
@click.option("--sweep", "sweeps", multiple=True, metavar="KEY=V1,V2",
              help="batch=1,2,4,8,16,32 (default) and/or resolution=160,224,320.")
@click.option("--precision", "precisions", help="Comma list, e.g. fp32,fp16 (default: fp32, the "
              "recommended precision, and the alternative and quantised ones it proposes, those the "
              "backend runs).")
@click.option("--budget-s", type=click.FloatRange(min=0.1), default=None,
              help="Wall seconds per configuration, a hard limit; one it cannot cover is skipped and "
              "said (default: 1.5 s of timing, longer where a slow step needs it while the "
              "sweep's 60 s last).")
@click.option("--memory-budget-gb", type=click.FloatRange(min=0.01), default=None,
              help="Pretend the device has only this much memory (runs the OOM ladder).")
@click.option("--compile", "use_compile", is_flag=True,
              help="Run the model through torch.compile (the same as --set torch.compile=true).")
@CONFIG_OPTION
@SET_OPTION
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=Path("autotune-bench.png"),
              show_default=True, help="Where to write the PNG plot.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def bench(backend_name, sweeps, precisions, budget_s, memory_budget_gb, use_compile, config_file, plot,
          as_json, **options) -> None:
    """The S001-3 table for this machine: latency, throughput and memory per batch, the knee
    marked, and a plot. Settings come from the config files and --config as for verify.

    \b
    Exit codes: 0 measured; 1 nothing could run; 2 bad input; 130 interrupted (nothing written).
    """
    from autotune.cli import render  # noqa: PLC0415 - rich only where a table is drawn
    from autotune.measure.bench import parse_sweep  # noqa: PLC0415

    check_writable(plot)
    sweep = parse_sweep(sweeps) if sweeps else {}  # autotune.measure.bench knows the default batches
    settings = settings_from(options, **({"torch.compile": True} if use_compile else {}))
    result = measuring("autotune bench", lambda show, _starting: api.bench(
        backend=backend_name, batches=sweep.get("batch"), resolutions=sweep.get("resolution"),
        precisions=precisions.split(",") if precisions else None, budget_s=budget_s,
        memory_budget_gb=memory_budget_gb, plot=plot, config=config_file, where=WHERE,
        on_measurement=show, **settings))
    if result.cpu_load is not None and result.cpu_load.busy:
        click.echo(result.cpu_load.line(), err=True)
    if as_json:
        click.echo(json.dumps({"model": result.model, "task": result.task, "backend": result.backend,
                               "device": result.device, "rows": result.rows(), "plot": str(plot)}, indent=2))
    else:
        render.results_table(result.measurements, f"autotune bench: {result.model} {result.task} on "
                             f"{result.device} ({result.backend})", result.knees)
    click.echo(f"wrote {plot}", err=True)
