"""`make gpu-check`: what the first real GPU must show about autotune's CUDA, NVML, ONNX Runtime
and TensorRT paths (issue 24), in one command that ends within 8 minutes.

    python scripts/gpu_check.py [--out DIR] [--only NAME,NAME]

Writes ``DIR/gpu-check-<host>-<date>.json`` and ``.md`` (default DIR: benchmarks/results),
with what the checks saved beside them in ``DIR/gpu-check-<host>-<date>/`` (TensorRT's raw
inspector JSON, a copy of the NVML recording); the NVML recording itself goes to
``tests/nvml/<gpu-name>.yaml``. Whoever runs it on a GPU commits the two reports and the
recording. Exit status: 0 when no check failed, 1 when one did, 2 for bad arguments (then
nothing is written).

Each check is a function returning its figures; it runs in a Python process of its own (so
one check's CUDA context, allocator and NVML figures are not the next one's, and a hung driver
call can be killed with what it started) under its own time limit, cut to what is left of the whole run's
bound (:data:`TOTAL_LIMIT_S`). A check that raises is a failed row; a check whose library is
not installed, or that needs a GPU where there is none, is a skipped row saying so. Without a
GPU only the runtimes inventory runs, in a few seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import enum
import importlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: The whole run's bound: `make gpu-check` must end within 8 minutes on one GPU.
TOTAL_LIMIT_S = 480.0
#: Kept back from the bound for writing the reports after the last check.
REPORT_RESERVE_S = 5.0
#: A check is not started with less time than this left: it would only time out.
MIN_CHECK_S = 3.0
DEFAULT_OUT = REPO / "benchmarks" / "results"
NVML_RECORDINGS = REPO / "tests" / "nvml"
#: The dynamic-batch transformer's inputs (both candidates take them; ids below both vocabularies).
BERT_INPUT_SPEC = "input_ids:int64[S=128]:tokens<1000; attention_mask:int64[S=128]:ones"
#: Ops whose placement on the CPU would mean the model's compute did not run on the GPU.
COMPUTE_OPS = frozenset({"Conv", "MatMul", "Gemm", "FusedConv", "FusedMatMul", "FusedGemm", "Attention",
                         "MultiHeadAttention", "SkipLayerNormalization", "LayerNormalization"})


class Status(str, enum.Enum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class SkipCause(str, enum.Enum):
    """Why a check did not run, as a field a reader (or a test) can compare."""

    NO_GPU = "no_gpu"
    NOT_INSTALLED = "not_installed"
    NOT_SELECTED = "not_selected"
    NO_TIME = "no_time"
    #: The check itself found it cannot run here (raised :class:`Skipped`).
    CHECK = "check"


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One row of the report; ``skip_cause`` is set for a skipped row only."""

    name: str
    status: Status
    reason: str = ""
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    limit_s: float = 0.0
    seconds: float = 0.0
    skip_cause: SkipCause | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "reason": self.reason,
                "skip_cause": self.skip_cause.value if self.skip_cause else None,
                "limit_s": round(self.limit_s, 1), "seconds": round(self.seconds, 2), "figures": self.figures}


@dataclasses.dataclass(frozen=True)
class CheckContext:
    """What a check gets in its own process: where to save files, and its time limit."""

    artifacts: Path
    limit_s: float
    gpu_name: str | None


class Skipped(Exception):  # noqa: N818 - an outcome, raised by a check, not an error
    """Raised by a check that cannot run here; the message is the reason."""


class Failed(Exception):  # noqa: N818 - an outcome: the check ran and found something wrong
    """Raised by a check that ran and found something wrong, with the figures it gathered."""

    def __init__(self, reason: str, figures: dict[str, Any]):
        super().__init__(reason)
        self.figures = figures


@dataclasses.dataclass(frozen=True)
class Check:
    """A check: ``run(context)`` returns its figures (or raises :class:`Skipped`/:class:`Failed`)."""

    name: str
    run: Callable[[CheckContext], dict[str, Any]]
    limit_s: float
    description: str
    #: Import names that must be installed (else: skipped, not installed).
    needs: tuple[str, ...] = ()
    gpu: bool = True


# --- helpers the checks share ----------------------------------------------------------------


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _models() -> list[tuple[str, list[Any]]]:
    """The dynamic-batch models the ONNX and TensorRT checks export, as autotune sources, each
    with the candidates to try in order: torchvision's ResNet-18 (weights=None: built seeded
    by autotune) and a small BERT — a tiny Hugging Face ``BertConfig`` model where
    transformers is installed, then the plain torch BERT-like classifier of
    benchmarks/bert_like.py (where the first does not export)."""
    from autotune.model.source import parse_model  # noqa: PLC0415

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # benchmarks.bert_like, as `autotune verify --model` finds it
    berts = (["gpu_check:tiny_hf_bert"] if importlib.util.find_spec("transformers") else [])
    berts.append("benchmarks.bert_like:small_bert")
    return [("resnet18", [parse_model("resnet18")]),
            ("bert", [parse_model(spec, input_spec=BERT_INPUT_SPEC) for spec in berts])]


def _first_exported(candidates: list[Any], entry: dict[str, Any]) -> tuple[Any, Path] | None:
    """The first candidate autotune's converter exports, and its file; each one that does not
    export is recorded in ``entry["export_failed"]``."""
    for source in candidates:
        try:
            path = _onnx_file(source)
        except Exception as error:  # noqa: BLE001 - recorded; the next candidate is tried
            entry.setdefault("export_failed", {})[source.spec] = _first_line(error)
            continue
        entry["model"], entry["onnx_file"] = source.spec, str(path)
        return source, path
    return None


