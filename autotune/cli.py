"""The ``autotune`` command.

\b
Quick start:
  autotune probe                      # what this machine has
  autotune recommend --explain        # how to run a model here, and why
  autotune recommend --gpu "3060 8GB" # what another GPU would get
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

import autotune
from autotune.config import INPUT_CHOICES, build_request
from autotune.errors import UserError
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


@cli.command()
@click.option("--task", type=click.Choice(INPUT_CHOICES["task"]), help="infer (default) or train.")
@click.option("--objective", type=click.Choice(INPUT_CHOICES["objective"]),
              help="throughput (default) or latency.")
@click.option("--tier", type=click.Choice(INPUT_CHOICES["tier"]),
              help="balanced (default), accuracy or low-resource (S000-5).")
@click.option("--gpu", "gpu_names", multiple=True, metavar="NAME",
              help="Recommend for a simulated GPU from the spec database (repeatable).")
@click.option("--replay", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Recommend for the machine recorded in FILE (autotune probe --record).")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="yaml",
              show_default=True, help="Output format.")
@click.option("--explain", is_flag=True,
              help="Print a table of every decision, its rule, source and reason (to stderr).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the config to FILE instead of stdout.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read settings from this TOML or YAML file (over the project's own files).")
@click.option("--precision", help="Override the precision (fp32, tf32, bf16, fp16, fp8, int8, int4).")
@click.option("--batch-size", help="Override the batch size.")
@click.option("--resolution", help="Override the input resolution in pixels.")
@click.option("--backend", help="Override the backend order, e.g. torch or tensorrt,onnxruntime.")
@click.option("--set", "assignments", multiple=True, metavar="DECISION=VALUE",
              help="Override any decision, e.g. --set tf32=false (repeatable).")
@click.option("--model", help="Size batch and resolution for this model: a reference name "
              "(resnet18, resnet50, vit_b_16...), package.module:callable, or a .onnx file.")
@click.option("--input-shape", help="One sample's shape without the batch, e.g. 3,224,224 "
              "(when it cannot be guessed).")
@click.option("--optimizer", help="Optimizer assumed for training memory (default adam).")
@click.option("--latency-budget-ms", help="Latency budget for --objective latency (default 30, S002-4).")
@click.option("--headroom", help="Share of free GPU memory a plan may fill (default 0.9).")
def recommend(task, objective, tier, gpu_names, replay, output_format, explain, output, config_file,
              precision, batch_size, resolution, backend, assignments, model, input_shape,
              optimizer, latency_budget_ms, headroom) -> None:
    """How to run a model on this machine (or a simulated one), and why."""
    if output is not None:
        check_writable(output)
    flags: dict[str, Any] = {"task": task, "objective": objective, "tier": tier,
                             "precision": precision, "batch_size": batch_size,
                             "resolution": resolution, "backends": backend, "model": model,
                             "input_shape": input_shape, "optimizer": optimizer,
                             "latency_budget_ms": latency_budget_ms, "headroom": headroom}
    for assignment in assignments:
        key, separator, value = assignment.partition("=")
        if not separator:
            raise UserError(f"--set {assignment!r} needs the form DECISION=VALUE, e.g. tf32=false")
        flags[key.strip().replace("-", "_")] = value.strip()
    request = build_request(config_file, flags)
    from autotune import plugins  # noqa: PLC0415
    from autotune.recommend import recommend as make_recommendation  # noqa: PLC0415

    machine = _machine(list(gpu_names) or request.gpus, replay)
    recommendation = make_recommendation(machine, request.inputs, request.overrides,
                                         plugins.plugin_rules(), _model_request(request.model))
    text = render(recommendation, output_format)
    if explain:
        _explain_table(recommendation)
    if output is not None:
        write_atomically(output, text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


def _model_request(settings: dict[str, Any]):
    """The memory model's request from ``--model`` and its options, or None."""
    if "model" not in settings:
        for key in settings:
            raise UserError(f"{key} needs a model; add --model (or `model =` in the config)")
        return None
    from autotune.model_source import model_stats_for, parse_model  # noqa: PLC0415
    from autotune.recommend import ModelRequest, default_model_options  # noqa: PLC0415

    stats = model_stats_for(parse_model(settings["model"], settings.get("input_shape")))
    options = default_model_options() | {
        key: settings[key] for key in ("optimizer", "latency_budget_ms", "headroom") if key in settings
    }
    return ModelRequest(stats=stats, **options)


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
        from autotune.config import _model_setting  # noqa: PLC0415

        settings["optimizer"] = _model_setting("optimizer", optimizer, "by flag")
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
            "description": backend.description,
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        installed = row["framework_version"] or "not installed"
        click.echo(f"{row['backend']:<12} plugin {row['plugin']} ({row['from']}); "
                   f"{row['framework']}: {installed} - {row['description']}")


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
