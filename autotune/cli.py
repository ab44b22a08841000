"""The ``autotune`` command.

\b
Quick start:
  autotune probe                      # what this machine has
  autotune recommend --explain        # how to run a model here, and why
  autotune recommend --gpu "3060 8GB" # what another GPU would get
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import click

import autotune
from autotune.config import INPUT_CHOICES, build_request, check_not_a_config_file
from autotune.errors import DoesNotFit, UserError
from autotune.output import FORMATS, check_writable, render, write_atomically
from autotune.types import Machine


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


def _machine(gpu_names: list[str] | tuple[str, ...], replay: Path | None = None) -> Machine:
    """The simulated machine when GPU names are given, else this one (or a replayed one)."""
    from autotune.probe import probe, probe_host  # noqa: PLC0415

    if gpu_names:
        from autotune import gpudb  # noqa: PLC0415

        return gpudb.simulate(list(gpu_names), probe_host())
    if replay is not None:
        from autotune.nvml_recording import RecordedNvml  # noqa: PLC0415

        return probe(RecordedNvml.from_file(replay))
    return probe()


def _gb(value: int) -> str:
    return f"{value / 2**30:.1f} GB"


def _describe(machine: Machine) -> str:
    host = machine.host
    lines = [
        f"host: {host.cpu_model}, {host.physical_cores} physical / {host.logical_cores} logical "
        f"cores ({host.available_cores} usable), {_gb(host.ram_bytes)} RAM, {host.os}",
    ]
    if machine.driver_version:
        lines.append(f"driver: {machine.driver_version}, CUDA {machine.cuda_driver_version}")
    if not machine.gpus:
        lines.append(f"GPU: none ({machine.note or 'no NVIDIA GPU'}) -> CPU-only recommendations")
    for gpu in machine.gpus:
        known = f" [{gpu.spec_name}]" if gpu.spec_name else " [not in the spec database]"
        lines.append(f"GPU {gpu.index}: {gpu.name}{known}{' (simulated)' if gpu.simulated else ''}")
        facts = [
            f"compute capability {gpu.compute_capability}, {gpu.architecture}",
            f"{gpu.sm_count} SMs" if gpu.sm_count else "SM count unknown",
            f"memory {_gb(gpu.vram_total_bytes)} total, {_gb(gpu.vram_free_bytes)} free",
        ]
        if gpu.memory_bandwidth_gb_s:
            facts.append(f"bandwidth {gpu.memory_bandwidth_gb_s:.0f} GB/s")
        if gpu.pcie_generation:
            facts.append(f"PCIe {gpu.pcie_generation}.0 x{gpu.pcie_width}")
        facts.append(f"NVLink links {gpu.nvlink_active_links}")
        if gpu.power_limit_w:
            facts.append(f"power limit {gpu.power_limit_w:.0f} W")
        lines.append("  " + "; ".join(facts))
        tensor = ", ".join(gpu.tensor_core_precisions) if gpu.tensor_cores else "none"
        lines.append(f"  Tensor Cores: {tensor}; runs well: {', '.join(gpu.precisions)}")
        if gpu.mig_enabled:
            slices = ", ".join(f"{s.name} {_gb(s.memory_total_bytes)}" for s in gpu.mig_slices)
            lines.append(f"  MIG on: {slices or 'no instances created'}")
    return "\n".join(lines)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
@click.option("--gpu", "gpu_names", multiple=True, metavar="NAME",
              help="Describe a simulated machine with this GPU from the spec database (repeatable).")
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save every NVML answer to FILE (YAML), for a bug report or a test.")
@click.option("--replay", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Describe the machine recorded in FILE instead of this one.")
def probe(as_json: bool, gpu_names: tuple[str, ...], record: Path | None, replay: Path | None) -> None:
    """What this machine has: GPUs through NVML, CPU and memory."""
    if record is not None and (gpu_names or replay):
        raise UserError("--record saves this machine's NVML answers; drop --gpu and --replay")
    if record is not None:
        from autotune.nvml_recording import RecordingNvml  # noqa: PLC0415
        from autotune.probe import probe as run_probe  # noqa: PLC0415

        check_writable(record)
        recorder = RecordingNvml()
        machine = run_probe(recorder)
        write_atomically(record, recorder.dump())
    else:
        machine = _machine(gpu_names, replay)
    click.echo(json.dumps(machine.to_dict(), indent=2) if as_json else _describe(machine))


def _explain_table(recommendation) -> None:
    from rich import box  # noqa: PLC0415 - only --explain pays for rich
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=f"autotune recommend: {recommendation.machine}", title_justify="left",
                  box=box.SIMPLE_HEAD)
    table.add_column("decision", no_wrap=True)
    table.add_column("value", max_width=20, overflow="fold")
    table.add_column("rule", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("reason", ratio=1)
    for decision in recommendation.decisions:
        value = decision.value
        text = ", ".join(value) if isinstance(value, list) else str(value).lower() \
            if isinstance(value, bool) else str(value)
        table.add_row(decision.name, text, decision.rule, decision.source, decision.reason)
    console = Console(stderr=True)
    console.width = max(console.width, 120)  # narrower, the reasons wrap word by word
    console.print(table)
    for warning in recommendation.warnings:
        console.print(f"[bold yellow]warning:[/] {warning}")


def _apply(options: list, function):
    for option in reversed(options):
        function = option(function)
    return function


#: The options every command that builds a recommendation takes.
REQUEST_OPTIONS = [
    click.option("--task", type=click.Choice(INPUT_CHOICES["task"]), help="infer (default) or train."),
    click.option("--objective", type=click.Choice(INPUT_CHOICES["objective"]),
                 help="throughput (default) or latency."),
    click.option("--tier", type=click.Choice(INPUT_CHOICES["tier"]),
                 help="balanced (default), accuracy or low-resource (S000-5)."),
    click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
                 help="Read settings from this TOML or YAML file (over the project's own files)."),
    click.option("--precision", help="Override the precision (fp32, tf32, bf16, fp16, fp8, int8, int4)."),
    click.option("--batch-size", help="Override the batch size."),
    click.option("--resolution", help="Override the input resolution in pixels."),
    click.option("--set", "assignments", multiple=True, metavar="DECISION=VALUE",
                 help="Override any decision, e.g. --set tf32=false (repeatable)."),
    click.option("--model", help="Size batch and resolution for this model: a reference name "
                 "(resnet18, resnet50, vit_b_16...), package.module:callable, or a .onnx file."),
    click.option("--input-shape", help="One sample's shape without the batch, e.g. 3,224,224 "
                 "(when it cannot be guessed)."),
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
                  "input_shape", "optimizer", "latency_budget_ms", "headroom")


def _request(options: dict[str, Any], default_model: str | None = None, **extra_flags: Any):
    """The layered request (config files, then flags) from a command's options."""
    flags = {key: options[key] for key in _REQUEST_FLAGS} | extra_flags
    for assignment in options["assignments"]:
        key, separator, value = assignment.partition("=")
        if not separator:
            raise UserError(f"--set {assignment!r} needs the form DECISION=VALUE, e.g. tf32=false")
        flags[key.strip().replace("-", "_")] = value.strip()
    request = build_request(options["config_file"], flags)
    if default_model and "model" not in request.model:
        request.model["model"] = default_model
    return request


