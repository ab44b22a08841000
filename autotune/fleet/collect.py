"""``autotune fleet collect --ray``: ``autotune profile`` on every alive GPU node of a Ray
cluster, one task per node, each profile written to a shared store.

Each task is pinned to its node (``NodeAffinitySchedulingStrategy(node_id, soft=False)``) and
asks for no GPU and no CPU, so it does not queue behind the training jobs holding them; it
probes through NVML, which sees every GPU whatever Ray assigned. Every wait is bounded
(``ray.wait`` with a timeout, then ``ray.cancel``): a node whose task fails, dies or runs out
of time is listed with its error, and every other node's profile still lands in the store.
autotune's own packages travel with the job (``runtime_env`` ``py_modules``), so the nodes
need Ray, not autotune; the built-in plugins load without entry points there.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune import api
from autotune.config import VERIFY_BUDGET_S
from autotune.errors import UserError, one_line


@dataclass(frozen=True)
class NodeResult:
    node_id: str
    host: str
    #: ``ok``, ``failed`` (the task raised, or its worker or node died) or ``timed out``.
    status: str
    profile_path: str | None = None
    error: str = ""
    seconds: float | None = None


def _import_ray():
    try:
        import ray  # noqa: PLC0415 - the fleet extra
    except ImportError:
        raise UserError("collecting from a Ray cluster needs Ray: pip install 'autotune[fleet]'") from None
    return ray


def _profile_on_node(store: str, task: str, measure: bool, budget_s: float, host: str,
                     replay: str | None) -> tuple[str, float]:
    """What runs on each node: this node's profile, written into the shared store."""
    started = time.monotonic()

    path, _ = api.profile(task=task, measure=measure, store=store, budget_s=budget_s, host=host,
                          replay=replay)
    return str(path), time.monotonic() - started


def shipped_packages(staging: Path) -> list[str]:
    """autotune's three packages as folders named as they import, for ``py_modules``: Ray
    names a shipped module after its folder, and a source checkout keeps the built-in plugins
    in ``plugins/`` and the data in ``profiles/`` (installed as ``autotune_plugins`` and
    ``autotune_profiles``), so each is copied under its import name first."""
    folders = []
    for name in ("autotune", "autotune_plugins", "autotune_profiles"):
        # Where each package lives, found without importing it (nor the plugins with it).
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations, name
        source = Path(next(iter(spec.submodule_search_locations)))
        target = staging / name
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        folders.append(str(target))
    return folders


def gpu_nodes(ray) -> list[dict[str, Any]]:
    """The alive nodes that have GPUs, each with a host name unique in the cluster (the node
    manager's, with the node ID's start where two nodes share it)."""
    nodes = [node for node in ray.nodes()
             if node.get("Alive") and node.get("Resources", {}).get("GPU", 0) > 0]
    names = Counter(node.get("NodeManagerHostname") or "node" for node in nodes)
    for node in nodes:
        name = node.get("NodeManagerHostname") or "node"
        node["autotune_host"] = name if names[name] == 1 else f"{name}-{node['NodeID'][:8]}"
    return nodes


def collect(address: str | None = None, *, store: str | Path, task: str = "infer", measure: bool = False,
            budget_s: float = VERIFY_BUDGET_S, timeout_s: float = 600.0,
            replay_for: Callable[[dict[str, Any]], str | None] | None = None) -> list[NodeResult]:
    """Profile every alive GPU node of the Ray cluster at ``address`` (``auto``: the one this
    process belongs to or started) into ``store``, a folder every node can write.

    :param replay_for: node (a ``ray.nodes()`` entry) -> an NVML recording it should replay
        instead of its own NVML (``autotune probe --record``), for a test cluster whose fake
        nodes share one host; None everywhere else.
    :raises UserError: Ray is not installed, or there is no cluster at ``address``.
    """
    ray = _import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: PLC0415

    if not ray.is_initialized():
        # The job ships autotune (Ray uploads py_modules once, at ray.init); a process that
        # joined a cluster itself has its own job, whose nodes must import autotune already.
        staging = Path(tempfile.mkdtemp(prefix="autotune-ship-"))
        try:
            ray.init(address=address or "auto", runtime_env={"py_modules": shipped_packages(staging)},
                     log_to_driver=False)
        except ConnectionError as error:
            raise UserError(f"no Ray cluster at {address or 'auto'} ({error}); start one (ray start "
                            "--head) or give its address: --ray ADDRESS") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # uploaded by then: Ray keeps its own copy
    return _run(ray, NodeAffinitySchedulingStrategy, store, task, measure, budget_s, timeout_s, replay_for)


def _run(ray, affinity, store, task, measure, budget_s, timeout_s, replay_for) -> list[NodeResult]:
    """One task per GPU node, every wait bounded; what each node did."""
    remote = ray.remote(num_cpus=0, num_gpus=0, max_retries=0)(_profile_on_node)
    started = time.monotonic()
    pending: dict[Any, dict[str, Any]] = {}
    for node in gpu_nodes(ray):
        strategy = affinity(node_id=node["NodeID"], soft=False)
        replay = replay_for(node) if replay_for else None
        reference = remote.options(scheduling_strategy=strategy).remote(
            str(store), task, measure, budget_s, node["autotune_host"], replay)
        pending[reference] = node
    results = []
    ready, late = ([], [])
    if pending:
        ready, late = ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
    for reference in ready:
        node = pending[reference]
        try:
            path, seconds = ray.get(reference)
            results.append(NodeResult(node["NodeID"], node["autotune_host"], "ok", path, seconds=seconds))
        except Exception as error:  # noqa: BLE001 - RayTaskError, WorkerCrashedError, NodeDiedError
            cause = getattr(error, "cause", None) or error
            results.append(NodeResult(node["NodeID"], node["autotune_host"], "failed",
                                      error=one_line(f"{type(cause).__name__}: {cause}", 240)))
    for reference in late:
        ray.cancel(reference, force=True)
        node = pending[reference]
        waited = time.monotonic() - started
        results.append(NodeResult(node["NodeID"], node["autotune_host"], "timed out",
                                  error=f"no answer within {timeout_s:g} s ({waited:.0f} s)"))
    return sorted(results, key=lambda result: result.host)
