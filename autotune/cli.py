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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

import autotune
from autotune import api
from autotune.config import INPUT_CHOICES, check_not_a_config_file
from autotune.errors import AutotuneError, DoesNotFit, Interrupted, NoBackend, UserError
from autotune.output import FORMATS, check_writable, write_atomically

WHERE = "by flag"


def _version_text() -> str:
    from autotune import plugins  # noqa: PLC0415

    lines = [f"autotune {autotune.__version__}"]
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


def _apply(options: list, function: Callable) -> Callable:
    for option in reversed(options):
        function = option(function)
    return function


GPU_OPTION = click.option("--gpu", "gpu_names", multiple=True, metavar="NAME",
                          help="Use a simulated GPU from the spec database (repeatable).")
REPLAY_OPTION = click.option("--replay", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                             help="Use the machine recorded in FILE (autotune probe --record).")
CONFIG_OPTION = click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
                             help="Read settings from this TOML or YAML file (over the project's own files).")
SET_OPTION = click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
                          help="Set any decision (tf32=false) or backend option (torch.channels_last=true); "
                          "repeatable.")
INPUT_SHAPE_OPTION = click.option("--input-shape", help="One float input's sample shape without the batch, "
                                  "e.g. 3,640,640 (when it cannot be read from the model).")
INPUT_SPEC_OPTION = click.option("--input-spec", help="Every input: name:dtype[dims] joined by ';', H=/W= "
                                 "the resolution, S= the sequence length, e.g. 'input_ids:int64[S=128]:"
                                 "tokens<30522; attention_mask:int64[S=128]:ones'.")
#: The options every command that builds a recommendation takes.
REQUEST_OPTIONS = [
    click.option("--task", type=click.Choice(INPUT_CHOICES["task"]), help="infer (default) or train."),
    click.option("--objective", type=click.Choice(INPUT_CHOICES["objective"]),
                 help="throughput (default) or latency."),
    click.option("--tier", type=click.Choice(INPUT_CHOICES["tier"]),
                 help="balanced (default), accuracy or low-resource (S000-5)."),
    CONFIG_OPTION,
    click.option("--precision", help="Override the precision (fp32, tf32, bf16, fp16, fp8, int8, int4)."),
    click.option("--batch-size", help="Override the batch size."),
    click.option("--resolution", help="Override the input resolution in pixels."),
    SET_OPTION,
    click.option("--model", help="Size batch and resolution for this model: a reference name "
                 "(resnet18, resnet50, vit_b_16...), package.module:callable, or a .onnx file."),
    INPUT_SHAPE_OPTION,
    INPUT_SPEC_OPTION,
    click.option("--optimizer", help="Optimizer assumed for training memory (default adam)."),
    click.option("--latency-budget-ms", help="Latency budget for --objective latency (default 30, S002-4)."),
    click.option("--headroom", help="Share of free GPU memory a plan may fill (default 0.9)."),
]
#: What the commands that write a recommendation take.
OUTPUT_OPTIONS = [
    click.option("--format", "output_format", type=click.Choice(FORMATS), default="yaml",
                 show_default=True, help="Output format."),
    click.option("--explain", is_flag=True,
                 help="Print a table of every decision, its rule, source and reason (to stderr)."),
    click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
                 help="Write the config to FILE instead of stdout."),
]
_REQUEST_FLAGS = ("task", "objective", "tier", "precision", "batch_size", "resolution", "model",
                  "input_shape", "input_spec", "optimizer", "latency_budget_ms", "headroom")


