"""The ``autotune`` command.

\b
Quick start:
  autotune probe                      # what this machine has
  autotune recommend --explain        # how to run a model here, and why
  autotune recommend --gpu "3060 8GB" # what another GPU would get
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from autotune import api
from autotune.cli.compare import compare
from autotune.cli.fleet import fleet
from autotune.cli.measure import bench, verify
from autotune.cli.options import (
    GPU_OPTION,
    INPUT_SHAPE_OPTION,
    INPUT_SPEC_OPTION,
    OUTPUT_OPTIONS,
    REPLAY_OPTION,
    REQUEST_OPTIONS,
    WHERE,
    apply_options,
    check_output,
    emit,
    settings_from,
)
from autotune.cli.profile import profile
from autotune.errors import AutotuneError, Interrupted, UserError
from autotune.hardware import gpu_database as gpudb
from autotune.recommendation.formats import check_writable, write_atomically
from autotune.recommendation.rules import RuleSet, builtin_rules, decision_specs
from autotune.version import __version__


def _version_text() -> str:
    from autotune import plugins  # noqa: PLC0415

    lines = [f"autotune {__version__}"]
    for name, (plugin, backend) in sorted(plugins.backends().items()):
        installed = backend.installed_version() or "not installed"
        lines.append(f"  backend {name} (plugin {plugin}): {backend.framework} {installed}")
    return "\n".join(lines)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version_text())
        ctx.exit()


@click.group(help=__doc__, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Show the version and the installed backends.")
def cli() -> None:
    pass


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
@GPU_OPTION
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save every NVML answer to FILE (YAML), for a bug report or a test.")
@REPLAY_OPTION
def probe(as_json: bool, gpu_names: tuple[str, ...], record: Path | None, replay: Path | None) -> None:
    """What this machine has: GPUs through NVML, CPU and memory."""
    from autotune.cli import render  # noqa: PLC0415 - rich only where a table is drawn

    if record is not None and (gpu_names or replay):
        raise UserError("--record saves this machine's NVML answers; drop --gpu and --replay")
    if record is not None:
        from autotune.hardware.nvml_recording import RecordingNvml  # noqa: PLC0415
        from autotune.hardware.probe import probe as probe_with  # noqa: PLC0415

        check_writable(record)
        recorder = RecordingNvml()
        machine = probe_with(recorder)
        write_atomically(record, recorder.dump())
    else:
        machine = api.probe(gpu_names, replay)
    click.echo(json.dumps(machine.to_dict(), indent=2) if as_json else render.describe(machine))


@cli.command()
@GPU_OPTION
@REPLAY_OPTION
@click.option("--backend", help="Override the backend order, e.g. torch or tensorrt,onnxruntime.")
@lambda function: apply_options(REQUEST_OPTIONS + OUTPUT_OPTIONS, function)
def recommend(gpu_names, replay, backend, config_file, **options) -> None:
    """How to run a model on this machine (or a simulated one), and why."""
    check_output(options)
    settings = settings_from(options, backends=backend, gpu=list(gpu_names))
    emit(api.recommend(config=config_file, replay=replay, where=WHERE, **settings), options)


@cli.command()
@click.argument("model")
@INPUT_SHAPE_OPTION
@INPUT_SPEC_OPTION
@click.option("--resolution", type=click.IntRange(min=8), help="Input size in pixels for the figures.")
@click.option("--optimizer", default=None, help="Optimizer assumed for training memory (default adam).")
@GPU_OPTION
@REPLAY_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def inspect(model, input_shape, input_spec, resolution, optimizer, gpu_names, replay, as_json) -> None:
    """What MODEL costs: parameters, FLOPs, activation memory, verdict, roofline.

    MODEL is a reference model (resnet18, resnet50, mobilenet_v3_small, mobilenet_v3_large,
    efficientnet_b0, vit_b_16), package.module:callable returning a torch.nn.Module, or
    an .onnx file.
    """
    from autotune.recommendation.inspect_report import render_text  # noqa: PLC0415

    report = api.inspect(model, input_shape=input_shape, input_spec=input_spec, resolution=resolution,
                         optimizer=optimizer,
                         gpu=gpu_names, replay=replay, where=WHERE)
    click.echo(json.dumps(report, indent=2) if as_json else render_text(report))


@cli.command()
@click.option("--facts", "show_facts", is_flag=True, help="List the facts rules can test instead.")
@click.option("--decision", help="Only the rules for this decision.")
def rules(show_facts: bool, decision: str | None) -> None:
    """Every rule: its decision, condition, value, source and what the source says."""
    from autotune import plugins  # noqa: PLC0415
    from autotune.cli import render  # noqa: PLC0415

    if show_facts:
        render.facts_table()
        return
    if decision is not None and decision not in decision_specs():
        raise UserError(f"unknown decision {decision!r}; known: {', '.join(decision_specs())}")
    rules = RuleSet([*plugins.plugin_rules(), *builtin_rules()]).rules
    render.rules_table([rule for rule in rules if decision in (None, rule.decision)])


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def plugins_command(as_json: bool) -> None:
    """Registered plugins, their version, whether their framework is installed here, and
    each backend's own options (what --set BACKEND.OPTION=VALUE takes)."""
    from autotune import plugins
    from autotune.cli import render

    rows = render.plugin_rows(plugins.backends(), plugins.plugin_distribution)
    click.echo(json.dumps(rows, indent=2) if as_json else render.plugins_text(rows))


@cli.command()
def gpus() -> None:
    """Every GPU in the spec database (what --gpu accepts)."""
    click.echo(f"{'name':<22}{'arch':<11}{'cc':<6}{'VRAM':>7}{'GB/s':>7}{'FP16 TC':>9}{'TDP W':>7}"
               "  also known as")
    for spec in gpudb.all_specs():
        fp16 = f"{spec.tensor_tflops['fp16']:.0f}" if "fp16" in spec.tensor_tflops else "-"
        tdp = f"{spec.tdp_w:.0f}" if spec.tdp_w is not None else "-"
        names = ", ".join([*spec.nvml_names, *spec.aliases])
        click.echo(f"{spec.name:<22}{spec.architecture:<11}{spec.compute_capability:<6}"
                   f"{spec.vram_gb:>5.0f}GB{spec.memory_bandwidth_gb_s:>7.0f}{fp16:>9}{tdp:>7}  {names}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: errors are one line on stderr with their exit code, never a traceback."""
    # --model mymodels:build names a module in the folder autotune runs from, as
    # `python -m` and uvicorn find it; the console script alone would not.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        result = cli.main(args=argv, prog_name="autotune", standalone_mode=False)
    except AutotuneError as error:
        if isinstance(error, Interrupted):
            click.echo("autotune: interrupted", err=True)
        else:
            click.echo(f"autotune: error: {error}", err=True)
        sys.exit(error.exit_code)
    except click.ClickException as error:
        click.echo(f"autotune: error: {error.format_message()} (see autotune --help)", err=True)
        sys.exit(error.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("autotune: interrupted", err=True)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


# Commands with modules of their own.
for command in (compare, verify, bench, profile, fleet):
    cli.add_command(command)