def _exported_models(figures: dict[str, Any], problems: list[str]
                     ) -> Iterator[tuple[str, dict[str, Any], Any, Path]]:
    """Each model's label, its entry in ``figures``, the source that exported and its file;
    a model none of whose candidates exports is a problem, and skipped."""
    for label, candidates in _models():
        entry: dict[str, Any] = figures.setdefault(label, {})
        exported = _first_exported(candidates, entry)
        if exported is None:
            problems.append(f"{label}: export failed")
            continue
        yield label, entry, *exported


def tiny_hf_bert():
    """A two-layer Hugging Face BERT classifier with a 1000-token vocabulary (fresh weights)."""
    # Installed on the GPU machines, not in the lock.
    from transformers import (  # noqa: PLC0415  # pyright: ignore[reportMissingImports]
        BertConfig,
        BertForSequenceClassification,
    )

    config = BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=256, max_position_embeddings=256, num_labels=2)
    return BertForSequenceClassification(config).eval()


def _model_inputs(source):
    from autotune.model.stats import reference_models  # noqa: PLC0415

    return source.inputs if source.inputs is not None else reference_models()[source.spec].inputs


def _onnx_file(source) -> Path:
    from autotune.model.convert import ConversionRequest, convert_model  # noqa: PLC0415

    return convert_model(source, "onnx", ConversionRequest(inputs=_model_inputs(source), dynamic_batch=True))


# --- the checks ------------------------------------------------------------------------------


def check_runtimes(context: CheckContext) -> dict[str, Any]:
    """The driver and the runtimes: nvidia-smi, torch and its CUDA, ONNX Runtime's providers
    with a one-node CUDA and TensorRT session each, TensorRT, and the libnvinfer that ORT's
    TensorRT provider loads."""
    figures: dict[str, Any] = {}
    smi = shutil.which("nvidia-smi")
    figures["nvidia_smi"] = (subprocess.run([smi], capture_output=True, text=True, timeout=30).stdout
                             if smi else "not found on PATH")
    from autotune.hardware.probe import probe  # noqa: PLC0415

    machine = probe()
    figures["probe"] = {"summary": machine.summary(), "driver": machine.driver_version,
                        "cuda_driver": machine.cuda_driver_version, "note": machine.note}
    if importlib.util.find_spec("torch"):
        import torch  # noqa: PLC0415

        figures["torch"] = {"version": torch.__version__, "cuda": torch.version.cuda,
                            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
                            else None, "arch_list": torch.cuda.get_arch_list(),
                            "cuda_available": torch.cuda.is_available()}
        if torch.cuda.is_available():
            figures["torch"]["devices"] = [
                {"name": torch.cuda.get_device_name(index),
                 "capability": ".".join(map(str, torch.cuda.get_device_capability(index))),
                 "total_memory_bytes": torch.cuda.get_device_properties(index).total_memory}
                for index in range(torch.cuda.device_count())]
        else:
            from autotune.hardware.driver_support import cuda_unavailable_reason  # noqa: PLC0415

            figures["torch"]["why_no_cuda"] = cuda_unavailable_reason(machine)
    else:
        figures["torch"] = "not installed"
    if importlib.util.find_spec("onnxruntime"):
        import onnxruntime  # noqa: PLC0415

        figures["onnxruntime"] = {"version": onnxruntime.__version__,
                                  "available_providers": onnxruntime.get_available_providers()}
        if machine.gpus:
            from autotune_plugins.onnxruntime import sessions  # noqa: PLC0415

            # autotune's own probe: a one-node model, every fallback off, get_providers() checked.
            for provider in ("cuda", "tensorrt"):
                problem = sessions.gpu_provider_problem(provider)
                figures["onnxruntime"][f"one_node_{provider}"] = "runs on the provider" if problem is None \
                    else f"does not run: {problem}"
        else:
            figures["onnxruntime"]["one_node_sessions"] = "skipped: no GPU"
        figures["onnxruntime"]["tensorrt_provider_libnvinfer"] = _ort_libnvinfer(
            Path(onnxruntime.__file__).parent)
    else:
        figures["onnxruntime"] = "not installed"
    if importlib.util.find_spec("tensorrt"):
        try:
            figures["tensorrt"] = importlib.import_module("tensorrt").__version__
        except Exception as error:  # noqa: BLE001 - installed but not loadable: that is the figure
            figures["tensorrt"] = {"error": _first_line(error)}
    else:
        figures["tensorrt"] = "not installed"
    return figures


def _ort_libnvinfer(package: Path) -> dict[str, Any]:
    """Which libnvinfer ORT's TensorRT provider library links and loads, and its version."""
    library = package / "capi" / "libonnxruntime_providers_tensorrt.so"
    if not library.is_file():
        return {"provider_library": "not in this onnxruntime build"}
    found: dict[str, Any] = {"provider_library": str(library)}
    ldd = shutil.which("ldd")
    if ldd is None:
        found["links"] = "ldd not found"
        return found
    listed = subprocess.run([ldd, str(library)], capture_output=True, text=True, timeout=30).stdout
    links = [line.strip() for line in listed.splitlines() if "libnvinfer" in line]
    found["links"] = links
    resolved = [line.split("=>")[1].split("(")[0].strip() for line in links
                if "=>" in line and "not found" not in line]
    if resolved:
        import ctypes  # noqa: PLC0415

        version = ctypes.CDLL(resolved[0]).getInferLibVersion()
        # TensorRT encodes 10.3.0 as 100300 (major * 10000 + minor * 100 + patch).
        found["version"] = f"{version // 10000}.{version // 100 % 100}.{version % 100}"
    return found