def _settings(options: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The settings a command's flags give, ``--set NAME=VALUE`` included."""
    settings = {key: options.pop(key) for key in _REQUEST_FLAGS if key in options} | extra
    for assignment in options.pop("assignments", ()):
        key, separator, value = assignment.partition("=")
        if not separator:
            raise UserError(f"--set {assignment!r} needs the form DECISION=VALUE or BACKEND.OPTION=VALUE, "
                            "e.g. tf32=false or torch.channels_last=true")
        settings[key.strip().replace("-", "_")] = value.strip()
    return {key: value for key, value in settings.items() if value not in (None, (), [])}


def _check_output(options: dict[str, Any]) -> None:
    """Fail before any work when ``-o`` cannot or must not be written."""
    if options["output"] is not None:
        check_writable(options["output"])
        check_not_a_config_file(options["output"])


def _emit(recommendation, options: dict[str, Any]) -> None:
    from autotune import render  # noqa: PLC0415 - rich only where a table is drawn
    from autotune.output import render as render_format  # noqa: PLC0415

    text = render_format(recommendation, options["output_format"])
    if options["explain"]:
        render.explain_table(recommendation)
    if options["output"] is not None:
        write_atomically(options["output"], text)
        click.echo(f"wrote {options['output']}", err=True)
    else:
        click.echo(text, nl=False)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
@GPU_OPTION
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save every NVML answer to FILE (YAML), for a bug report or a test.")
@REPLAY_OPTION
def probe(as_json: bool, gpu_names: tuple[str, ...], record: Path | None, replay: Path | None) -> None:
    """What this machine has: GPUs through NVML, CPU and memory."""
    from autotune import render  # noqa: PLC0415 - rich only where a table is drawn

    if record is not None and (gpu_names or replay):
        raise UserError("--record saves this machine's NVML answers; drop --gpu and --replay")
    if record is not None:
        from autotune.machine_probe import probe as probe_with  # noqa: PLC0415
        from autotune.nvml_recording import RecordingNvml  # noqa: PLC0415

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
@lambda function: _apply(REQUEST_OPTIONS + OUTPUT_OPTIONS, function)
def recommend(gpu_names, replay, backend, config_file, **options) -> None:
    """How to run a model on this machine (or a simulated one), and why."""
    _check_output(options)
    settings = _settings(options, backends=backend, gpu=list(gpu_names))
    _emit(api.recommend(config=config_file, replay=replay, where=WHERE, **settings), options)


MEASURE_OPTIONS = [
    click.option("--budget-s", type=click.FloatRange(min=1), default=60, show_default=True,
                 help="Wall seconds per backend, model build included; a configuration it cannot "
                 "cover is skipped and says how much it needs."),
    click.option("--inputs", "inputs_path", type=click.Path(path_type=Path),
                 help="A .npy or .pt batch for the accuracy check (default: synthetic inputs)."),
    click.option("--accuracy-budget", type=click.FloatRange(min=0, max=1), default=None,
                 help="Accuracy loss allowed against FP32 (default 0.03, S002-6)."),
    click.option("--memory-budget-gb", type=click.FloatRange(min=0.01), default=None,
                 help="Pretend the device has only this much memory (runs the OOM ladder)."),
    click.option("--compile", "use_compile", is_flag=True,
                 help="Run the model through torch.compile (the same as --set torch.compile=true)."),
    click.option("--json", "as_json", is_flag=True, help="Print the results as JSON."),
]


def _measuring(title: str, run: Callable[[Callable, Callable], Any]) -> Any:
    """Run a measurement with a spinner; on a failure or Ctrl-C, show what was measured.

    The spinner starts with the first measurement, so an error found before any (a bad
    flag, an unknown backend) stays one clean line."""
    from autotune import render  # noqa: PLC0415 - rich only where a table is drawn

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


@cli.command()
@click.option("--backend", "backend_names", metavar="NAMES",
              help="A registered backend (autotune plugins lists them), a comma list, or all "
              "(default: the recommendation's order).")
@lambda function: _apply(MEASURE_OPTIONS + REQUEST_OPTIONS + OUTPUT_OPTIONS, function)
def verify(backend_names, budget_s, inputs_path, accuracy_budget, memory_budget_gb, use_compile,
           as_json, config_file, **options) -> None:
    """Apply the recommendation with each backend, measure it, and let measurement decide.

    \b
    Exit codes: 0 measured; 1 no backend could run; 2 bad input;
    3 the model fits at no batch in any precision; 130 interrupted (nothing written).
    """
    from autotune import render  # noqa: PLC0415 - rich only where a table is drawn

    _check_output(options)
    settings = _settings(options, **({"torch.compile": True} if use_compile else {}))
    verification = _measuring("autotune verify", lambda show, starting: api.verify(
        backends=backend_names, budget_s=budget_s, inputs=inputs_path, accuracy_budget=accuracy_budget,
        memory_budget_gb=memory_budget_gb, config=config_file, where=WHERE, on_measurement=show,
        on_backend=starting, **settings))
    if verification.measurements:
        render.results_table(verification.measurements, f"autotune verify: {verification.proposed.machine}")
    for report in verification.reports:
        if report.status != "measured" or report.reason:
            click.echo(f"{report.backend}: {report.status}{': ' + report.reason if report.reason else ''}",
                       err=True)
    if as_json:
        click.echo(json.dumps(verification.recommendation.to_dict(), indent=2))
    else:
        _emit(verification.recommendation, options)


@cli.command()
@click.option("--model", help="A reference model, package.module:callable, or a .onnx file "
              "(default: the config's model, else resnet18).")
@INPUT_SHAPE_OPTION
@INPUT_SPEC_OPTION
@click.option("--task", type=click.Choice(INPUT_CHOICES["task"]), help="infer (default) or train.")
@click.option("--backend", "backend_name", default="torch", show_default=True, help="The backend to run.")
@click.option("--sweep", "sweeps", multiple=True, metavar="KEY=V1,V2",
              help="batch=1,2,4,8,16,32 (default) and/or resolution=160,224,320.")
@click.option("--precision", "precisions", help="Comma list, e.g. fp32,fp16 (default: fp32 and the "
              "recommended precision).")
@click.option("--budget-s", type=click.FloatRange(min=0.1), default=None,
              help="Wall seconds per configuration (default 1.5); one it cannot cover is skipped and said.")
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
    from autotune import render  # noqa: PLC0415 - rich only where a table is drawn
    from autotune.benchmark import parse_sweep  # noqa: PLC0415

    check_writable(plot)
    sweep = parse_sweep(sweeps) if sweeps else {}  # api.bench knows the default batches
    settings = _settings(options, **({"torch.compile": True} if use_compile else {}))
    result = _measuring("autotune bench", lambda show, _starting: api.bench(
        backend=backend_name, batches=sweep.get("batch"), resolutions=sweep.get("resolution"),
        precisions=precisions.split(",") if precisions else None, budget_s=budget_s,
        memory_budget_gb=memory_budget_gb, plot=plot, config=config_file, where=WHERE,
        on_measurement=show, **settings))
    if as_json:
        click.echo(json.dumps({"model": result.model, "task": result.task, "backend": result.backend,
                               "device": result.device, "rows": result.rows(), "plot": str(plot)}, indent=2))
    else:
        render.results_table(result.measurements, f"autotune bench: {result.model} {result.task} on "
                             f"{result.device} ({result.backend})", result.knees)
    click.echo(f"wrote {plot}", err=True)


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
    from autotune.inspect_report import render_text  # noqa: PLC0415

    report = api.inspect(model, input_shape=input_shape, input_spec=input_spec, resolution=resolution,
                         optimizer=optimizer,
                         gpu=gpu_names, replay=replay, where=WHERE)
    click.echo(json.dumps(report, indent=2) if as_json else render_text(report))


@cli.command()
@click.option("--facts", "show_facts", is_flag=True, help="List the facts rules can test instead.")
@click.option("--decision", help="Only the rules for this decision.")
def rules(show_facts: bool, decision: str | None) -> None:
    """Every rule: its decision, condition, value, source and what the source says."""
    from autotune import plugins, render  # noqa: PLC0415
    from autotune.rules import RuleSet, builtin_rules, decision_specs  # noqa: PLC0415

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
    from autotune import (
        plugins,  # noqa: PLC0415
        render,  # noqa: PLC0415 - rich only where a table is drawn
    )

    rows = render.plugin_rows(plugins.backends(), plugins.plugin_distribution)
    click.echo(json.dumps(rows, indent=2) if as_json else render.plugins_text(rows))


@cli.command()
def gpus() -> None:
    """Every GPU in the spec database (what --gpu accepts)."""
    from autotune import gpudb  # noqa: PLC0415

    click.echo(f"{'name':<22}{'arch':<11}{'cc':<6}{'VRAM':>7}{'GB/s':>7}{'FP16 TC':>9}  also known as")
    for spec in gpudb.all_specs():
        fp16 = f"{spec.tensor_tflops['fp16']:.0f}" if "fp16" in spec.tensor_tflops else "-"
        names = ", ".join([*spec.nvml_names, *spec.aliases])
        click.echo(f"{spec.name:<22}{spec.architecture:<11}{spec.compute_capability:<6}"
                   f"{spec.vram_gb:>5.0f}GB{spec.memory_bandwidth_gb_s:>7.0f}{fp16:>9}  {names}")


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


def _add_subcommand_modules() -> None:
    # Commands with modules of their own; imported here, after the helpers they share.
    from autotune.fleet_cli import fleet  # noqa: PLC0415
    from autotune.profile_cli import profile  # noqa: PLC0415

    cli.add_command(profile)
    cli.add_command(fleet)


_add_subcommand_modules()
