"""``autotune inspect``: a model's stats, its lightweight verdict, and what it costs on a GPU."""

from __future__ import annotations

from typing import Any

from autotune.hardware import gpu_database as gpudb
from autotune.hardware.gpu_database import GpuSpec
from autotune.model import memory as memory_model
from autotune.model import throughput
from autotune.model.stats import ModelStats, lightweight_verdict
from autotune.recommendation.facts import machine_facts
from autotune.types import Machine

GIB = 2**30


def inspection(stats: ModelStats, machine: Machine, resolution: int | None,
               optimizer: str, headroom: float) -> dict[str, Any]:
    """Everything ``inspect`` shows, as plain values (its ``--json`` output)."""
    if not stats.native_resolution:
        resolution = None
    elif resolution is None or stats.fixed_resolution:
        resolution = stats.native_resolution
    at = stats.at(resolution)
    verdict, explanation = lightweight_verdict(stats, resolution)
    report: dict[str, Any] = {
        "name": stats.name,
        "source": stats.source,
        "family": stats.family,
        "convolution_flops_share": stats.convolution_flops_share,
        "attention_flops_share": stats.attention_flops_share,
        "kind": stats.kind,
        "parameters": stats.parameters,
        "input_shape": list(stats.input_shape),
        "inputs": stats.inputs.to_dict()["inputs"],
        "input_description": stats.inputs.describe(),
        "guesses": list(stats.inputs.guesses),
        "fixed_batch": stats.inputs.fixed_batch,
        "figures_from": stats.method,
        "output_used": stats.output or None,
        "resolution": resolution,
        "sequence_length": stats.inputs.sequence_length,
        "frames": stats.inputs.frames,
        "fixed_resolution": stats.fixed_resolution,
        "file_size_mb": stats.file_sizes_mb(),
        "flops_per_sample": at.flops_per_sample,
        "activation_mb_per_sample": {
            "infer": {k: round(v / 2**20, 2) for k, v in at.infer_activation_bytes.items()},
            "train": {k: round(v / 2**20, 2) for k, v in at.train_activation_bytes.items()},
        },
        "lightweight": verdict,
        "lightweight_reason": explanation,
    }
    if stats.trainable:
        state = memory_model.training_state_bytes(stats, optimizer, amp=True)
        report["training_state_gb"] = {"optimizer": optimizer} | {
            part: round(size / GIB, 3) for part, size in state.items()}
    if not machine.gpus:
        report["gpu"] = None
        return report
    facts = machine_facts(machine, "infer", "throughput", "balanced", stats)
    spec = gpudb.spec_named(facts["gpu.name"])
    usable = memory_model.usable_bytes(facts["gpu.free_vram_gb"] * GIB, headroom)
    per_precision = {}
    for precision in facts["gpu.precisions"]:
        if precision == "tf32":
            continue
        largest = memory_model.max_batch(stats, usable, resolution, precision, "infer", optimizer)
        if stats.inputs.fixed_batch is not None:  # the graph runs at its own batch or not at all
            largest = stats.inputs.fixed_batch if largest >= stats.inputs.fixed_batch else 0
        row: dict[str, Any] = {"largest_infer_batch": largest}
        if stats.trainable and precision in ("fp32", "bf16", "fp16"):
            row["largest_train_batch"] = memory_model.max_batch(stats, usable, resolution, precision,
                                                                "train", optimizer)
        if spec is not None:
            ceiling = memory_model.roofline(stats, spec, resolution, precision)
            row["roofline_samples_s"] = round(ceiling.ceiling_samples_s, 1)
            row["compute_bound_samples_s"] = round(ceiling.compute_samples_s, 1)
            row["memory_bound_samples_s"] = round(ceiling.memory_samples_s, 1)
            row["bound"] = ceiling.bound
            row.update(_predicted(stats, spec, resolution, precision, largest))
        per_precision[precision] = row
    report["gpu"] = {"name": facts["gpu.name"], "usable_gb": round(usable / GIB, 2),
                     "by_precision": per_precision}
    return report


#: The batch inspect predicts throughput at when more fits: timm's benchmark batch.
THROUGHPUT_BATCH = 256