def check_nvml_recording(context: CheckContext) -> dict[str, Any]:
    """This machine's NVML answers through ``autotune probe --record`` into
    tests/nvml/<gpu-name>.yaml, for the replay tests; a copy goes with the report."""
    name = re.sub(r"[^a-z0-9]+", "_", (context.gpu_name or "gpu").lower()).strip("_")
    target = NVML_RECORDINGS / f"{name}.yaml"
    command = [sys.executable, "-c", "import sys; from autotune.cli.main import main; sys.exit(main())",
               "probe", "--record", str(target)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=max(1.0, context.limit_s - 2),
                          cwd=REPO)
    if done.returncode != 0:
        raise Failed(f"autotune probe --record exited {done.returncode}", {"stderr": done.stderr[-2000:]})
    shutil.copy2(target, context.artifacts / target.name)
    return {"recording": str(target.relative_to(REPO)), "copy": target.name,
            "commit": f"commit {target.relative_to(REPO)} (a replay test machine)"}


def check_pytest_gpu(context: CheckContext) -> dict[str, Any]:
    """Every test marked ``gpu`` or ``tensorrt``, in a pytest of its own."""
    with tempfile.TemporaryDirectory() as folder:
        junit = Path(folder) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu or tensorrt",
                   f"--junitxml={junit}", "tests"]
        try:
            # Its own timeout, a little inside the check's, so pytest (not this process) is killed.
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                                  timeout=max(1.0, context.limit_s - 5))
        except subprocess.TimeoutExpired as timeout:
            tail = (timeout.stdout or b"")[-3000:]
            raise Failed(f"pytest ran past {context.limit_s - 5:.0f} s",
                         {"output_tail": tail.decode("utf-8", "replace") if isinstance(tail, bytes) else tail}
                         ) from None
        figures = _junit_figures(junit) if junit.is_file() else {}
    figures["exit_code"] = done.returncode
    figures["output_tail"] = done.stdout[-3000:]
    # 5: no test collected (none marked): nothing failed.
    if done.returncode not in (0, 5):
        raise Failed(f"pytest exited {done.returncode}: {len(figures.get('failures', []))} failed", figures)
    return figures


def _junit_figures(path: Path) -> dict[str, Any]:
    tests, failures, skips = 0, [], []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        tests += 1
        name = f"{case.get('classname')}::{case.get('name')}"
        for child in case:
            if child.tag in ("failure", "error"):
                failures.append({"test": name, "message": (child.get("message") or "")[:500]})
            elif child.tag == "skipped":
                skips.append({"test": name, "reason": (child.get("message") or "")[:300]})
    return {"tests": tests, "failed": len(failures), "skipped": len(skips),
            "passed": tests - len(failures) - len(skips), "failures": failures, "skips": skips}


def _tf32_readers() -> dict[str, Any]:
    """Every reader of PyTorch's TF32 state, old API and new, each value or the error it raises."""
    import torch  # noqa: PLC0415

    readers: dict[str, Callable[[], Any]] = {
        "torch.get_float32_matmul_precision()": torch.get_float32_matmul_precision,
        "cuda.matmul.allow_tf32": lambda: torch.backends.cuda.matmul.allow_tf32,
        "cudnn.allow_tf32": lambda: torch.backends.cudnn.allow_tf32,
        "cudnn.flags()": lambda: _enter(torch.backends.cudnn.flags()),
    }
    # The fp32_precision attributes where this torch has them (2.9 and newer).
    for path in ("backends", "backends.cuda.matmul", "backends.cudnn", "backends.cudnn.conv",
                 "backends.cudnn.rnn", "backends.mkldnn", "backends.mkldnn.matmul", "backends.mkldnn.conv"):
        owner: Any = torch
        for part in path.split("."):
            owner = getattr(owner, part, None)
        if owner is not None and hasattr(owner, "fp32_precision"):
            readers[f"{path.removeprefix('backends.')}.fp32_precision"] = \
                lambda owner=owner: owner.fp32_precision
    values: dict[str, Any] = {}
    for name, read in readers.items():
        try:
            values[name] = read()
        except Exception as error:  # noqa: BLE001 - a raising reader is the finding
            values[name] = {"raises": _first_line(error)}
    return values


def _enter(manager) -> str:
    with manager:
        return "entered"


