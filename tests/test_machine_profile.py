"""Per-machine profiles: the fingerprint and what a change invalidates, the store's atomic
writes with several writers, and every bad profile refused in one line."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from autotune import api
from autotune.machine_profiles.fingerprint import Fingerprint, compare, fingerprint
from autotune.machine_profiles.store import (
    SCHEMA,
    MachineProfile,
    ProfileError,
    profile_path,
    read_profile,
    write_profile,
)
from tests.conftest import REPO, simulated
from tests.test_cli import one_line_error, run

BASE = Fingerprint(host="node1", gpus=({"name": "NVIDIA A100-SXM4-80GB", "uuid": "GPU-1", "vram_gb": 80.0,
                                        "compute_capability": "8.0", "mig": None},),
                   driver_version="550.54", cuda_driver_version="12.4", cpu_model="EPYC", logical_cores=64,
                   ram_gb=512, runtimes={"torch": "2.9.0", "onnxruntime": None}, autotune_version="0.1.0",
                   rules_hash="abc")


def test_a_driver_or_runtime_update_keeps_the_rules_but_not_the_timings():
    for changed in (replace(BASE, driver_version="560.35"), replace(BASE, runtimes={"torch": "2.10.0",
                                                                                    "onnxruntime": None})):
        staleness = compare(BASE, changed)
        assert staleness.stale and staleness.rules_hold and not staleness.measurements_hold
        assert "the measured timings no longer hold, the rules' recommendation does" in staleness.verdict()
    assert "driver 550.54 -> 560.35" in compare(BASE, replace(BASE, driver_version="560.35")).verdict()


def test_another_gpu_invalidates_everything_and_another_host_is_another_machine():
    other_gpu = replace(BASE, gpus=({**BASE.gpus[0], "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-9"},))
    staleness = compare(BASE, other_gpu)
    assert staleness.hardware_changed and not staleness.rules_hold and not staleness.measurements_hold
    assert "the hardware changed" in staleness.verdict() and "NVIDIA H100 80GB HBM3" in staleness.verdict()
    assert compare(BASE, replace(other_gpu, host="node2")).other_machine
    mig = replace(BASE, gpus=({**BASE.gpus[0], "mig": ["1g.10gb", "3g.40gb"]},))
    assert compare(BASE, mig).hardware_changed
    assert not compare(BASE, BASE).stale and compare(BASE, BASE).verdict().startswith("fresh")


def test_new_rules_make_the_recommendation_stale_and_keep_the_timings():
    staleness = compare(BASE, replace(BASE, rules_hash="def"))
    assert not staleness.rules_hold and staleness.measurements_hold
    assert "must be made again" in staleness.verdict()


def profile_of(machine, recommendation=None) -> MachineProfile:
    recommendation = recommendation or api.recommend(gpu="T4")
    return MachineProfile(purpose="infer", fingerprint=fingerprint(machine), machine=machine.to_dict(),
                          recommendations=(recommendation,))


def test_a_profile_round_trips_as_safe_yaml(tmp_path):
    made = profile_of(simulated("T4"))
    path = profile_path(tmp_path, made.fingerprint.host, made.purpose)
    write_profile(made, path)
    read = read_profile(path)
    assert read.to_dict() == made.to_dict()
    assert read.recommendations[0].settings == made.recommendations[0].settings
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [path.name]


@pytest.mark.parametrize("content, words", [
    ("!!python/object/apply:os.system ['echo owned']\n", "is refused: it holds"),
    ("schema: autotune.profile/999\n", "has schema 'autotune.profile/999'"),
    ("- just\n- a list\n", "is not an autotune profile"),
    ("schema: autotune.profile/1\npurpose: infer\n", "malformed autotune profile"),
    ("key: [unclosed\n", "is not valid YAML"),
])
def test_a_bad_profile_is_refused_in_one_line_and_never_run(tmp_path, capsys, content, words):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ProfileError, match=words):
        read_profile(path)
    message = one_line_error(capsys, "profile", "check", str(path))
    assert words in message and str(path) in message


def test_profile_writes_shows_and_checks_this_machine(tmp_path, capsys):
    store = tmp_path / "store"
    code, out, err = run(capsys, "profile", "--store", str(store), "--task", "train")
    assert code == 0 and err.startswith("wrote ") and ".train.yaml (train, rules only" in err
    (path,) = store.glob("*.train.yaml")
    assert read_profile(path).to_dict()["schema"] == SCHEMA
    code, out, err = run(capsys, "profile", "show", "--store", str(store), "--task", "train")
    assert code == 0 and "fresh: this machine's profile" in out and "batch_size" in out and "rule" in out
    code, out, err = run(capsys, "profile", "check", "--store", str(store), "--task", "train")
    assert code == 0 and "fresh" in out
    # A driver update, as the profile's fingerprint would show it after one.
    data = read_profile(path).to_dict()
    data["fingerprint"]["driver_version"] = "1.0"
    path.write_text(json.dumps(data))  # JSON is YAML: a profile may be either
    code, out, err = run(capsys, "profile", "check", "--store", str(store), "--task", "train")
    assert code == 1 and "the rules' recommendation does" in out and "driver 1.0 -> " in out
    message = one_line_error(capsys, "profile", "check", "--store", str(store), "--task", "infer")
    assert "no profile at" in message and "autotune profile" in message


def _write_many(path: str, marker: int, count: int) -> None:
    from autotune.machine_profiles.store import read_profile, write_profile  # noqa: PLC0415

    made = read_profile(Path(path))
    for index in range(count):
        write_profile(replace(made, created=f"writer {marker} #{index}"), Path(path))


def test_two_processes_writing_one_profile_leave_one_whole_file(tmp_path):
    made = profile_of(simulated("T4"))
    path = profile_path(tmp_path, made.fingerprint.host, made.purpose)
    write_profile(made, path)
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_many, args=(str(path), marker, 15)) for marker in (1, 2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    assert read_profile(path).created.startswith("writer ")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_ctrl_c_during_profile_verify_leaves_the_old_profile_intact(tmp_path):
    store = tmp_path / "store"
    env = {**os.environ, "AUTOTUNE_STORE": str(store), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    cli = [str(Path(sys.executable).parent / "autotune")]
    subprocess.run([*cli, "profile"], env=env, check=True, capture_output=True, cwd=REPO)
    (path,) = store.glob("*.infer.yaml")
    before = path.read_bytes()
    # A shell that starts this suite in the background hands it SIGINT ignored, and a child
    # inherits that: give the child the default disposition, as a terminal would.
    process = subprocess.Popen([*cli, "profile", "--verify", "--budget-s", "60"], env=env, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Inside the measurements: the first ONNX file in the cache comes with a preparation.
    cache = tmp_path / "cache" / "autotune"
    started = time.monotonic()
    while not any(cache.rglob("*.onnx")) and time.monotonic() - started < 60:
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert path.read_bytes() == before
    assert [p.name for p in store.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.usefixtures("quick_timing")
def test_profile_verify_keeps_what_was_measured(tmp_path, capsys):
    store = tmp_path / "store"
    code, out, err = run(capsys, "profile", "--verify", "--store", str(store), "--model",
                         "tests.test_model_stats:small_cnn", "--input-shape", "3,32,32", "--budget-s", "5",
                         "--set", "backends=torch")
    assert code == 0, err
    (path,) = store.glob("*.infer-small_cnn.yaml")
    made = read_profile(path)
    assert made.measured and made.recommendations[0].measurements
    code, out, err = run(capsys, "profile", "show", "--store", str(store), "--model",
                         "tests.test_model_stats:small_cnn")
    assert code == 0 and ", measured, written" in out


def test_a_mig_layout_is_part_of_the_fingerprint():
    from tests.conftest import replayed  # noqa: PLC0415

    mig = fingerprint(replayed("a100_mig.yaml"))
    assert mig.gpus[0]["mig"] == ["NVIDIA A100-SXM4-40GB MIG 1g.5gb", "NVIDIA A100-SXM4-40GB MIG 1g.5gb",
                                  "NVIDIA A100-SXM4-40GB MIG 3g.20gb"]
    relaid = replace(mig, gpus=({**mig.gpus[0], "mig": ["NVIDIA A100-SXM4-40GB MIG 7g.40gb"]},))
    assert compare(mig, relaid).hardware_changed


def test_the_rules_hash_follows_the_rules_not_their_comments(monkeypatch):
    from autotune.machine_profiles import fingerprint
    from autotune.shipped_data import read_yaml_text

    fp16 = "decisions: [precision]\nrules: [{decision: precision, value: fp16}]\n"
    rules = {"rules.yaml": read_yaml_text(fp16)}
    monkeypatch.setattr(fingerprint, "load_profile", lambda name: rules[name])
    before = fingerprint.rules_hash()
    rules["rules.yaml"] = read_yaml_text("# a new header comment\n" + fp16)
    assert fingerprint.rules_hash() == before
    rules["rules.yaml"] = read_yaml_text(fp16.replace("fp16", "bf16"))
    assert fingerprint.rules_hash() != before