def _predicted(stats: ModelStats, spec: GpuSpec, resolution: int | None, precision: str,
               largest: int) -> dict[str, Any]:
    """PyTorch's predicted throughput at the largest batch up to 256 and latency at batch 1,
    where published figures cover the precision (autotune/model/throughput.py)."""
    if largest < 1:
        return {}
    batch = min(largest, THROUGHPUT_BATCH)
    at_batch = throughput.predict(stats, spec, precision=precision, batch=batch, resolution=resolution)
    single = throughput.predict(stats, spec, precision=precision, batch=1, resolution=resolution)
    if at_batch is None or single is None:
        return {}
    return {"predicted_batch": batch, "predicted_samples_s": round(at_batch.samples_s, 1),
            "predicted_samples_s_range": [round(value, 1) for value in at_batch.samples_s_range],
            "predicted_latency_ms_batch_1": round(single.latency_ms, 3),
            "predicted_latency_ms_batch_1_range": [round(value, 3) for value in single.latency_ms_range]}


def render_text(report: dict[str, Any]) -> str:
    lines = [f"{report['name']}: {report['source']} ({report['family']}, {report['kind']} input)"]
    fixed = ", fixed size" if report["fixed_resolution"] else ""
    lines.append(f"  parameters {report['parameters']:,}; inputs {report['input_description']}{fixed}")
    lines += [f"  guessed: {guess}" for guess in report["guesses"]]
    if report["output_used"]:
        lines.append(f"  output compared for accuracy: {report['output_used']}")
    lines.append(f"  figures from: {report['figures_from']}")
    sizes = ", ".join(f"{k.upper()} {v} MB" for k, v in report["file_size_mb"].items())
    lines.append(f"  weights on disk: {sizes}")
    sizes_at = [f"{report[key]} {unit}" for key, unit in
                (("resolution", "px"), ("frames", "frames"), ("sequence_length", "tokens")) if report[key]]
    at = f" at {' and '.join(sizes_at)}" if sizes_at else ""
    lines.append(f"  FLOPs per sample{at}: {report['flops_per_sample'] / 1e9:.3f} G "
                 f"({report['flops_per_sample'] / 2e9:.3f} GMACs)")
    if report["convolution_flops_share"] is not None and report["attention_flops_share"] is not None:
        lines.append(f"  family {report['family']}: {report['convolution_flops_share']:.0%} of FLOPs in "
                     f"convolutions, {report['attention_flops_share']:.0%} in attention layers")
    activations = report["activation_mb_per_sample"]
    for task in ("infer", "train"):
        if activations[task]:
            values = ", ".join(f"{k.upper()} {v} MB" for k, v in activations[task].items())
            kind = "peak live" if task == "infer" else "saved for backward"
            lines.append(f"  activations per sample, {task} ({kind}): {values}")
    if "training_state_gb" in report:
        state = report["training_state_gb"]
        lines.append(f"  training state ({state['optimizer']}): weights {state['weights']} GB, "
                     f"gradients {state['gradients']} GB, optimizer {state['optimizer_states']} GB, "
                     f"AMP weight copies {state['amp_weight_copies']} GB")
    lines.append(f"  lightweight verdict: {report['lightweight_reason']}")
    gpu = report["gpu"]
    if gpu is None:
        lines.append("  no GPU: roofline and batch limits need one (try --gpu NAME)")
        return "\n".join(lines)
    lines.append(f"  on {gpu['name']} ({gpu['usable_gb']} GB usable):")
    for precision, row in gpu["by_precision"].items():
        parts = [f"infer batch <= {row['largest_infer_batch']}" if report["fixed_batch"] is None
                 else f"infer batch {report['fixed_batch']} (fixed) fits" if row["largest_infer_batch"]
                 else f"infer batch {report['fixed_batch']} (fixed) does not fit"]
        if "largest_train_batch" in row:
            parts.append(f"train batch <= {row['largest_train_batch']}")
        if "roofline_samples_s" in row:
            unfused = min(row["compute_bound_samples_s"], row["memory_bound_samples_s"])
            parts.append(f"roofline {row['roofline_samples_s']:,.0f}/s at peak FLOPs "
                         f"({unfused:,.0f} unfused, {row['bound']}-bound)")
        lines.append(f"    {precision:<5} " + "; ".join(parts))
        if "predicted_samples_s" in row:
            low, high = row["predicted_samples_s_range"]
            lines.append(f"          PyTorch predicted {row['predicted_samples_s']:,.0f} samples/s at batch "
                         f"{row['predicted_batch']} ({low:,.0f}-{high:,.0f}), "
                         f"{row['predicted_latency_ms_batch_1']:.2f} ms at batch 1")
    return "\n".join(lines)
