"""``autotune fleet collect`` on a local Ray cluster of fake GPU nodes started by the test,
each replaying its own NVML recording, one of them failing."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune.machine_profiles.store import read_profile
from tests.conftest import RECORDINGS
from tests.test_cli import one_line_error, run

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    started = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for index in range(3):
        started.add_node(num_gpus=1, num_cpus=1, resources={f"fake-{index}": 1})
    started.add_node(num_cpus=1)  # a CPU node: not profiled
    started.wait_for_nodes()
    yield started
    ray.shutdown()
    started.shutdown()


def test_every_gpu_node_is_profiled_and_a_failing_node_is_listed(cluster, tmp_path, monkeypatch):
    from autotune.fleet import collect as fleet_collect  # noqa: PLC0415

    recordings = {}
    wanted = [RECORDINGS / "gtx1660.yaml", RECORDINGS / "h100x2_nvlink.yaml", tmp_path / "missing.yaml"]

    def replay_for(node):
        return str(recordings.setdefault(node["NodeID"], wanted[len(recordings)]))

    results = fleet_collect.collect(cluster.address, store=tmp_path / "store", replay_for=replay_for,
                                    timeout_s=120)
    assert len(results) == 3 and sorted(r.status for r in results) == ["failed", "ok", "ok"]
    (failed,) = [r for r in results if r.status == "failed"]
    assert "missing.yaml" in failed.error and failed.profile_path is None
    names = set()
    for result in results:
        if result.status == "ok":
            made = read_profile(Path(result.profile_path))
            names |= {gpu["name"] for gpu in made.fingerprint.gpus}
            assert made.fingerprint.host == result.host and not made.planned
    assert names == {"NVIDIA GeForce GTX 1660", "NVIDIA H100 80GB HBM3"}
    # The code ran from what the job shipped, under its import names, not from this checkout.
    shipped = ray.get(ray.remote(num_cpus=0)(lambda: __import__("autotune_plugins").__file__).remote())
    assert "runtime_resources" in shipped and shipped.endswith("autotune_plugins/__init__.py")


def test_a_node_that_does_not_answer_in_time_is_cancelled_and_listed(cluster, tmp_path, monkeypatch):
    from autotune.fleet import collect as fleet_collect  # noqa: PLC0415

    results = fleet_collect.collect(cluster.address, store=tmp_path / "store", timeout_s=0.001,
                                    replay_for=lambda node: str(RECORDINGS / "gtx1660.yaml"))
    assert results and all(r.status in ("timed out", "ok") for r in results)
    assert any(r.status == "timed out" and "no answer within" in r.error for r in results)


def test_collect_without_a_cluster_address_says_how(capsys, tmp_path):
    message = one_line_error(capsys, "fleet", "collect", "--store", str(tmp_path))
    assert "pass --ray" in message
    code, out, err = run(capsys, "fleet", "collect", "--help")
    assert code == 0 and "--ray [ADDRESS]" in out
