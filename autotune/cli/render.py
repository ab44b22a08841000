"""What the command line shows a person: the machine, the explain table, the results
table, a progress spinner. rich is imported only by what draws a table."""

from __future__ import annotations

import json
from typing import Any

from autotune.recommendation.facts import FACTS
from autotune.recommendation.rules import decision_specs, source_texts
from autotune.types import Machine, Recommendation


def gb(value: int) -> str:
    return f"{value / 2**30:.1f} GB"


def describe(machine: Machine) -> str:
    host = machine.host
    lines = [
        f"host: {host.cpu_model}, {host.physical_cores} physical / {host.logical_cores} logical "
        f"cores ({host.available_cores} usable), {gb(host.ram_bytes)} RAM, {host.os}",
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
            f"memory {gb(gpu.vram_total_bytes)} total, {gb(gpu.vram_free_bytes)} free",
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
            slices = ", ".join(f"{s.name} {gb(s.memory_total_bytes)}" for s in gpu.mig_slices)
            lines.append(f"  MIG on: {slices or 'no instances created'}")
    if machine.gpus and machine.note:  # a Jetson found from its device tree, a GPU that did not answer
        lines.append(f"note: {machine.note}")
    return "\n".join(lines)


def explain_table(recommendation: Recommendation, title: str | None = None, stderr: bool = True) -> None:
    """Every decision, its value, rule, source and reason (``--explain``, ``profile show``)."""
    from rich import box  # noqa: PLC0415 - only --explain pays for rich
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=title or f"autotune recommend: {recommendation.machine}", title_justify="left",
                  box=box.SIMPLE_HEAD)
    table.add_column("decision", no_wrap=True)
    table.add_column("value", max_width=20, overflow="fold")
    table.add_column("rule", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("reason", ratio=1)
    claims = any(decision.measurement for decision in recommendation.decisions)
    if claims:  # after verify: measured, confirmed or unmeasured, and why
        table.add_column("measurement", ratio=1)
    for decision in recommendation.decisions:
        value = decision.value
        text = ", ".join(value) if isinstance(value, list) else str(value).lower() \
            if isinstance(value, bool) else str(value)
        claim = [f"{decision.measurement}" + (f": {decision.measurement_note}" if decision.measurement_note
                                               else "")] if claims else []
        table.add_row(decision.name, text, decision.rule, decision.source, decision.reason, *claim)
    console = Console(stderr=stderr)
    console.width = max(console.width, 120)  # narrower, the reasons wrap word by word
    console.print(table)
    for warning in recommendation.warnings:
        console.print(f"[bold yellow]warning:[/] {warning}")


def results_table(measurements, title: str, knees: set[int] | None = None) -> None:
    from rich import box  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    numeric = ("p50 ms", "p90 ms", "p99 ms", "samples/s", "predicted/s", "peak GB", "predicted GB",
               "roofline")
    # A column no row has a figure for (the roofline on a CPU) says nothing: left out.
    columns = [column for column, present in (
        ("backend", True), ("device", True), ("config", True), ("p50 ms", True), ("p90 ms", True),
        ("p99 ms", True), ("samples/s", True),
        ("predicted/s", any(m.predicted_samples_s is not None for m in measurements)), ("cv", True),
        ("peak GB", True),
        ("predicted GB", any(m.predicted_peak_bytes for m in measurements)),
        ("roofline", any(m.roofline_percent is not None for m in measurements)), ("result", True)) if present]
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left",
                         no_wrap=column not in ("result",), min_width=28 if column == "result" else None)
    for m in measurements:
        timing = m.timing
        cells = [f"{getattr(timing, f):.2f}" for f in ("p50_ms", "p90_ms", "p99_ms")] if timing else ["-"] * 3
        status = m.outcome.value.replace("_", " ")
        if m.ok and m.accuracy is not None and not m.steps:
            result = f"ok, {m.accuracy.summary}"  # the budget and its source are in --json
        else:
            result = status if not m.reason else f"{status}: {m.reason}"
        if m.math:
            result += f"; {m.math}"
        if m.model_file is not None and (m.model_file.size_bytes != m.model_file.fp32_size_bytes
                                         or m.model_file.detail):
            result += f"; file {m.model_file.describe()}"
        if knees is not None and id(m) in knees:
            result = "knee; " + result
        row = {
            "backend": m.backend, "device": m.device, "config": m.label,
            "p50 ms": cells[0], "p90 ms": cells[1], "p99 ms": cells[2],
            "samples/s": f"{m.throughput:.1f}" if timing else "-",
            "predicted/s": f"{m.predicted_samples_s:.1f}" if m.predicted_samples_s is not None else "-",
            "cv": (f"{timing.cv:.1%}" + (" unstable" if timing.unstable else "")) if timing else "-",
            # A runtime without a memory counter (a CPU) measured nothing: say so, not "-".
            "peak GB": (f"{m.peak_memory_bytes / 2**30:.2f}" if m.peak_memory_bytes
                        else "unknown" if timing else "-"),
            "predicted GB": f"{m.predicted_peak_bytes / 2**30:.2f}" if m.predicted_peak_bytes else "-",
            "roofline": f"{m.roofline_percent:.0f} %" if m.roofline_percent is not None else "-",
            "result": result,
        }
        table.add_row(*(row[column] for column in columns))
    console = Console(stderr=True)
    # A log or a pipe has no width of its own: wide enough that no figure is cut.
    console.width = max(console.width, 160 if console.is_terminal else 200)
    console.print(table)