def _check_output(options: dict[str, Any]) -> None:
    """Fail before any work when ``-o`` cannot or must not be written."""
    if options["output"] is not None:
        check_writable(options["output"])
        check_not_a_config_file(options["output"])


def _emit(recommendation, options: dict[str, Any]) -> None:
    text = render(recommendation, options["output_format"])
    if options["explain"]:
        _explain_table(recommendation)
    if options["output"] is not None:
        write_atomically(options["output"], text)
        click.echo(f"wrote {options['output']}", err=True)
    else:
        click.echo(text, nl=False)


@cli.command()
@click.option("--gpu", "gpu_names", multiple=True, metavar="NAME",
              help="Recommend for a simulated GPU from the spec database (repeatable).")
@click.option("--replay", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Recommend for the machine recorded in FILE (autotune probe --record).")
@click.option("--backend", help="Override the backend order, e.g. torch or tensorrt,onnxruntime.")
@lambda function: _apply(REQUEST_OPTIONS + OUTPUT_OPTIONS, function)
def recommend(gpu_names, replay, backend, **options) -> None:
    """How to run a model on this machine (or a simulated one), and why."""
    _check_output(options)
    request = _request(options, backends=backend)
    from autotune import plugins  # noqa: PLC0415
    from autotune.recommend import recommend as make_recommendation  # noqa: PLC0415

    machine = _machine(list(gpu_names) or request.gpus, replay)
    recommendation = make_recommendation(machine, request.inputs, request.overrides,
                                         plugins.plugin_rules(), _model_request(request.model))
    _emit(recommendation, options)


MEASURE_OPTIONS = [
    click.option("--budget-s", type=click.FloatRange(min=1), default=60, show_default=True,
                 help="Seconds of measuring per backend."),
    click.option("--inputs", "inputs_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 help="A .npy or .pt batch for the accuracy check (default: synthetic inputs)."),
    click.option("--accuracy-budget", type=click.FloatRange(min=0, max=1), default=None,
                 help="Accuracy loss allowed against FP32 (default 0.03, S002-6)."),
    click.option("--memory-budget-gb", type=click.FloatRange(min=0.01), default=None,
                 help="Pretend the device has only this much memory (runs the OOM ladder)."),
    click.option("--compile", "use_compile", is_flag=True, help="Run the model through torch.compile."),
    click.option("--json", "as_json", is_flag=True, help="Print the results as JSON."),
]


def _results_table(measurements, title: str, knees: set[int] | None = None) -> None:
    from rich import box  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    numeric = ("p50 ms", "p90 ms", "p99 ms", "samples/s", "peak GB", "predicted GB", "roofline")
    for column in ("backend", "config", "p50 ms", "p90 ms", "p99 ms", "samples/s", "cv", "peak GB",
                   "predicted GB", "roofline", "result"):
        table.add_column(column, justify="right" if column in numeric else "left")
    for m in measurements:
        timing = m.timing
        cells = [f"{getattr(timing, f):.2f}" for f in ("p50_ms", "p90_ms", "p99_ms")] if timing else ["-"] * 3
        result = m.status if not m.reason else f"{m.status}: {m.reason}"
        if knees is not None and id(m) in knees:
            result = "knee; " + result
        table.add_row(
            m.backend, m.config.label(), *cells,
            f"{m.throughput:.1f}" if timing else "-",
            (f"{timing.cv:.1%}" + (" unstable" if timing.unstable else "")) if timing else "-",
            f"{m.peak_memory_bytes / 2**30:.2f}" if m.peak_memory_bytes else "-",
            f"{m.predicted_peak_bytes / 2**30:.2f}" if m.predicted_peak_bytes else "-",
            f"{m.roofline_percent:.0f} %" if m.roofline_percent is not None else "-",
            result,
        )
    console = Console(stderr=True)
    console.width = max(console.width, 140)
    console.print(table)


def _progress():
    """A spinner with what is being measured, on stderr, gone when done."""
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                    transient=True, console=Console(stderr=True))


@cli.command()
@click.option("--backend", "backend_names", metavar="NAMES",
              help="torch, onnxruntime, tensorrt, a comma list, or all "
              "(default: the recommendation's order).")
@lambda function: _apply(MEASURE_OPTIONS + REQUEST_OPTIONS + OUTPUT_OPTIONS, function)
def verify(backend_names, budget_s, inputs_path, accuracy_budget, memory_budget_gb, use_compile,
           as_json, **options) -> None:
    """Apply the recommendation with each backend, measure it, and let measurement decide.

    \b
    Exit codes: 0 measured; 1 no backend could run; 2 bad input;
    3 the model fits at no batch in any precision; 130 interrupted (nothing written).
    """
    _check_output(options)
    from autotune import plugins  # noqa: PLC0415
    from autotune import verify as verifying
    from autotune.facts import machine_facts  # noqa: PLC0415
    from autotune.harness import protocol  # noqa: PLC0415
    from autotune.probe import probe as run_probe  # noqa: PLC0415
    from autotune.recommend import recommend as make_recommendation  # noqa: PLC0415

    request = _request(options, default_model="resnet18")
    model = _model_request(request.model)
    machine = run_probe()
    recommendation = make_recommendation(machine, request.inputs, request.overrides,
                                         plugins.plugin_rules(), model)
    selection = verifying.select_backends(backend_names, plugins.backends(),
                                          recommendation.settings["backends"])
    with _progress() as progress:
        task = progress.add_task("measuring", total=None)

        def show(measurement) -> None:
            progress.update(task, description=f"{measurement.backend}: {measurement.config.label()} "
                            f"{measurement.throughput:.1f} samples/s")

        context = verifying.VerifyContext(
            recommendation=recommendation, model=model.source,
            stats=model.stats, facts=machine_facts(machine, **request.inputs, model=model.stats),
            budget_s=budget_s, optimizer=model.optimizer, latency_budget_ms=model.latency_budget_ms,
            inputs_path=inputs_path,
            accuracy_budget=protocol()["accuracy_budget"] if accuracy_budget is None else accuracy_budget,
            memory_budget_bytes=memory_budget_gb * 2**30 if memory_budget_gb else None,
            compile=use_compile, user_fixed=frozenset(request.overrides), on_measurement=show)
        reports = []
        try:
            for name, backend in selection:
                progress.update(task, description=f"{name}: starting")
                reports.append(verifying.verify_backend(name, backend, context))
        except verifying.Interrupted as interrupted:
            done = [m for r in reports for m in r.measurements] + interrupted.measurements
            _results_table(done, "autotune verify (interrupted)")
            raise click.Abort() from None
    measurements = [m for r in reports for m in r.measurements]
    if measurements:
        _results_table(measurements, f"autotune verify: {recommendation.machine}")
    for report in reports:
        if report.status != "measured" or report.reason:
            click.echo(f"{report.backend}: {report.status}{': ' + report.reason if report.reason else ''}",
                       err=True)
    measured = verifying.measured_decisions(reports, recommendation)
    if not measured:
        if measurements and all(m.status == "failed" and "out of memory" in m.reason for m in measurements):
            raise DoesNotFit(f"{model.stats.name} ran out of memory at batch 1 in every precision; "
                             "free GPU memory or use a smaller model")
        click.echo("autotune: error: no backend could run; install one (pip install 'autotune[torch]') "
                   "or see the reasons above", err=True)
        sys.exit(1)
    final = make_recommendation(machine, request.inputs, request.overrides, plugins.plugin_rules(), model,
                                measured=measured, measurements=tuple(r.to_dict() for r in reports),
                                measured_latency_ms=verifying.batch_one_latency_ms(reports, measured))
    if as_json:
        click.echo(json.dumps(final.to_dict(), indent=2))
    else:
        _emit(final, options)


@cli.command()
@click.option("--model", default="resnet18", show_default=True,
              help="A reference model, package.module:callable, or a .onnx file.")
@click.option("--input-shape", help="One sample's shape without the batch, e.g. 3,224,224.")
@click.option("--task", type=click.Choice(INPUT_CHOICES["task"]), default="infer", show_default=True)
@click.option("--backend", "backend_name", default="torch", show_default=True, help="The backend to run.")
@click.option("--sweep", "sweeps", multiple=True, metavar="KEY=V1,V2",
              help="batch=1,2,4,8,16,32 (default) and/or resolution=160,224,320.")
@click.option("--precision", "precisions", help="Comma list, e.g. fp32,fp16 (default: fp32 and the "
              "recommended precision).")
@click.option("--budget-s", type=click.FloatRange(min=0.1), default=None,
              help="Seconds per configuration (default 1.5).")
@click.option("--memory-budget-gb", type=click.FloatRange(min=0.01), default=None,
              help="Pretend the device has only this much memory (runs the OOM ladder).")
@click.option("--compile", "use_compile", is_flag=True, help="Run the model through torch.compile.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=Path("autotune-bench.png"),
              show_default=True, help="Where to write the PNG plot.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def bench(model, input_shape, task, backend_name, sweeps, precisions, budget_s, memory_budget_gb,
          use_compile, plot, as_json) -> None:
    """The S001-3 table for this machine: latency, throughput and memory per batch, the knee
    marked, and a plot.

    \b
    Exit codes: 0 measured; 1 nothing could run; 2 bad input; 130 interrupted (nothing written).
    """
    from dataclasses import replace  # noqa: PLC0415

    from autotune import bench as benching  # noqa: PLC0415
    from autotune import plugins
    from autotune.backend_api import RunConfig  # noqa: PLC0415
    from autotune.config import Request  # noqa: PLC0415
    from autotune.facts import machine_facts  # noqa: PLC0415
    from autotune.probe import probe as run_probe  # noqa: PLC0415
    from autotune.recommend import recommend as make_recommendation  # noqa: PLC0415
    from autotune.rules import decision_specs  # noqa: PLC0415
    from autotune.verify import build_measurer  # noqa: PLC0415

    check_writable(plot)
    if importlib.util.find_spec("matplotlib") is None:
        raise UserError("autotune bench plots with matplotlib, which is not installed; "
                        "pip install 'autotune[bench]'")
    sweep = benching.parse_sweep(sweeps or ["batch=1,2,4,8,16,32"])
    registered = plugins.backends()
    if backend_name not in registered:
        raise UserError(f"unknown backend {backend_name!r}; registered: {', '.join(sorted(registered))}")
    request = Request()
    request.apply({"task": task, "model": model, **({"input_shape": input_shape} if input_shape else {})},
                  "by flag")
    model_request = _model_request(request.model)
    machine = run_probe()
    recommendation = make_recommendation(machine, request.inputs, {}, plugins.plugin_rules(), model_request)
    settings = recommendation.settings
    wanted = precisions.split(",") if precisions else list(dict.fromkeys(["fp32", settings["precision"]]))
    for precision in wanted:
        decision_specs()["precision"].coerce(precision.strip(), "in --precision")
    try:
        runner = registered[backend_name][1].load_runner()
    except (ImportError, LookupError) as error:
        click.echo(f"autotune: error: backend {backend_name} cannot run here ({error}); install it", err=True)
        sys.exit(1)
    device = runner.device(settings["device"])
    stats = model_request.stats
    resolution = settings["resolution"] if stats.native_resolution else None
    base = RunConfig.from_settings(settings, task, resolution, model_request.optimizer, use_compile)
    if device == "cpu":
        base = replace(base, tf32=False, cudnn_benchmark=False, channels_last=False)
    measurer = build_measurer(backend_name, runner, model_request.source, stats,
                              machine_facts(machine, task, "throughput", "balanced", stats), device,
                              model_request.optimizer,
                              memory_budget_bytes=memory_budget_gb * 2**30 if memory_budget_gb else None)
    resolutions = sweep.get("resolution", [resolution])
    batches = sweep.get("batch", [base.batch_size])
    points = [(p.strip(), r, b) for p in wanted for r in resolutions for b in batches]
    measurements = []
    try:
        with _progress() as progress:
            task_id = progress.add_task("bench", total=len(points))
            for precision, point_resolution, batch in points:
                progress.update(task_id, description=f"{precision} batch {batch}")
                config = replace(base.with_precision(precision) if precision != base.precision else base,
                                 batch_size=batch, resolution=point_resolution)
                measurements.append(measurer.measure(config, budget_s, check_accuracy=False))
                progress.advance(task_id)
    except KeyboardInterrupt:
        _results_table(measurements, "autotune bench (interrupted)", benching.knees(measurements))
        raise click.Abort() from None
    rows = benching.table_rows(measurements)
    if not any(m.ok for m in measurements):
        _results_table(measurements, "autotune bench")
        click.echo("autotune: error: no configuration could run; see the reasons above", err=True)
        sys.exit(1)
    title = f"{stats.name} {task} on {measurements[0].device} ({backend_name})"
    benching.plot(measurements, plot, title)
    if as_json:
        click.echo(json.dumps({"model": stats.name, "task": task, "backend": backend_name,
                               "device": measurements[0].device, "rows": rows, "plot": str(plot)}, indent=2))
    else:
        _results_table(measurements, f"autotune bench: {title}", benching.knees(measurements))
    click.echo(f"wrote {plot}", err=True)


def _model_request(settings: dict[str, Any]):
    """The memory model's request from ``--model`` and its options, or None."""
    if "model" not in settings:
        for key in settings:
            raise UserError(f"{key} needs a model; add --model (or `model =` in the config)")
        return None
    from autotune.model_source import model_stats_for, parse_model  # noqa: PLC0415
    from autotune.recommend import ModelRequest, default_model_options  # noqa: PLC0415

    source = parse_model(settings["model"], settings.get("input_shape"))
    options = default_model_options() | {
        key: settings[key] for key in ("optimizer", "latency_budget_ms", "headroom") if key in settings
    }
    return ModelRequest(stats=model_stats_for(source), source=source, **options)


@cli.command()
@click.argument("model")
@click.option("--input-shape", help="One sample's shape without the batch, e.g. 3,224,224.")
@click.option("--resolution", type=click.IntRange(min=8), help="Input size in pixels for the figures.")
@click.option("--optimizer", default=None, help="Optimizer assumed for training memory (default adam).")
@click.option("--gpu", "gpu_names", multiple=True, metavar="NAME",
              help="Show limits and roofline for a simulated GPU instead of this machine's.")
@click.option("--replay", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Show them for the machine recorded in FILE.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def inspect(model, input_shape, resolution, optimizer, gpu_names, replay, as_json) -> None:
    """What MODEL costs: parameters, FLOPs, activation memory, verdict, roofline.

    MODEL is a reference model (resnet18, resnet50, mobilenet_v3_small, mobilenet_v3_large,
    efficientnet_b0, vit_b_16), package.module:callable returning a torch.nn.Module, or
    an .onnx file.
    """
    from autotune.inspect_report import inspection, render_text  # noqa: PLC0415
    from autotune.model_source import model_stats_for, parse_model  # noqa: PLC0415
    from autotune.recommend import default_model_options  # noqa: PLC0415

    settings = default_model_options()
    if optimizer is not None:
        from autotune.config import model_setting  # noqa: PLC0415

        settings["optimizer"] = model_setting("optimizer", optimizer, "by flag")
    stats = model_stats_for(parse_model(model, input_shape))
    report = inspection(stats, _machine(gpu_names, replay), resolution, settings["optimizer"],
                        settings["headroom"])
    click.echo(json.dumps(report, indent=2) if as_json else render_text(report))


@cli.command()
@click.option("--facts", "show_facts", is_flag=True, help="List the facts rules can test instead.")
@click.option("--decision", help="Only the rules for this decision.")
def rules(show_facts: bool, decision: str | None) -> None:
    """Every rule: its decision, condition, value, source and what the source says."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from autotune import plugins  # noqa: PLC0415
    from autotune.facts import FACTS  # noqa: PLC0415
    from autotune.rules import RuleSet, builtin_rules, decision_specs, source_texts  # noqa: PLC0415

    console = Console(width=max(140, Console().width))
    if show_facts:
        table = Table("fact", "meaning")
        for name, meaning in FACTS.items():
            table.add_row(name, meaning)
        for name, spec in decision_specs().items():
            table.add_row(name, f"the {name} decision, once made: {spec.help}")
        console.print(table)
        return
    if decision is not None and decision not in decision_specs():
        raise UserError(f"unknown decision {decision!r}; known: {', '.join(decision_specs())}")
    table = Table()
    table.add_column("decision", overflow="fold")
    table.add_column("rule", no_wrap=True)
    for column in ("when", "value", "source"):
        table.add_column(column, overflow="fold")
    table.add_column("reason", ratio=1)
    cited: dict[str, str] = {}
    for rule in RuleSet([*plugins.plugin_rules(), *builtin_rules()]).rules:
        if decision is not None and rule.decision != decision:
            continue
        cited[rule.source] = source_texts().get(rule.source, "")
        if rule.reference:
            cited[rule.reference] = ""
        value = rule.compute if rule.compute is not None else json.dumps(rule.value)
        when = str(rule.when).lower() if isinstance(rule.when, bool) else rule.when
        table.add_row(rule.decision, f"{rule.id}\n[dim]{rule.origin}[/]", when, value,
                      rule.source, rule.reason)
    console.print(table)
    console.print("Sources:", style="bold")
    for source in sorted(cited):
        if source != "practice":
            console.print(f"  {source}: {cited[source]}" if cited[source] else f"  {source}",
                          highlight=False)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def plugins_command(as_json: bool) -> None:
    """Registered plugins, their version, and whether their framework is installed here."""
    from autotune import plugins  # noqa: PLC0415

    rows = []
    for name, (plugin, backend) in sorted(plugins.backends().items()):
        distribution = plugins.plugin_distribution(plugin)
        rows.append({
            "backend": name,
            "plugin": plugin,
            "from": f"{distribution[0]} {distribution[1]}" if distribution else "registered in code",
            "framework": backend.framework,
            "framework_version": backend.installed_version(),
            "measurable": backend.runner is not None,
            "description": backend.description,
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        installed = row["framework_version"] or "not installed"
        measures = "verify/bench measure it" if row["measurable"] else "recommended, not measured"
        click.echo(f"{row['backend']:<12} plugin {row['plugin']} ({row['from']}); "
                   f"{row['framework']}: {installed}; {measures} - {row['description']}")


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
    """Entry point: user errors are one line on stderr and exit 2, never a traceback."""
    try:
        result = cli.main(args=argv, prog_name="autotune", standalone_mode=False)
    except UserError as error:
        click.echo(f"autotune: error: {error}", err=True)
        sys.exit(error.exit_code)
    except click.ClickException as error:
        click.echo(f"autotune: error: {error.format_message()} (see autotune --help)", err=True)
        sys.exit(error.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("autotune: interrupted", err=True)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)
