"""The fleet boards a cloud inventory names resolve, and probed NVML names find them."""

from __future__ import annotations

import pytest

from autotune.hardware import gpu_database as gpudb

GIB = 2**30

FLEET = [
    "A10G", "L4", "L40", "L40S", "A40", "A30", "A100 40GB SXM", "A100 40GB PCIe", "A100 80GB SXM",
    "A100 80GB PCIe", "H100 PCIe", "H100 SXM", "H100 NVL", "H200", "H20", "GH200 96GB", "GH200 144GB",
    "B200", "GB200", "V100 SXM2 32GB", "V100 SXM2 16GB", "V100 PCIe 32GB", "V100 PCIe 16GB", "T4",
    "P100 PCIe 16GB", "P100 PCIe 12GB", "P100 SXM2 16GB", "P4", "K80", "M60",
    "RTX A4000", "RTX A5000", "RTX A6000", "RTX 6000 Ada",
    "RTX 2060", "RTX 2070", "RTX 2080", "RTX 2080 Super", "RTX 2080 Ti",
    "RTX 3050 8GB", "RTX 3060 8GB", "RTX 3060 12GB", "RTX 3060 Ti", "RTX 3070", "RTX 3070 Ti",
    "RTX 3080 10GB", "RTX 3080 12GB", "RTX 3080 Ti", "RTX 3090", "RTX 3090 Ti",
    "RTX 4060", "RTX 4060 Ti 8GB", "RTX 4060 Ti 16GB", "RTX 4070", "RTX 4070 Super", "RTX 4070 Ti",
    "RTX 4070 Ti Super", "RTX 4080", "RTX 4080 Super", "RTX 4090",
    "RTX 5060", "RTX 5060 Ti 8GB", "RTX 5060 Ti 16GB", "RTX 5070", "RTX 5070 Ti", "RTX 5080",
    "RTX 5090",
]


@pytest.mark.parametrize("name", FLEET)
def test_every_fleet_board_is_in_the_database(name):
    assert gpudb.resolve(name).name == name


@pytest.mark.parametrize(("query", "expected"), [
    ("a10g", "A10G"), ("l40", "L40"), ("a40", "A40"), ("a30", "A30"), ("h100 nvl", "H100 NVL"),
    ("gh200", "GH200 96GB"), ("p100", "P100 PCIe 16GB"), ("tesla p4", "P4"), ("a6000", "RTX A6000"),
    ("rtx 6000 ada", "RTX 6000 Ada"), ("3080", "RTX 3080 10GB"), ("4060 ti", "RTX 4060 Ti 8GB"),
    ("4070 ti super", "RTX 4070 Ti Super"), ("5060 ti", "RTX 5060 Ti 16GB"), ("v100", "V100 SXM2 32GB"),
    # An inventory that says only "A100 80GB" means the HGX board clouds rent.
    ("a100", "A100 40GB SXM"), ("A100 40GB", "A100 40GB SXM"), ("A100 80GB", "A100 80GB SXM"),
    ("80gb pcie", "A100 80GB PCIe"), ("tesla k80", "K80"), ("m60", "M60"), ("gb200 nvl72", "GB200"),
])
def test_inventory_names_resolve(query, expected):
    assert gpudb.resolve(query).name == expected