def progress():
    """A spinner with what is being measured, on stderr, gone when done."""
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    console = Console(stderr=True)
    # Off where stderr is not a terminal (a log, a pipe): there a spinner is only stray lines,
    # and an error found mid-measurement would not stay one line.
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                    transient=True, console=console, disable=not console.is_terminal)




def plugin_rows(backends: dict[str, tuple[str, Any]], distribution_of) -> list[dict[str, Any]]:
    """``autotune plugins``: one row per backend, its options among them."""
    rows = []
    for name, (plugin, backend) in sorted(backends.items()):
        distribution = distribution_of(plugin)
        rows.append({
            "backend": name,
            "plugin": plugin,
            "from": f"{distribution[0]} {distribution[1]}" if distribution else "registered in code",
            "framework": backend.framework,
            "framework_version": backend.installed_version(),
            "install": backend.install_command(),
            "measurable": backend.runner is not None,
            "description": backend.description,
            "options": [{"name": o.name, "type": o.type, "default": o.default, "choices": list(o.choices),
                         "follows": o.decision, "explored": o.explore, "devices": list(o.devices),
                         "precisions": list(o.precisions), "explore_choices": list(o.explore_choices),
                         "explore_also": [[c, list(v)] for c, v in o.explore_also],
                         "model_kinds": list(o.model_kinds),
                         "help": o.help} for o in backend.options],
        })
    return rows


def plugins_text(rows: list[dict[str, Any]]) -> str:
    lines = []
    for row in rows:
        installed = row["framework_version"] or f"not installed ({row['install']})"
        measures = "verify/bench measure it" if row["measurable"] else "recommended, not measured"
        lines.append(f"{row['backend']:<12} plugin {row['plugin']} ({row['from']}); "
                     f"{row['framework']}: {installed}; {measures} - {row['description']}")
        for option in row["options"]:
            default = (f"the {option['follows']} decision, else {option['default']}" if option["follows"]
                       else option["default"])
            where = "" if len(option["devices"]) > 1 else f"; {', '.join(option['devices'])} only"
            if option["precisions"]:
                where += f"; {', '.join(option['precisions'])} only"
            explored = ""
            if option["explored"]:
                explored = "; verify explores " + (", ".join(option["explore_choices"])
                                                  if option["explore_choices"] else "it")
                explored += "".join(f", and {', '.join(values)} where {condition}"
                                    for condition, values in option["explore_also"])
                if option["model_kinds"]:
                    explored += f" for {', '.join(option['model_kinds'])} models"
            lines.append(f"  --set {row['backend']}.{option['name']}=<{option['type']}>  "
                         f"{option['help']} (default: {str(default).lower()}{where}{explored})")
    return "\n".join(lines)


def _wide_console():
    from rich.console import Console  # noqa: PLC0415

    return Console(width=max(140, Console().width))


def facts_table() -> None:
    """``autotune rules --facts``: every fact a rule's condition can test."""
    from rich.table import Table  # noqa: PLC0415

    table = Table("fact", "meaning")
    for name, meaning in FACTS.items():
        table.add_row(name, meaning)
    for name, spec in decision_specs().items():
        table.add_row(name, f"the {name} decision, once made: {spec.help}")
    _wide_console().print(table)


def rules_table(rules: list) -> None:
    """``autotune rules``: each rule, then what every source it cites says."""
    from rich.table import Table  # noqa: PLC0415

    console = _wide_console()
    table = Table()
    table.add_column("decision", overflow="fold")
    table.add_column("rule", no_wrap=True)
    for column in ("when", "value", "source"):
        table.add_column(column, overflow="fold")
    table.add_column("reason", ratio=1)
    cited: dict[str, str] = {}
    for rule in rules:
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
