"""Where ONNX Runtime ran each node of a session, proven from one profiled run.

A GPU session made with the CPU fallback allowed (:func:`.sessions.create_session` does so only
where the provider works but ORT's guard refused the shape subgraphs it leaves on the CPU) is
profiled: :func:`node_placement` reads the profile of one run, and :func:`placement_problem`
says why compute that ran on the CPU does not count as the GPU provider's (shape arithmetic
there does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime
from autotune_plugins.onnxruntime.session_plan import PROVIDER_LABELS, PROVIDERS

_KERNEL_SUFFIX = "_kernel_time"
#: Output element types of shape arithmetic, what the CUDA provider leaves on the CPU on
#: purpose. A CPU node with an output of any other type is the model's compute on the CPU.
_SHAPE_TYPES = frozenset({"int64", "int32", "bool"})


@dataclass(frozen=True)
class Placement:
    """Where ONNX Runtime ran each node of one run, read from its profile.

    ``nodes`` maps each provider (ORT's name) to its nodes, ``"op_type name"``, in the order
    they first ran. ``host_nodes`` are those on the CPU provider; ``host_compute_nodes`` those
    of them with an output that is not shape arithmetic (a type other than int64, int32 or
    bool, or none recorded): compute that did not run on the GPU.
    """

    nodes: dict[str, tuple[str, ...]]
    host_nodes: tuple[str, ...]
    host_compute_nodes: tuple[str, ...]


def placement_from_profile(events: Sequence[Mapping[str, Any]]) -> Placement:
    """The placement in an ONNX Runtime profile (the JSON list ``end_profiling()`` writes).

    Each node's run is one event with ``"cat": "Node"``, a name ending ``_kernel_time`` and
    ``args`` holding ``op_name``, ``provider`` and ``output_type_shape`` (a list of
    ``{element_type: shape}``), as onnxruntime 1.31.1 writes them (tests/ort_profiles holds
    one from a CPU session); other events (session phases, older builds' fences) are skipped.
    """
    nodes: dict[str, list[str]] = {}
    seen: set[str] = set()
    host_compute: list[str] = []
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith(_KERNEL_SUFFIX) or name in seen:
            continue
        seen.add(name)
        args = event.get("args") or {}
        node = f"{args.get('op_name', '?')} {name.removesuffix(_KERNEL_SUFFIX)}"
        provider = str(args.get("provider", "unknown"))
        nodes.setdefault(provider, []).append(node)
        if provider == PROVIDERS["cpu"]:
            types = {element for output in args.get("output_type_shape") or [] for element in output}
            if not types or types - _SHAPE_TYPES:
                host_compute.append(node)
    return Placement({provider: tuple(names) for provider, names in nodes.items()},
                     tuple(nodes.get(PROVIDERS["cpu"], ())), tuple(host_compute))


def node_placement(session: onnxruntime.InferenceSession, feed: Mapping[str, Any]) -> Placement | None:
    """Where ``session`` runs its nodes, from one profiled run on ``feed`` (host arrays);
    None for a session made without profiling: a strict GPU session, where ORT's guard
    already refused any node on the CPU.

    Ends the session's profiling, so the timed runs after it are not profiled; the file is
    removed once read.
    """
    if not session.get_session_options().enable_profiling:
        return None
    session.run(None, dict(feed))
    path = Path(session.end_profiling())
    try:
        events = json.loads(path.read_text())
    finally:
        path.unlink(missing_ok=True)
    return placement_from_profile(events)


def placement_problem(placement: Placement | None, provider: str) -> str | None:
    """Why ``placement`` does not count as running on ``provider``'s GPU, or None when it
    does: every node but shape arithmetic ran on the GPU provider."""
    if placement is None or not placement.host_compute_nodes:
        return None
    shown = ", ".join(placement.host_compute_nodes[:5])
    more = len(placement.host_compute_nodes) - 5
    label = PROVIDER_LABELS.get(provider, provider)
    return (f"{len(placement.host_compute_nodes)} compute node(s) ran on the CPU, not the {label} "
            f"provider: {shown}" + (f" and {more} more" if more > 0 else ""))