@pytest.mark.parametrize(("nvml_name", "vram_gib", "expected"), [
    ("NVIDIA A10G", 22.5, "A10G"),
    ("NVIDIA H100 NVL", 93.6, "H100 NVL"),
    ("NVIDIA GH200 480GB", 95.0, "GH200 96GB"),
    ("NVIDIA GH200 144G HBM3e", 143.0, "GH200 144GB"),
    ("Tesla V100-SXM2-16GB", 15.8, "V100 SXM2 16GB"),
    ("Tesla P100-PCIE-16GB", 15.9, "P100 PCIe 16GB"),
    ("NVIDIA RTX 6000 Ada Generation", 47.5, "RTX 6000 Ada"),
    ("NVIDIA GeForce RTX 3080", 10.0, "RTX 3080 10GB"),
    ("NVIDIA GeForce RTX 3080", 12.0, "RTX 3080 12GB"),
    ("NVIDIA GeForce RTX 4060 Ti", 16.0, "RTX 4060 Ti 16GB"),
    ("NVIDIA GeForce RTX 2080 SUPER", 8.0, "RTX 2080 Super"),
    ("NVIDIA GeForce RTX 5090", 31.4, "RTX 5090"),
    ("NVIDIA A100-SXM4-80GB", 79.3, "A100 80GB SXM"),
    ("NVIDIA A100 80GB PCIe", 79.3, "A100 80GB PCIe"),
    ("NVIDIA A100-PCIE-40GB", 39.4, "A100 40GB PCIe"),
    ("Tesla P100-PCIE-12GB", 11.9, "P100 PCIe 12GB"),
    ("Tesla K80", 11.2, "K80"),
    ("Tesla M60", 7.4, "M60"),
    ("NVIDIA GB200", 184.0, "GB200"),
    ("NVIDIA H20", 95.0, "H20"),
])
def test_probed_nvml_names_find_their_entry(nvml_name, vram_gib, expected):
    assert gpudb.match_probed(nvml_name, int(vram_gib * GIB)).name == expected


def test_a_shared_nvml_name_has_one_default_and_distinct_vram():
    by_nvml: dict[str, list[gpudb.GpuSpec]] = {}
    for spec in gpudb.all_specs():
        for nvml_name in spec.nvml_names:
            bucket = by_nvml.setdefault(gpudb.normalize_gpu_name(nvml_name), [])
            if spec not in bucket:
                bucket.append(spec)
    for key, specs in by_nvml.items():
        if len(specs) > 1:
            assert sum(spec.default_for_nvml_name for spec in specs) == 1, key
            assert len({spec.vram_gb for spec in specs}) == len(specs), key


def test_every_alias_names_its_own_entry():
    for spec in gpudb.all_specs():
        for alias in spec.aliases:
            assert gpudb.resolve(alias).name == spec.name, alias


def test_tensor_figures_are_dense_and_ordered():
    for spec in gpudb.all_specs():
        t = spec.tensor_tflops
        if "fp16" in t and "int8" in t:
            assert t["int8"] >= t["fp16"], spec.name
        if "tf32" in t:
            assert t["tf32"] * 2 == pytest.approx(t["fp16"], rel=0.03), spec.name
        if "fp8" in t:
            assert t["fp8"] == pytest.approx(2 * t["fp16"], rel=0.02), spec.name
        if "fp4" in t:
            assert t["fp4"] == pytest.approx(2 * t["int8"], rel=0.02), spec.name


def test_a100_pcie_boards_have_their_own_bandwidth_and_no_nvlink():
    sxm, pcie = gpudb.resolve("A100 80GB SXM"), gpudb.resolve("A100 80GB PCIe")
    assert (sxm.memory_bandwidth_gb_s, pcie.memory_bandwidth_gb_s) == (2039, 1935)
    assert (sxm.nvlink_links, pcie.nvlink_links) == (12, 0)
    assert gpudb.resolve("A100 40GB PCIe").nvlink_links == 0
    assert sxm.tensor_tflops == pcie.tensor_tflops


def test_a_board_without_a_published_sm_count_simulates_as_unknown():
    spec = gpudb.resolve("GB200")
    assert spec.sm_count is None and spec.memory_bus_width_bits is None
    gpu = gpudb.simulated_gpu(spec, 0)
    assert gpu.sm_count is None and gpu.precisions[-1] == "fp4"


@pytest.mark.parametrize(("name", "precisions"), [
    ("K80", ("fp32",)),
    ("M60", ("fp32",)),
    ("P100 PCIe 16GB", ("fp32", "fp16")),  # GP100: double-rate fp16, no DP4A
    ("P4", ("fp32", "int8")),  # GP104: DP4A int8
    ("GTX 1080 Ti", ("fp32", "int8")),
])
def test_boards_without_tensor_cores_run_what_their_compute_capability_runs(name, precisions):
    assert gpudb.resolve(name).precisions == precisions