def check_tf32_readers(context: CheckContext) -> dict[str, Any]:
    """Every TF32 reader after each setting made through autotune's own setters: the torch
    runner's (``autotune.training.torch_tf32``: on, off, restore) and ``import autotune.auto``'s
    ``apply_torch_settings`` (on, off), in that order in one process as a script meets them."""
    from autotune.training.config import TrainingConfig, apply_torch_settings  # noqa: PLC0415
    from autotune.training.torch_tf32 import read_state, restore, set_tf32  # noqa: PLC0415 - the runner's setter

    steps: list[tuple[str, Callable[[], Any]]] = [("torch defaults", lambda: None)]
    before = read_state()
    steps += [("torch runner TF32 on", lambda: set_tf32(True)),
              ("torch runner TF32 off", lambda: set_tf32(False)),
              ("torch runner restore", lambda: restore(before))]
    for enabled in (True, False):
        config = TrainingConfig(source="profile", device="cuda", tf32=enabled)
        steps.append((f"autotune.auto TF32 {'on' if enabled else 'off'}",
                      lambda config=config: apply_torch_settings(config, torch_was_imported=False)))
    figures: dict[str, Any] = {}
    raising = []
    for label, action in steps:
        try:
            action()
        except Exception as error:  # noqa: BLE001 - the setter itself failing is a finding too
            figures[label] = {"setter raises": _first_line(error)}
            raising.append(f"{label}: the setter raises")
            continue
        figures[label] = values = _tf32_readers()
        raising += [f"{label}: {name}" for name, value in values.items()
                    if isinstance(value, dict) and "raises" in value]
    if raising:
        raise Failed(f"{len(raising)} readers raise: " + "; ".join(raising[:6]), figures)
    return figures


def check_torch_compile(context: CheckContext) -> dict[str, Any]:
    """``torch.compile(mode="max-autotune")`` on a Linear+Conv model with TF32 on through the
    torch runner's setter (Inductor reads the TF32 flags), against eager."""
    import torch  # noqa: PLC0415

    from autotune.training.torch_tf32 import read_state, restore, set_tf32  # noqa: PLC0415 - the runner's setter

    if not torch.cuda.is_available():
        raise Skipped("torch sees no CUDA GPU")
    before = read_state()
    set_tf32(True)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(16 * 32 * 32, 10)).cuda().eval()
    x = torch.randn(8, 3, 32, 32, device="cuda")
    with torch.inference_mode():
        eager = model(x)
        started = time.monotonic()
        compiled = torch.compile(model, mode="max-autotune")
        out = compiled(x)
        torch.cuda.synchronize()
        compile_s = time.monotonic() - started
    error = float((out - eager).abs().max() / eager.abs().max())
    figures = {"compile_and_first_run_s": round(compile_s, 1), "max_relative_error": error,
               "tf32_readers_after": _tf32_readers()}
    restore(before)
    # TF32 on both sides, different kernels: a few 1e-3 at most (MMA rounding of 10-bit mantissas).
    if not error < 1e-2:
        raise Failed(f"compiled output differs from eager by {error:.2e} (relative)", figures)
    return figures


def check_onnx_placement(context: CheckContext) -> dict[str, Any]:
    """A dynamic-batch BERT and ResNet-18, exported by autotune's converter, in ONNX Runtime's
    CUDA provider: autotune's strict session (accepted or refused), then a session that may
    place nodes on the CPU, profiled, giving every executed node's provider."""
    import numpy as np  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415
    from autotune_plugins.onnxruntime import sessions  # noqa: PLC0415
    from autotune_plugins.onnxruntime.session_plan import plan_session  # noqa: PLC0415

    from autotune.model_inputs import synthetic_batch  # noqa: PLC0415

    figures: dict[str, Any] = {}
    problems = []
    for label, entry, source, path in _exported_models(figures, problems):
        inputs = _model_inputs(source)
        shapes = {spec.name: ((1, *spec.shape), (4, *spec.shape), (8, *spec.shape)) for spec in inputs.inputs}
        try:
            sessions.create_session(path, plan_session("cuda", input_shapes=shapes))
            entry["strict_session"] = "accepted"
        except Exception as error:  # noqa: BLE001 - the refusal is the finding (issue 24 item 5)
            entry["strict_session"] = f"refused: {_first_line(error)}"
        with tempfile.TemporaryDirectory() as folder:
            options = onnxruntime.SessionOptions()
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(folder) / label)
            session = onnxruntime.InferenceSession(
                str(path), options, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
            entry["providers"] = session.get_providers()
            reference = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            differences = []
            for batch in (1, 4):  # two batches through the one dynamic axis
                feed = synthetic_batch(inputs, batch, seed=batch)
                wanted = {node.name for node in session.get_inputs()}
                feed = {name: array for name, array in feed.items() if name in wanted}
                got = np.asarray(session.run(None, feed)[0], dtype=np.float32)
                expected = np.asarray(reference.run(None, feed)[0], dtype=np.float32)
                differences.append(float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-12)))
            entry["max_relative_difference_vs_cpu"] = max(differences)
            placement = _node_placement(Path(session.end_profiling()))
        entry["nodes"] = len(placement)
        by_provider: dict[str, int] = {}
        for node in placement.values():
            by_provider[node["provider"]] = by_provider.get(node["provider"], 0) + 1
        entry["nodes_by_provider"] = by_provider
        cpu = {name: node["op"] for name, node in placement.items()
               if node["provider"] == "CPUExecutionProvider"}
        entry["cpu_nodes"] = cpu
        entry["placement"] = {name: node["provider"] for name, node in placement.items()}
        heavy = sorted(name for name, op in cpu.items() if op in COMPUTE_OPS)
        if heavy:
            problems.append(f"{label}: compute nodes on the CPU ({', '.join(heavy[:5])})")
        if not by_provider.get("CUDAExecutionProvider"):
            problems.append(f"{label}: no node ran on the CUDA provider")
        if entry["max_relative_difference_vs_cpu"] > 1e-3:
            problems.append(f"{label}: CUDA output differs from the CPU's by "
                            f"{entry['max_relative_difference_vs_cpu']:.1e}")
    if problems:
        raise Failed("; ".join(problems), figures)
    return figures


