"""``autotune fleet plan`` and ``fleet summary``: an inventory becomes planned profiles
offline, hosts alike share a recommendation, bad inventories write nothing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autotune import api
from autotune.machine_profiles.store import read_profile
from tests.test_cli import one_line_error, run

INVENTORY = """\
hosts:
  - host: train-01
    gpus: [{model: H100 SXM, count: 8}]
    cpu_cores: 96
    ram_gb: 1024
    driver: "550.54.15"
  - host: train-02
    gpus: [{model: h100 sxm, count: 8}]
    cpu_cores: 96
    ram_gb: 1024
    driver: "550.54.15"
  - host: mixed-01
    gpus: [{model: RTX 4090, count: 1}, {model: RTX 3060 12GB, count: 1}]
  - host: mig-01
    gpus: [{model: A100 80GB, count: 1, mig: [3g.40gb, 3g.40gb]}]
"""


def test_an_inventory_becomes_one_planned_profile_per_host(tmp_path, capsys, monkeypatch):
    (tmp_path / "hosts.yaml").write_text(INVENTORY)
    computed = []
    original = api._recommend
    monkeypatch.setattr(api, "_recommend",
                        lambda *args, **kwargs: computed.append(1) or original(*args, **kwargs))
    code, out, err = run(capsys, "fleet", "plan", "--inventory", str(tmp_path / "hosts.yaml"), "--out",
                         str(tmp_path / "plan"), "--task", "train")
    assert code == 0 and "planned 4 hosts" in err
    assert len(computed) == 3  # train-01 and train-02 share their hardware, and one recommendation
    profiles = {p.name: read_profile(p) for p in (tmp_path / "plan").glob("*.yaml")}
    assert set(profiles) == {"train-01.train.yaml", "train-02.train.yaml", "mixed-01.train.yaml",
                             "mig-01.train.yaml"}
    train = profiles["train-02.train.yaml"]
    assert train.planned and not train.measured and train.fingerprint.host == "train-02"
    assert train.fingerprint.driver_version == "550.54.15" and len(train.fingerprint.gpus) == 8
    assert train.recommendations[0].settings["multi_gpu"] != "none"
    mig = profiles["mig-01.train.yaml"].fingerprint.gpus[0]["mig"]
    assert len(mig) == 2 and all(name.endswith(" MIG 3g.40gb") for name in mig)
    names = {gpu["spec_name"] for gpu in profiles["mixed-01.train.yaml"].machine["gpus"]}
    assert names == {"RTX 4090", "RTX 3060 12GB"}


def planned(tmp_path, capsys, inventory: str, *options: str):
    """``fleet plan`` of a YAML inventory into tmp_path/plan (exit 0): the folder."""
    (tmp_path / "hosts.yaml").write_text(inventory)
    code, _, err = run(capsys, "fleet", "plan", "--inventory", str(tmp_path / "hosts.yaml"), "--out",
                       str(tmp_path / "plan"), *options)
    assert code == 0, err
    return tmp_path / "plan"


def test_a_plan_for_a_model_sizes_each_host_s_batch_and_predicts_its_speed(tmp_path, capsys):
    plan = planned(tmp_path, capsys, "hosts:\n  - host: big\n    gpus: [{model: H100 SXM, count: 1}]\n"
                   "  - host: small\n    gpus: [{model: T4, count: 1}]\n", "--model", "resnet50")
    big, small = (read_profile(plan / f"{host}.infer.yaml").recommendations[0]
                  for host in ("big", "small"))
    assert big.settings["batch_size"] > small.settings["batch_size"]
    assert big.model["predicted_samples_s"] > small.model["predicted_samples_s"] > 0
    assert big.model["predicted_for"]["batch"] == big.settings["batch_size"]


def test_a_csv_inventory_takes_a_row_per_gpu_model(tmp_path, capsys):
    (tmp_path / "hosts.csv").write_text("host,gpu_model,gpu_count,mig,cpu_cores,ram_gb,driver\n"
                                        "a,T4,4,,32,256,\na,L4,2,,,,\nb,A100 80GB,1,1g.10gb+3g.40gb,,,\n")
    code, out, err = run(capsys, "fleet", "plan", "--inventory", str(tmp_path / "hosts.csv"), "--out",
                         str(tmp_path / "plan"))
    assert code == 0, err
    first = read_profile(tmp_path / "plan" / "a.infer.yaml")
    assert sorted(g["spec_name"] for g in first.machine["gpus"]) == ["L4", "L4", "T4", "T4", "T4", "T4"]
    assert first.fingerprint.logical_cores == 32 and first.fingerprint.ram_gb == 256


@pytest.mark.parametrize("inventory, words", [
    ("hosts: [{host: ok-1, gpus: [{model: T4}]}, {host: bad-1, gpus: [{model: A100 99GB}]}]",
     "host bad-1: unknown GPU 'A100 99GB' (closest known: "),
    ("hosts: [{host: a, gpus: [{model: T4}]}, {host: a, gpus: [{model: L4}]}]", "host a is listed twice"),
    ("hosts: [{host: 'a b', gpus: [{model: T4}]}]", "is not a host name"),
    ("hosts: [{host: a, gpus: [{model: A100 80GB, mig: [big]}]}]", "MIG profile 'big' is not like 3g.40gb"),
    ("hosts: []", "lists no hosts"),
    ("hosts: [{host: a, gpus: [{model: T4, count: lots}]}]", "count must be a whole number"),
])
def test_a_bad_inventory_is_exit_2_naming_the_host_and_writes_nothing(tmp_path, capsys, inventory, words):
    (tmp_path / "hosts.yaml").write_text(inventory)
    message = one_line_error(capsys, "fleet", "plan", "--inventory", str(tmp_path / "hosts.yaml"), "--out",
                             str(tmp_path / "plan"))
    assert words in message
    assert not (tmp_path / "plan").exists()


def test_the_summary_tables_counts_and_draws_the_fleet(tmp_path, capsys):
    (tmp_path / "hosts.yaml").write_text(INVENTORY)
    run(capsys, "fleet", "plan", "--inventory", str(tmp_path / "hosts.yaml"), "--out",
        str(tmp_path / "store"))
    (tmp_path / "store" / "broken.infer.yaml").write_text("not: [yaml\n")
    code, out, err = run(capsys, "fleet", "summary", "--store", str(tmp_path / "store"), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["hosts"] == 4 and summary["hosts_by_source"] == {"planned": 4}
    assert summary["gpus_by_model"]["H100 SXM"] == 16 and len(summary["unreadable"]) == 1
    assert {r["host"]: r["gpus"] for r in summary["rows"]}["mixed-01"] == "1 x RTX 3060 12GB + 1 x RTX 4090"
    code, out, err = run(capsys, "fleet", "summary", "--store", str(tmp_path / "store"), "--csv")
    assert out.splitlines()[0] == "host,gpus,precision,batch_size,resolution,backend,source,stale"
    assert len(out.splitlines()) == 5 and "skipped: " in err
    pytest.importorskip("matplotlib")
    code, out, err = run(capsys, "fleet", "summary", "--store", str(tmp_path / "store"), "--plot",
                         str(tmp_path / "fleet.png"))
    assert code == 0 and (tmp_path / "fleet.png").read_bytes()[:4] == b"\x89PNG"
    assert "4 hosts; 0 stale" in out and "GPUs by model: H100 SXM 16" in out
    message = one_line_error(capsys, "fleet", "summary", "--store", str(tmp_path / "missing"))
    assert "no profile store at" in message


LABEL_INVENTORY = """\
hosts:
  - host: one
    gpus: [{model: H100 SXM, count: 8}]
  - host: mixed
    gpus: [{model: RTX 4090, count: 1}, {model: RTX 3060 12GB, count: 2}]
  - host: mig
    gpus: [{model: A100 80GB, count: 1, mig: [3g.40gb, 1g.10gb, 1g.10gb]}]
