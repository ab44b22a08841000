"""``autotune profile``: write this machine's profile, show it, check it is still this machine's.

Parsing and rendering only; the work is :func:`autotune.api.profile` and
:func:`autotune.api.check_profile`, which a training script's ``import autotune.auto`` and
a fleet's workers call too.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from autotune import api
from autotune.cli.measure import measuring
from autotune.cli.options import (
    CONFIG_OPTION,
    INPUT_SHAPE_OPTION,
    INPUT_SPEC_OPTION,
    SET_OPTION,
    WHERE,
    settings_from,
)
from autotune.config import INPUT_CHOICES, VERIFY_BUDGET_S

STORE_OPTION = click.option("--store", type=click.Path(file_okay=False, path_type=Path),
                            help="The profile store (default: $AUTOTUNE_STORE, else the user's data folder).")
TASK_OPTION = click.option("--task", type=click.Choice(INPUT_CHOICES["task"]), default="infer",
                           show_default=True, help="What the profile is for.")
FILE_ARGUMENT = click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))


@click.group("profile", invoke_without_command=True)
@click.option("--verify", "measure", is_flag=True,
              help="Measure the recommendation on this machine (autotune verify) before saving it.")
@STORE_OPTION
@click.option("--model", "models", multiple=True, metavar="MODEL",
              help="A model to recommend for (repeatable): a reference name, package.module:callable "
              "or .onnx.")
@INPUT_SHAPE_OPTION
@INPUT_SPEC_OPTION
@TASK_OPTION
@click.option("--budget-s", type=click.FloatRange(min=1), default=VERIFY_BUDGET_S, show_default=True,
              help="With --verify: wall seconds per backend and model.")
@CONFIG_OPTION
@SET_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON.")
@click.pass_context
def profile(ctx, measure, store, models, input_shape, input_spec, task, budget_s, config_file, assignments,
            as_json) -> None:
    """Write this machine's profile: the probe, the recommendation(s) with every reason, what
    --verify measured, and a fingerprint that tells later whether it still holds.

    \b
    autotune profile                     rules only, for inference
    autotune profile --task train --verify --model resnet50
    autotune profile show | check        what it says; is it still this machine's?
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_from({"assignments": assignments, "input_shape": input_shape,
                              "input_spec": input_spec})
    if measure:
        path, made = measuring("autotune profile --verify", lambda show, starting: api.profile(
            models, task=task, measure=True, store=store, budget_s=budget_s, config=config_file, where=WHERE,
            on_measurement=show, on_backend=starting, **settings))
    else:
        path, made = api.profile(models, task=task, store=store, config=config_file, where=WHERE, **settings)
    if as_json:
        click.echo(json.dumps(made.to_dict(), indent=2))
    what = "measured" if made.measured else "rules only"
    click.echo(f"wrote {path} ({made.purpose}, {what}: {made.recommendations[0].machine})", err=True)


@profile.command()
@FILE_ARGUMENT
@STORE_OPTION
@TASK_OPTION
@click.option("--model", help="The model the profile was written for (its purpose).")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON.")
def show(file, store, task, model, as_json) -> None:
    """What this machine's profile (or FILE) says: each recommendation as a table of
    decisions with their rules and reasons, and whether it still holds here."""
    from autotune.cli import render  # noqa: PLC0415 - rich only where a table is drawn

    found, staleness = api.check_profile(file, task=task, model=model, store=store)
    if as_json:
        click.echo(json.dumps({**found.to_dict(), "check": staleness.verdict()}, indent=2))
        return
    what = "measured" if found.measured else "rules only"
    click.echo(f"profile of {found.fingerprint.host} for {found.purpose}, {what}, written {found.created}")
    click.echo(staleness.verdict())
    for recommendation in found.recommendations:
        model_name = recommendation.model.get("name") if recommendation.model else None
        title = f"{found.purpose}{f' ({model_name})' if model_name else ''}: {recommendation.machine}"
        render.explain_table(recommendation, title=title, stderr=False)


@profile.command()
@FILE_ARGUMENT
@STORE_OPTION
@TASK_OPTION
@click.option("--model", help="The model the profile was written for (its purpose).")
def check(file, store, task, model) -> None:
    """Is this machine's profile (or FILE) still this machine's? A changed driver or runtime
    keeps the rules' recommendation but not the measured timings; another GPU keeps nothing.

    \b
    Exit codes: 0 fresh; 1 stale (what changed is printed); 2 no profile or not a profile.
    """
    found, staleness = api.check_profile(file, task=task, model=model, store=store)
    click.echo(f"{found.fingerprint.host} {found.purpose}: {staleness.verdict()}")
    if staleness.stale:
        raise SystemExit(1)