def _node_placement(profile: Path) -> dict[str, dict[str, str]]:
    """Node name -> {"provider", "op"} from ONNX Runtime's profiling JSON (its per-node kernel
    events carry ``args.provider`` and ``args.op_name``)."""
    placement = {}
    for event in json.loads(profile.read_text()):
        args = event.get("args") or {}
        kernel = str(event.get("name", "")).endswith("_kernel_time")
        if event.get("cat") == "Node" and "provider" in args and kernel:
            placement[event["name"].removesuffix("_kernel_time")] = {"provider": args["provider"],
                                                                      "op": args.get("op_name", "")}
    return placement


def check_tensorrt_engines(context: CheckContext) -> dict[str, Any]:
    """FP16 engines for ResNet-18 and the small BERT built with autotune's builder, the raw
    inspector JSON saved, autotune's reading of it, and the engine timed on a dedicated
    stream against the default stream (where the runner's session enqueues)."""
    import torch  # noqa: PLC0415
    from autotune_plugins.tensorrt import engine_build as trt_build  # noqa: PLC0415
    from autotune_plugins.tensorrt import messages as trt_messages  # noqa: PLC0415
    from autotune_plugins.tensorrt import precision_proof as trt_proof  # noqa: PLC0415
    from autotune_plugins.tensorrt.runner import TrtRunner, tensorrt  # noqa: PLC0415

    from autotune.backend_api import RunConfig  # noqa: PLC0415
    from autotune.cache import file_sha256  # noqa: PLC0415

    trt = tensorrt()
    figures: dict[str, Any] = {"tensorrt": trt.__version__}
    problems = []
    runner = TrtRunner()
    device = runner.device("cuda")
    for label, entry, source, _ in _exported_models(figures, problems):
        config = RunConfig("infer", "fp16", 8, None)
        try:
            prepared = runner.prepare(source, config.preparation(_model_inputs(source)), device, 8)
        except Exception as error:  # noqa: BLE001
            entry["prepare"] = _first_line(error)
            problems.append(f"{label}: prepare failed")
            continue
        # autotune's own verdict: the runner's session proves the precision from the inspector.
        try:
            session = runner.open(prepared, config)
            entry["autotune_session"] = {"opened": True, "model_file": prepared.model_file.describe()
                                         if prepared.model_file else None,
                                         "stream_handle": prepared.device.stream_handle()}
            session.close()
        except Exception as error:  # noqa: BLE001 - a refusal is a finding (issue 24 items 6, 7)
            entry["autotune_session"] = {"opened": False, "reason": _first_line(error)}
        logger = trt_messages.process_logger(trt)
        request = trt_build.EngineRequest(
            onnx_path=prepared.onnx_path, onnx_sha256=file_sha256(prepared.onnx_path), precision="fp16",
            input_shapes=prepared.profile_shapes(8), workspace_bytes=prepared.workspace_bytes(None),
            optimization_level=3, tf32=False, gpu_name=prepared.device.name(),
            compute_capability=prepared.device.compute_capability(), users_file=False)
        try:
            plan = trt_build.build_engine(trt, request)
        except Exception as error:  # noqa: BLE001 - this model's build failing is its row's finding
            entry["build"] = _first_line(error)
            problems.append(f"{label}: the FP16 build failed")
            continue
        engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
        context_ = None if engine is None else engine.create_execution_context()
        if engine is None or context_ is None:
            entry["engine"] = "; ".join(logger.errors()) or "TensorRT gave no engine or context"
            problems.append(f"{label}: no engine")
            continue
        names = [engine.get_tensor_name(index) for index in range(engine.num_io_tensors)]
        inputs = [name for name in names if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT]
        for name in inputs:
            context_.set_input_shape(name, prepared.shape_of(name, 8))
        inspector = engine.create_engine_inspector()
        inspector.execution_context = context_
        information = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
        saved = context.artifacts / f"tensorrt-{label}-fp16-inspector.json"
        saved.write_text(information)
        entry["inspector_json"] = saved.name
        layers = trt_proof.layer_precisions(information)
        entry["autotune_reads"] = layers.describe()
        try:
            trt_proof.prove_precision("fp16", layers, logger.warnings())
            entry["proven_fp16"] = True
        except Exception as error:  # noqa: BLE001
            entry["proven_fp16"] = _first_line(error)
        buffers = {}
        for name in names:
            shape = tuple(context_.get_tensor_shape(name))
            dtype = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
                     trt.DataType.INT64: torch.int64, trt.DataType.INT32: torch.int32,
                     }[engine.get_tensor_dtype(name)]
            # Integer inputs are token ids and masks: ones are valid for both (no position masked).
            integer = dtype in (torch.int64, torch.int32)
            buffers[name] = (torch.ones(shape, dtype=dtype, device="cuda") if integer
                             else torch.randn(shape, device="cuda").to(dtype))
            context_.set_tensor_address(name, buffers[name].data_ptr())
        entry["timing_ms"] = {"dedicated_stream": _time_engine(torch, context_, torch.cuda.Stream()),
                              "default_stream": _time_engine(torch, context_, torch.cuda.default_stream())}
        entry["warnings"] = [text for text in logger.warnings() if "default stream" in text.lower()][:3]
        prepared.close()
    if problems:
        raise Failed("; ".join(problems), figures)
    return figures


