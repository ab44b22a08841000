"""The flat facts rules are written against, derived from a :class:`Machine` and the inputs.

Every fact always has a value of one type, on a CPU-only machine too (``gpu.count`` is 0,
``gpu.precisions`` lists what the CPU runs well), so a rule never meets a missing fact.
Decisions made earlier in the same recommendation are facts too, under their own name.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from autotune.hardware import gpu_database as gpudb
from autotune.types import PRECISIONS, Gpu, Machine

if TYPE_CHECKING:
    from autotune.model.stats import ModelStats

#: fact name -> what it means (shown by ``autotune rules --facts``).
FACTS: dict[str, str] = {
    "task": "what the model is run for: 'infer' or 'train'",
    "objective": "'throughput' (samples/s) or 'latency' (ms per request)",
    "tier": "'accuracy', 'balanced' or 'low-resource' (S000-5)",
    "gpu.count": "number of NVIDIA GPUs (0 on a CPU-only machine)",
    "gpu.name": "the GPU decisions are sized for (the one with the least memory)",
    "gpu.architecture": "its family: kepler, maxwell, pascal, volta, turing, ampere, ada, hopper, blackwell",
    "gpu.cc": "its compute capability as a number, e.g. 8.6",
    "gpu.vram_gb": "its total memory in GiB (a MIG slice's when MIG is on)",
    "gpu.free_vram_gb": "its free memory in GiB when probed",
    "gpu.tensor_cores": "true when it has Tensor Cores (from the spec database, S003-2)",
    "gpu.precisions": "the precisions it runs well, e.g. ['fp32', 'fp16', 'int8'] (on a CPU-only "
                      "machine, the CPU's: fp32, int8, and bf16 where it has native BF16)",
    "gpu.fp16_tflops": "its dense FP16 Tensor Core TFLOPS (FP32 TFLOPS without; 0 if unknown)",
    "gpu.bandwidth_gb_s": "its memory bandwidth in GB/s (0 if unknown)",
    "gpu.nvlink_links": "active NVLink links on the least-connected GPU",
    "gpu.mixed": "true when the GPUs are not all the same model",
    "gpu.mig": "true when MIG slices the GPU",
    "gpu.form_factor": "desktop, laptop, datacenter, embedded or unknown",
    "host.cpu_cores": "CPU cores this process may use (affinity and container quota)",
    "host.simulated_gpu": "true when the GPU is simulated (--gpu) on this machine's CPU: the host "
                          "figures are this machine's, not those of the GPU's own host",
    "host.physical_cores": "physical CPU cores",
    "host.ram_gb": "system memory in GiB",
    "model.known": "true when --model names a model whose stats are known",
    "model.family": "'cnn', 'transformer', 'other', or 'unknown' without --model",
    "model.parameters_m": "the model's parameters in millions (0 without --model)",
    "model.kind": "what it takes: 'image' (a resolution), 'text' (a sequence length), 'audio' "
                  "(frames), several joined by '+' ('image+text' for CLIP, 'audio+text' for "
                  "Whisper), 'other', or 'unknown' without --model",
    "model.kinds": "the kinds it takes as a list, e.g. ['image', 'text'] ([] without --model)",
    "model.native_resolution": "its input's native size in pixels (224, the S000-5 tiers' size, "
                               "for a model without an image input or without --model)",
    "model.sequence_length": "its input's sequence length (0 without one)",
    "model.fixed_batch": "the batch its graph is fixed to (an ONNX export), 0 when free",
    "model.image_list": "true when its forward takes a list of images (torchvision detection and "
                        "segmentation), which no ONNX export of autotune's takes",
    "backends.installed": "the registered backends whose framework is installed here, e.g. "
                          "['onnxruntime', 'torch'] (found, never imported)",
}


def installed_backends() -> list[str]:
    """Registered backends whose framework is installed, sorted: found by import name, so
    asking costs no framework import."""
    from autotune import plugins  # noqa: PLC0415 - the registry loads entry points

    return sorted(name for name, (_, backend) in plugins.backends().items()
                  if importlib.util.find_spec(backend.framework) is not None)


def model_facts(stats: ModelStats | None) -> dict[str, Any]:
    if stats is None:
        return {"model.known": False, "model.family": "unknown", "model.parameters_m": 0.0,
                "model.kind": "unknown", "model.kinds": [],
                "model.native_resolution": 224, "model.sequence_length": 0,
                "model.fixed_batch": 0, "model.image_list": False}
    return {"model.known": True, "model.family": stats.family,
            "model.parameters_m": round(stats.parameters / 1e6, 2),
            "model.kind": stats.kind,
            "model.kinds": list(stats.inputs.kinds),
            "model.native_resolution": stats.native_resolution or 224,
            "model.sequence_length": stats.inputs.sequence_length or 0,
            "model.fixed_batch": stats.inputs.fixed_batch or 0,
            "model.image_list": stats.inputs.image_list}


def _sizing_gpu(gpus: tuple[Gpu, ...]) -> Gpu:
    # Data-parallel replicas run the same configuration: the smallest GPU must fit it.
    return min(gpus, key=lambda gpu: _usable_vram_bytes(gpu))


def _usable_vram_bytes(gpu: Gpu) -> int:
    """A process on a MIG-enabled GPU sees one slice: size for the smallest."""
    if gpu.mig_enabled and gpu.mig_slices:
        return min(mig.memory_total_bytes for mig in gpu.mig_slices)
    return gpu.vram_total_bytes


def machine_facts(machine: Machine, task: str, objective: str, tier: str,
                  model: ModelStats | None = None) -> dict[str, Any]:
    facts: dict[str, Any] = model_facts(model) | {
        "backends.installed": installed_backends(),
        "task": task,
        "objective": objective,
        "tier": tier,
        "host.cpu_cores": machine.host.available_cores,
        "host.simulated_gpu": machine.simulated and machine.host_probed,
        "host.physical_cores": machine.host.physical_cores,
        "host.ram_gb": round(machine.host.ram_bytes / 2**30, 1),
    }
    if not machine.gpus:
        return facts | {
            "gpu.count": 0,
            "gpu.name": "none",
            "gpu.architecture": "none",
            "gpu.cc": 0.0,
            "gpu.vram_gb": 0.0,
            "gpu.free_vram_gb": 0.0,
            "gpu.tensor_cores": False,
            "gpu.precisions": [p for p in PRECISIONS if p in gpudb.cpu_precisions()
                               or (p == "bf16" and machine.host.bf16)],
            "gpu.fp16_tflops": 0.0,
            "gpu.bandwidth_gb_s": 0.0,
            "gpu.nvlink_links": 0,
            "gpu.mixed": False,
            "gpu.mig": False,
            "gpu.form_factor": "none",
        }
    gpu = _sizing_gpu(machine.gpus)
    spec = gpudb.spec_named(gpu.spec_name)
    usable_bytes = _usable_vram_bytes(gpu)
    fp16_tflops = 0.0
    if spec is not None:
        fp16_tflops = spec.tensor_tflops.get("fp16", spec.fp32_tflops)
    # Precisions every GPU runs: one configuration must run on all of them.
    shared_precisions = [
        p for p in gpu.precisions if all(p in other.precisions for other in machine.gpus)
    ]
    try:
        cc = float(gpu.compute_capability)
    except ValueError:
        cc = 0.0
    return facts | {
        "gpu.count": len(machine.gpus),
        "gpu.name": gpu.spec_name or gpu.name,
        "gpu.architecture": gpu.architecture,
        "gpu.cc": cc,
        "gpu.vram_gb": round(usable_bytes / 2**30, 2),
        "gpu.free_vram_gb": round(min(gpu.vram_free_bytes, usable_bytes) / 2**30, 2),
        "gpu.tensor_cores": all(other.tensor_cores for other in machine.gpus),
        "gpu.precisions": shared_precisions,
        "gpu.fp16_tflops": fp16_tflops,
        "gpu.bandwidth_gb_s": gpu.memory_bandwidth_gb_s or 0.0,
        "gpu.nvlink_links": min(other.nvlink_active_links for other in machine.gpus),
        "gpu.mixed": len({(g.spec_name or g.name, g.vram_total_bytes) for g in machine.gpus}) > 1,
        "gpu.mig": any(other.mig_enabled for other in machine.gpus),
        "gpu.form_factor": spec.form_factor if spec else "unknown",
    }
