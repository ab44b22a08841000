"""The flags several commands share, the settings they give, and where a recommendation goes
(``--format``, ``--explain``, ``-o``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from autotune.config import INPUT_CHOICES, VERIFY_BUDGET_S, check_not_a_config_file
from autotune.errors import UserError
from autotune.recommendation.formats import FORMATS, check_writable, write_atomically
from autotune.recommendation.formats import render as render_format

WHERE = "by flag"


def apply_options(options: list, function: Callable) -> Callable:
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
REQUEST_FLAGS = ("task", "objective", "tier", "precision", "batch_size", "resolution", "model",
                  "input_shape", "input_spec", "optimizer", "latency_budget_ms", "headroom")


def settings_from(options: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The settings a command's flags give, ``--set NAME=VALUE`` included."""
    settings = {key: options.pop(key) for key in REQUEST_FLAGS if key in options} | extra
    for assignment in options.pop("assignments", ()):
        key, separator, value = assignment.partition("=")
        if not separator:
            raise UserError(f"--set {assignment!r} needs the form DECISION=VALUE or BACKEND.OPTION=VALUE, "
                            "e.g. tf32=false or torch.channels_last=true")
        settings[key.strip().replace("-", "_")] = value.strip()
    return {key: value for key, value in settings.items() if value not in (None, (), [])}


def check_output(options: dict[str, Any]) -> None:
    """Fail before any work when ``-o`` cannot or must not be written."""
    if options["output"] is not None:
        check_writable(options["output"])
        check_not_a_config_file(options["output"])


def emit(recommendation, options: dict[str, Any]) -> None:
    from autotune.cli import render  # noqa: PLC0415 - rich only where a table is drawn

    text = render_format(recommendation, options["output_format"])
    if options["explain"]:
        render.explain_table(recommendation)
    if options["output"] is not None:
        write_atomically(options["output"], text)
        click.echo(f"wrote {options['output']}", err=True)
    else:
        click.echo(text, nl=False)


MEASURE_OPTIONS = [
    click.option("--budget-s", type=click.FloatRange(min=1), default=VERIFY_BUDGET_S, show_default=True,
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
    click.option("--json", "as_json", is_flag=True,
                 help="The config as JSON: the same as --format json (with -o, written to FILE)."),
]