def _time_engine(torch, context, stream, runs: int = 50) -> float:
    """Median milliseconds of ``runs`` enqueues on ``stream``, timed with events on it."""
    for _ in range(5):
        context.execute_async_v3(stream.cuda_stream)
    times = []
    for _ in range(runs):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(stream)
        context.execute_async_v3(stream.cuda_stream)
        stop.record(stream)
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return round(sorted(times)[len(times) // 2], 4)


def check_memory_two_precisions(context: CheckContext) -> dict[str, Any]:
    """ResNet-18 at batch 8, FP32 then FP16 back to back in one process, through each backend's
    runner (ONNX Runtime on its CUDA and on its TensorRT provider, TensorRT, torch): the figure
    the runner reports (``peak_memory_bytes``) beside NVML's per-process reading and the torch
    allocator's, before, after the steps and after closing. A runtime not installed here is
    said, not failed; one that is installed and does not run is a failure."""
    from autotune import plugins  # noqa: PLC0415
    from autotune.backend_api import RunConfig  # noqa: PLC0415
    from autotune.model.source import parse_model  # noqa: PLC0415
    from autotune.model.stats import reference_models  # noqa: PLC0415

    source, inputs = parse_model("resnet18"), reference_models()["resnet18"].inputs
    figures: dict[str, Any] = {}
    runs = (("onnxruntime", "onnxruntime", {}), ("onnxruntime_tensorrt_provider", "onnxruntime",
                                                 {"provider": "tensorrt"}),
            ("tensorrt", "tensorrt", {}), ("torch", "torch", {}))
    for label, name, options in runs:
        _, backend = plugins.backends()[name]
        if backend.installed_version() is None:
            figures[label] = backend.not_installed()
            continue
        if options.get("provider") == "tensorrt":
            from autotune_plugins.onnxruntime import sessions  # noqa: PLC0415

            problem = sessions.gpu_provider_problem("tensorrt")
            if problem is not None:  # no TensorRT libraries here: said, as "not installed" is
                figures[label] = f"the TensorRT provider does not run here: {problem}"
                continue
        entry: dict[str, Any] = figures.setdefault(label, {})
        try:
            runner = backend.load_runner()
            device = runner.device("cuda")
        except Exception as error:  # noqa: BLE001 - unavailable here: said, the others go on
            entry["unavailable"] = _first_line(error)
            continue
        for precision in ("fp32", "fp16"):
            config = RunConfig("infer", precision, 8, 224).with_options(**options)
            row = entry.setdefault(precision, {"before": _memory_readings()})
            try:
                prepared = runner.prepare(source, config.preparation(inputs.at(224)), device, 8)
                session = runner.open(prepared, config, None)
                for _ in range(5):
                    session.step()
                clock = session.clock()
                clock.start()
                clock.stop()  # waits for the steps' device work
                row["session_reports_bytes"] = session.peak_memory_bytes()
                row["after_steps"] = after = _memory_readings()
                before = row["before"].get("nvml_this_process_bytes")
                if before is not None and after.get("nvml_this_process_bytes") is not None:
                    # What this configuration added, beside what the runner reports as its peak.
                    row["nvml_increment_bytes"] = after["nvml_this_process_bytes"] - before
                session.close()
                prepared.close()
                row["after_close"] = _memory_readings()
            except Exception as error:  # noqa: BLE001
                row["error"] = _first_line(error)
    broken = [f"{name}: {entry['unavailable']}" for name, entry in figures.items()
              if isinstance(entry, dict) and "unavailable" in entry]
    broken += [f"{name} {precision}: {row['error']}" for name, entry in figures.items()
               if isinstance(entry, dict)
               for precision, row in entry.items() if isinstance(row, dict) and "error" in row]
    if broken:
        raise Failed("; ".join(broken), figures)
    return figures


def _memory_readings() -> dict[str, Any]:
    """NVML's per-process figures on the first visible GPU (this process's, and every PID
    seen: a container shows host PIDs) and the torch allocator's, where torch is there."""
    import pynvml  # noqa: PLC0415

    from autotune.hardware.probe import probe  # noqa: PLC0415

    readings: dict[str, Any] = {"pid": os.getpid()}
    gpus = probe().gpus
    if gpus:
        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(gpus[0].index)
            processes = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
            readings["nvml_processes"] = {str(p.pid): p.usedGpuMemory for p in processes}
            readings["nvml_this_process_bytes"] = next(
                (p.usedGpuMemory for p in processes if p.pid == os.getpid()), None)
            readings["nvml_device_used_bytes"] = int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
        finally:
            pynvml.nvmlShutdown()
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.cuda.is_initialized():
            readings["torch_allocated_bytes"] = torch.cuda.memory_allocated()
            readings["torch_max_allocated_bytes"] = torch.cuda.max_memory_allocated()
            readings["torch_reserved_bytes"] = torch.cuda.memory_reserved()
    return readings


CHECKS: tuple[Check, ...] = (
    Check("runtimes", check_runtimes, 60, "nvidia-smi, torch CUDA, ORT providers (one-node CUDA and "
          "TensorRT sessions), TensorRT, ORT's libnvinfer", gpu=False),
    Check("nvml_recording", check_nvml_recording, 30, "autotune probe --record tests/nvml/<gpu-name>.yaml"),
    Check("pytest_gpu", check_pytest_gpu, 180, "pytest -m 'gpu or tensorrt'", needs=("pytest",)),
    Check("tf32_readers", check_tf32_readers, 40, "every TF32 reader after each of autotune's TF32 settings",
          needs=("torch",)),
    Check("onnx_placement", check_onnx_placement, 90, "dynamic-batch BERT and ResNet-18 in ORT's CUDA "
          "provider, every node's placement", needs=("torch", "onnxruntime", "onnx", "onnxscript")),
    Check("memory_two_precisions", check_memory_two_precisions, 90, "FP32 then FP16 on each backend: "
          "the runner's peak beside NVML's and the allocator's", needs=("torch",)),
    Check("tensorrt_engines", check_tensorrt_engines, 120, "FP16 engines for ResNet-18 and BERT: "
          "inspector JSON, timed on a dedicated stream", needs=("tensorrt", "torch", "onnxruntime")),
    Check("torch_compile", check_torch_compile, 120, "torch.compile(mode='max-autotune') on Linear+Conv "
          "with TF32 on", needs=("torch",)),
)


# --- running the checks ----------------------------------------------------------------------


def _reference(run: Callable[..., Any]) -> tuple[str, str]:
    """The module and name a check's process imports ``run`` by (this file is ``gpu_check``
    there, whether it runs as a script or was imported)."""
    module = run.__module__
    return ("gpu_check" if module in ("__main__", "__mp_main__") else module), run.__qualname__


def child_main(module: str, name: str, context_json: str, result_path: str) -> None:
    """A check in its own process (see :func:`run_check`): its outcome to ``result_path``."""
    described = json.loads(context_json)
    context = CheckContext(Path(described["artifacts"]), described["limit_s"], described["gpu_name"])
    figures: dict[str, Any] = {}
    try:
        run: Any = importlib.import_module(module)
        for part in name.split("."):
            run = getattr(run, part)
        figures = run(context)
        status, reason = Status.OK, ""
    except Skipped as skipped:
        status, reason = Status.SKIPPED, str(skipped)
    except Failed as failed:
        status, reason, figures = Status.FAILED, str(failed), failed.figures
    except BaseException as error:  # noqa: BLE001 - any failure is the check's row, not a crash
        status, reason = Status.FAILED, _first_line(error)
        figures = {"traceback": traceback.format_exc()[-4000:]}
    # Whole or absent: the parent reads it only once this process is gone.
    partial = Path(f"{result_path}.part")
    outcome = {"status": status.value, "reason": reason, "figures": figures}
    partial.write_text(json.dumps(outcome, default=str))
    os.replace(partial, result_path)


def _log_tail(path: Path, characters: int = 3000) -> str:
    try:
        return path.read_text("utf-8", "replace")[-characters:]
    except OSError:
        return ""


def run_check(check: Check, context: CheckContext) -> CheckResult:
    """``check`` in a Python process of its own (a session of its own too, so that at
    ``context.limit_s`` it is killed with whatever it started, pytest or a compiler), its
    output to a log whose tail a failed row keeps. The process gets this one's ``sys.path``,
    as multiprocessing's spawn would, without re-importing this process's main module."""
    started = time.monotonic()
    module, name = _reference(check.run)
    described = json.dumps({"artifacts": str(context.artifacts), "limit_s": context.limit_s,
                            "gpu_name": context.gpu_name})
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parent), *(entry for entry in sys.path if entry)])}
    with tempfile.TemporaryDirectory() as folder:
        result_path, log_path = Path(folder) / "result.json", Path(folder) / "log.txt"
        command = [sys.executable, "-c", "import sys, gpu_check; gpu_check.child_main(*sys.argv[1:])",
                   module, name, described, str(result_path)]
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, env=environment, start_new_session=True)
            try:
                process.wait(context.limit_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return CheckResult(check.name, Status.FAILED, f"timed out after {context.limit_s:.0f} s",
                                   {"log_tail": _log_tail(log_path)}, context.limit_s,
                                   time.monotonic() - started)
        seconds = time.monotonic() - started
        if not result_path.is_file():
            return CheckResult(check.name, Status.FAILED, f"the check's process died (exit code "
                               f"{process.returncode}) before reporting", {"log_tail": _log_tail(log_path)},
                               context.limit_s, seconds)
        outcome = json.loads(result_path.read_text())
        figures = outcome["figures"]
        if outcome["status"] == Status.FAILED.value:
            figures = {**figures, "log_tail": _log_tail(log_path)}
    status = Status(outcome["status"])
    return CheckResult(check.name, status, outcome["reason"], figures, context.limit_s, seconds,
                       SkipCause.CHECK if status is Status.SKIPPED else None)


def _why_skipped(check: Check, gpu_reason: str | None, only: Collection[str]
                 ) -> tuple[SkipCause, str] | None:
    if only and check.name not in only:
        return SkipCause.NOT_SELECTED, "not selected (--only)"
    missing = [name for name in check.needs if importlib.util.find_spec(name) is None]
    if missing:
        return SkipCause.NOT_INSTALLED, f"not installed: {', '.join(missing)}"
    if check.gpu and gpu_reason is not None:
        return SkipCause.NO_GPU, f"no GPU: {gpu_reason}"
    return None


def run_checks(checks: Sequence[Check], artifacts: Path, gpu_name: str | None, gpu_reason: str | None,
               total_s: float = TOTAL_LIMIT_S, on_result: Callable[[CheckResult], None] | None = None,
               only: Collection[str] = (), clock: Callable[[], float] = time.monotonic) -> list[CheckResult]:
    """Every check in order, each under ``min(its limit, what is left of total_s)``; one that
    cannot run here, or that the bound leaves no time for, is a skipped row saying why."""
    deadline = clock() + total_s - REPORT_RESERVE_S
    results = []
    for check in checks:
        why = _why_skipped(check, gpu_reason, only)
        left = deadline - clock()
        if why is None and left < MIN_CHECK_S:
            why = SkipCause.NO_TIME, f"the {total_s:.0f} s bound left {max(left, 0):.0f} s"
        if why is not None:
            result = CheckResult(check.name, Status.SKIPPED, why[1], limit_s=check.limit_s, skip_cause=why[0])
        else:
            result = run_check(check, CheckContext(artifacts, min(check.limit_s, left), gpu_name))
        results.append(result)
        if on_result:
            on_result(result)
    return results


# --- the report ------------------------------------------------------------------------------


def _git_commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10)
        if done.returncode == 0:
            return done.stdout.strip()
    return None


