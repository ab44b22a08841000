"""``autotune fleet``: plan profiles for an inventory offline, and summarize a store of them.

Parsing and rendering only: the work is in :mod:`autotune.fleet.plan` and
:mod:`autotune.fleet.summary`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import click

from autotune import api
from autotune.config import INPUT_CHOICES, VERIFY_BUDGET_S
from autotune.errors import UserError
from autotune.recommendation.formats import check_writable


@click.group("fleet")
def fleet() -> None:
    """Many machines: plan their profiles from an inventory, or summarize a store of them.

    \b
    autotune fleet plan --inventory hosts.yaml --out profiles/
    autotune fleet summary --store profiles/ [--json | --csv] [--plot fleet.png]
    """


@fleet.command()
@click.option("--inventory", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="YAML (hosts: [{host, gpus: [{model, count, mig}], cpu_cores, ram_gb, driver}]) or CSV "
              "(host,gpu_model,gpu_count,mig,cpu_cores,ram_gb,driver).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The folder (a profile store) to write one planned profile per host into.")
@click.option("--task", type=click.Choice(INPUT_CHOICES["task"]), default="infer", show_default=True,
              help="What the profiles are for.")
@click.option("--model", help="Plan each host for this model (as `recommend --model` takes it): its "
              "batch from the memory model and its predicted speed on the host's GPU.")
def plan(inventory: Path, out: Path, task: str, model: str | None) -> None:
    """One planned profile per host, from the spec database and the rules, without touching
    the hosts. An unknown GPU model anywhere: exit 2 naming the host, nothing written."""
    from autotune.fleet.plan import write_plan  # noqa: PLC0415

    started = time.monotonic()
    written = write_plan(inventory, out, task, model)
    for note in written.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"planned {written.hosts} hosts into {out} in {time.monotonic() - started:.1f} s", err=True)


@fleet.command()
@click.option("--store", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The profile store to read.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the table as CSV.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw the fleet by GPU model and recommended precision as a PNG.")
def summary(store: Path, as_json: bool, as_csv: bool, plot: Path | None) -> None:
    """One table (host, GPUs, precision, batch, resolution, backend, planned/probed/measured,
    stale), then counts by GPU model and by decision. Unreadable files are listed."""
    from autotune.fleet import summary as fleet_summary  # noqa: PLC0415

    if plot is not None:
        check_writable(plot)
    profiles, problems = fleet_summary.read_store(store)
    summarized = fleet_summary.summarize(profiles)
    for problem in problems:
        click.echo(f"skipped: {problem}", err=True)
    if plot is not None:
        fleet_summary.plot(summarized, plot)
        click.echo(f"wrote {plot}", err=True)
    if as_json:
        click.echo(json.dumps({**summarized, "unreadable": problems}, indent=2))
        return
    if as_csv:
        click.echo(fleet_summary.to_csv(summarized["rows"]), nl=False)
        return
    rows = summarized["rows"]
    columns = fleet_summary.COLUMNS
    widths = {column: max([len(column)] + [len(str(r[column])) for r in rows]) for column in columns}
    click.echo("  ".join(column.ljust(widths[column]) for column in columns).rstrip())
    for entry in rows:
        click.echo("  ".join(str(entry[column]).ljust(widths[column]) for column in columns).rstrip())
    click.echo(f"\n{summarized['hosts']} hosts; {summarized['stale_hosts']} stale")
    for title, key in (("GPUs by model", "gpus_by_model"), ("hosts by precision", "hosts_by_precision"),
                       ("hosts by backend", "hosts_by_backend"), ("hosts by source", "hosts_by_source")):
        click.echo(f"{title}: " + ", ".join(f"{name} {count}" for name, count in summarized[key].items()))


@fleet.command()
@click.option("--profile", "profile_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The profile to label from (default: this machine's in the store).")
@click.option("--store", type=click.Path(file_okay=False, path_type=Path),
              help="The profile store (default: $AUTOTUNE_STORE, else the user's data folder).")
@click.option("--task", type=click.Choice(INPUT_CHOICES["task"]), default="infer", show_default=True,
              help="Which of this machine's profiles.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="The feature file (default: /etc/kubernetes/node-feature-discovery/features.d/autotune; "
              "- prints the labels instead).")
def labels(profile_file: Path | None, store: Path | None, task: str, out: Path | None) -> None:
    """Kubernetes node labels for this machine's profile (autotune.io/precision=fp16, ...), as a
    Node Feature Discovery local feature file, written whole."""
    from autotune.fleet.labels import FEATURES_FILE, features_text, labels_for, write_features  # noqa: PLC0415
    from autotune.machine_profiles.store import read_profile  # noqa: PLC0415

    path = api.find_profile(profile_file, task=task, store=store)
    text = features_text(labels_for(read_profile(path)), path)
    if str(out) == "-":
        click.echo(text, nl=False)
        return
    target = out or FEATURES_FILE
    write_features(text, target)
    click.echo(f"wrote {target} ({text.count(chr(10)) - 1} labels)", err=True)


@fleet.command()
@click.option("--ray", "address", is_flag=False, flag_value="auto", default=None, metavar="[ADDRESS]",
              help="Collect from the Ray cluster at ADDRESS (default: the one this machine belongs to).")
@click.option("--store", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A folder every node can write (a shared filesystem): one profile per node.")
@click.option("--task", type=click.Choice(INPUT_CHOICES["task"]), default="infer", show_default=True,
              help="What the profiles are for.")
@click.option("--verify", "measure", is_flag=True, help="Measure on each node (autotune profile --verify).")
@click.option("--budget-s", type=click.FloatRange(min=1), default=VERIFY_BUDGET_S, show_default=True,
              help="With --verify: wall seconds per backend on each node.")
@click.option("--timeout-s", type=click.FloatRange(min=1), default=600, show_default=True,
              help="How long to wait for the nodes; one that has not answered by then is cancelled "
              "and listed.")
@click.option("--json", "as_json", is_flag=True, help="Print each node's result as JSON.")
def collect(address, store, task, measure, budget_s, timeout_s, as_json) -> None:
    """autotune profile on every alive GPU node of a Ray cluster, one task pinned to each,
    asking for no GPU (it does not queue behind training). A node that fails, dies or times
    out is listed with its error; the others' profiles land in the store.

    \b
    Exit codes: 0 every node answered; 1 some did not (listed); 2 bad input or no cluster.
    """
    from autotune.fleet.collect import collect as collect_nodes  # noqa: PLC0415

    if address is None:
        raise UserError("fleet collect runs on a Ray cluster: pass --ray (this machine's cluster) or --ray "
                        "ADDRESS")
    results = collect_nodes(address, store=store, task=task, measure=measure, budget_s=budget_s,
                            timeout_s=timeout_s)
    if as_json:
        click.echo(json.dumps([asdict(result) for result in results], indent=2))
    for result in results:
        where = result.profile_path if result.status == "ok" else result.error
        click.echo(f"{result.host}: {result.status}: {where}", err=True)
    answered = sum(result.status == "ok" for result in results)
    click.echo(f"{answered} of {len(results)} GPU nodes profiled into {store}", err=True)
    if answered < len(results):
        raise SystemExit(1)