"""


def label_lines(capsys, path) -> dict[str, str]:
    code, out, err = run(capsys, "fleet", "labels", "--profile", str(path), "--out", "-")
    assert code == 0, err
    return dict(line.split("=", 1) for line in out.splitlines() if not line.startswith("#"))


def test_labels_per_gpu_model_and_per_mig_slice_never_from_the_first_gpu_only(tmp_path, capsys):
    from autotune.fleet.labels import VALID_VALUE  # noqa: PLC0415

    (tmp_path / "hosts.yaml").write_text(LABEL_INVENTORY)
    run(capsys, "fleet", "plan", "--inventory", str(tmp_path / "hosts.yaml"), "--out", str(tmp_path / "plan"))
    one = label_lines(capsys, tmp_path / "plan" / "one.infer.yaml")
    assert one["autotune.io/precision"] == "fp16" and one["autotune.io/gpu.product"] == "H100-SXM"
    assert one["autotune.io/source"] == "planned" and one["autotune.io/gpu.count"] == "8"
    mixed = label_lines(capsys, tmp_path / "plan" / "mixed.infer.yaml")
    assert "autotune.io/precision" not in mixed  # no node-wide answer from its first GPU
    assert {"autotune.io/rtx-4090.batch-size", "autotune.io/rtx-3060-12gb.batch-size"} <= set(mixed)
    mig = label_lines(capsys, tmp_path / "plan" / "mig.infer.yaml")
    assert {"autotune.io/mig-3g.40gb.batch-size", "autotune.io/mig-1g.10gb.batch-size"} <= set(mig)
    for labels in (one, mixed, mig):
        for name, value in labels.items():
            assert len(value) <= 63 and VALID_VALUE.match(value)
            assert len(name.split("/", 1)[1]) <= 63 and VALID_VALUE.match(name.split("/", 1)[1])
    target = tmp_path / "features.d" / "autotune"
    code, out, err = run(capsys, "fleet", "labels", "--profile", str(tmp_path / "plan" / "one.infer.yaml"),
                         "--out", str(target))
    assert code == 0 and "autotune.io/precision=fp16" in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["autotune"]  # the dot-file was renamed


@given(st.text(max_size=200))
def test_any_text_cleans_to_a_valid_label_value(text):
    from autotune.fleet.labels import VALID_VALUE, clean  # noqa: PLC0415

    value = clean(text)
    assert len(value) <= 63 and VALID_VALUE.match(value)


def test_collect_without_ray_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if Ray were not installed
    message = one_line_error(capsys, "fleet", "collect", "--ray", "--store", str(tmp_path))
    assert "needs Ray: pip install 'autotune[fleet]'" in message


def test_a_simulated_gpu_s_host_figures_say_they_are_this_machine_s_and_a_planned_host_s_are_its_own(
        tmp_path, capsys):
    """``--gpu A100`` simulates the board on this machine's CPU: num_workers and cpu_threads
    say the cores counted are this machine's; a planned host's come from its inventory."""
    simulated = {d.name: d for d in api.recommend(gpu="A100").decisions}
    assert simulated["num_workers"].rule == "workers-gpu-simulated"
    assert simulated["cpu_threads"].rule == "threads-gpu-simulated"
    assert "simulated GPU's host is unknown" in simulated["num_workers"].reason
    plan = planned(tmp_path, capsys, "hosts:\n  - host: a\n    gpus: [{model: A100 80GB, count: 8}]\n"
                   "    cpu_cores: 64\n")
    decisions = {d.name: d for d in read_profile(plan / "a.infer.yaml").recommendations[0].decisions}
    assert decisions["num_workers"].rule == "workers-gpu" and decisions["num_workers"].value == 7