def report_stem(host: str, day: datetime.date) -> str:
    """``gpu-check-<host>-<date>``, the host reduced to letters, digits, '.', '_' and '-'."""
    return f"gpu-check-{re.sub(r'[^A-Za-z0-9._-]+', '_', host)}-{day.isoformat()}"


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# gpu-check on {report['host']}, {report['date']}", "",
             f"- machine: {report['machine']}",
             f"- GPU: none: {report['gpu_reason']}" if report["gpu_reason"] else "- GPU: yes",
             f"- autotune {report['autotune_version']}, commit {report['commit'] or 'unknown'}",
             f"- {report['elapsed_s']} s of the {report['total_limit_s']:.0f} s bound", ""]
    if report["to_commit"]:
        lines += ["Commit: " + ", ".join(f"`{path}`" for path in report["to_commit"]), ""]
    lines += ["| check | status | seconds (limit) | reason |", "| --- | --- | --- | --- |"]
    for row in report["checks"]:
        reason = row["reason"].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {row['name']} | {row['status']} | {row['seconds']} ({row['limit_s']}) | {reason} |")
    for row in report["checks"]:
        if row["figures"]:
            lines += ["", f"## {row['name']}", "", "```json",
                      json.dumps(row["figures"], indent=2, default=str)[:20000], "```"]
    return "\n".join(lines) + "\n"


