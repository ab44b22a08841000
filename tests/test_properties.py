"""Property tests: monotone in VRAM, never a precision the GPU cannot run."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from autotune.hardware import gpu_database as gpudb
from autotune.recommendation.engine import recommend
from tests.conftest import HOST

SPECS = gpudb.all_specs()
INPUTS = st.fixed_dictionaries({
    "task": st.sampled_from(["infer", "train"]),
    "objective": st.sampled_from(["throughput", "latency"]),
    "tier": st.sampled_from(["accuracy", "balanced", "low-resource"]),
})


def machine_with_vram(spec: gpudb.GpuSpec, vram_gib: float, count: int = 1):
    gpu = gpudb.simulated_gpu(spec, 0)
    vram_bytes = int(vram_gib * 2**30)
    gpu = dataclasses.replace(gpu, vram_total_bytes=vram_bytes, vram_free_bytes=vram_bytes)
    machine = gpudb.simulate([spec.name] * count, HOST)
    return dataclasses.replace(machine, gpus=tuple(
        dataclasses.replace(gpu, index=index) for index in range(count)))


@settings(max_examples=300, deadline=None)
@given(spec=st.sampled_from(SPECS), inputs=INPUTS,
       smaller=st.floats(min_value=1, max_value=200), extra=st.floats(min_value=0, max_value=200),
       count=st.integers(min_value=1, max_value=8))
def test_more_vram_never_gives_a_smaller_batch_or_resolution(spec, inputs, smaller, extra, count):
    small = recommend(machine_with_vram(spec, smaller, count), inputs).settings
    large = recommend(machine_with_vram(spec, smaller + extra, count), inputs).settings
    assert large["batch_size"] >= small["batch_size"]
    assert large["resolution"] >= small["resolution"]


@settings(max_examples=300, deadline=None)
@given(names=st.lists(st.sampled_from([spec.name for spec in SPECS]), min_size=1, max_size=4),
       inputs=INPUTS)
def test_no_recommendation_names_a_precision_the_gpus_cannot_run(names, inputs):
    machine = gpudb.simulate(names, HOST)
    settings_ = recommend(machine, inputs).settings
    runs_everywhere = set.intersection(*(set(gpu.precisions) for gpu in machine.gpus))
    for decision in ("precision", "alternative_precision", "quantization"):
        assert settings_[decision] in runs_everywhere | {"none"}, (decision, settings_[decision])
    if settings_["tf32"]:
        assert "tf32" in runs_everywhere
    amp_precision = {"float16": "fp16", "bfloat16": "bf16"}.get(settings_["amp_dtype"])
    assert amp_precision is None or amp_precision in runs_everywhere
    if settings_["grad_scaler"]:
        assert settings_["amp_dtype"] == "float16"