def _shown_path(path: Path) -> str:
    """``path`` relative to the repository where it is inside it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def write_reports(report: dict[str, Any], out: Path, stem: str) -> tuple[Path, Path]:
    """The JSON and Markdown reports, each written whole or not at all."""
    from autotune.recommendation.formats import write_atomically  # noqa: PLC0415

    json_path, markdown_path = out / f"{stem}.json", out / f"{stem}.md"
    write_atomically(json_path, json.dumps(report, indent=2, default=str) + "\n")
    write_atomically(markdown_path, markdown(report))
    return json_path, markdown_path


def main(argv: Sequence[str] | None = None, checks: Sequence[Check] = CHECKS,
         total_s: float = TOTAL_LIMIT_S) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for the reports (default benchmarks/results; created if missing)")
    parser.add_argument("--only", default="",
                        help="comma-separated check names to run; the others are skipped")
    arguments = parser.parse_args(argv)
    names = [check.name for check in checks]
    only = [name.strip() for name in arguments.only.split(",") if name.strip()]
    unknown = [name for name in only if name not in names]
    if unknown:
        print(f"gpu_check: unknown check {', '.join(unknown)}; one of {', '.join(names)}", file=sys.stderr)
        return 2
    out: Path = arguments.out
    if out.exists() and not out.is_dir():
        print(f"gpu_check: --out {out} is a file; give a folder", file=sys.stderr)
        return 2
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    from autotune import __version__  # noqa: PLC0415
    from autotune.hardware.probe import probe  # noqa: PLC0415

    machine = probe()
    gpu_reason = None if machine.gpus else (machine.note or "NVML shows no GPU")
    host, now = socket.gethostname(), datetime.datetime.now(datetime.timezone.utc)
    stem = report_stem(host, now.date())
    artifacts = out / stem
    artifacts.mkdir(exist_ok=True)
    def shown(result: CheckResult) -> None:
        reason = f": {result.reason}" if result.reason else ""
        print(f"gpu_check: {result.name} {result.status.value} ({result.seconds:.1f} s){reason}", flush=True)

    results = run_checks(checks, artifacts, machine.gpus[0].name if machine.gpus else None, gpu_reason,
                         total_s, shown, only)
    saved = sorted(str(path.relative_to(out)) for path in artifacts.iterdir())
    if not saved:
        artifacts.rmdir()
    to_commit = [_shown_path(out / f"{stem}.{suffix}") for suffix in ("json", "md")] if machine.gpus else []
    to_commit += [f"tests/nvml/{row.figures['copy']}" for row in results
                  if row.name == "nvml_recording" and row.status is Status.OK]
    report = {"host": host, "date": now.isoformat(timespec="seconds"), "machine": machine.summary(),
              "gpu_reason": gpu_reason, "autotune_version": __version__, "commit": _git_commit(),
              "total_limit_s": total_s, "elapsed_s": round(time.monotonic() - started, 1),
              "checks": [row.to_dict() for row in results], "artifacts": saved, "to_commit": to_commit}
    json_path, markdown_path = write_reports(report, out, stem)
    print(f"gpu_check: wrote {json_path} and {markdown_path}"
          + ("" if machine.gpus else " (no GPU: nothing to commit)"))
    return 1 if any(row.status is Status.FAILED for row in results) else 0


if __name__ == "__main__":
    sys.exit(main())
