"""Keeps the project honest: hooks tested and documented, data parses, sources exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from autotune import hookspecs
from autotune.recommendation.rules import builtin_rules, decision_specs, source_texts
from autotune.shipped_data import load_profile, profile_names
from tests.conftest import REPO, SHARED_SOURCES

HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("autotune_"))
NUMERIC_GPU_FIELDS = ("vram_gb", "memory_bandwidth_gb_s", "fp32_tflops")
# Left out of an entry where no vendor text or device report gives them; sourced when present.
OPTIONAL_GPU_FIELDS = ("memory_bus_width_bits", "sm_count", "tdp_w")


def test_there_are_hooks():
    assert HOOKS == ["autotune_backends", "autotune_model_converters", "autotune_model_inspectors",
                     "autotune_rules"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    tests = "".join(path.read_text() for path in Path(__file__).parent.glob("test_*.py"))
    assert re.search(rf"def test_hook_{hook}\w*\(", tests), f"no test_hook_{hook}_... test"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    page = (REPO / "docs" / "writing-plugins.md").read_text()
    assert re.search(rf"^#+ `{hook}\(\)`", page, re.MULTILINE), f"no `{hook}()` section"
    assert getattr(hookspecs, hook).__doc__.strip()


def test_the_readme_links_to_pages_that_exist():
    # mkdocs --strict (make docs) checks the links inside docs/; the README is outside it.
    readme = (REPO / "README.md").read_text()
    targets = {target.split("#")[0] for target in re.findall(r"\]\(([^)\s]+)\)", readme)}
    relative = sorted(target for target in targets if "://" not in target)
    assert relative and all((REPO / target).exists() for target in relative), relative


def test_the_manual_home_page_includes_marked_readme_sections():
    readme = (REPO / "README.md").read_text()
    home = (REPO / "docs" / "index.md").read_text()
    sections = re.findall(r'^--8<-- "README\.md:(\w+)"$', home, re.MULTILINE)
    assert sections
    for name in sections:
        assert readme.count(f"<!-- --8<-- [start:{name}] -->") == 1, name
        assert readme.count(f"<!-- --8<-- [end:{name}] -->") == 1, name


@pytest.mark.parametrize("name", profile_names())
def test_every_profile_parses(name):
    assert load_profile(name)


def test_every_rule_source_exists():
    ids = set(source_texts())
    for rule in builtin_rules():
        assert rule.source == "practice" and rule.reference or rule.source in ids, rule.id


@pytest.mark.skipif(not SHARED_SOURCES.exists(), reason="shared/SOURCES.md is not beside the repo")
def test_sources_yaml_matches_shared_sources_md():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from sync_sources import render
    finally:
        sys.path.pop(0)
    assert (REPO / "profiles" / "sources.yaml").read_text() == render(SHARED_SOURCES.read_text()), \
        "profiles/sources.yaml is stale: run `make sources`"
    markdown_ids = set(re.findall(r"^- (S\d{3}-\d+) ", SHARED_SOURCES.read_text(), re.MULTILINE))
    assert {rule.source for rule in builtin_rules()} - {"practice"} <= markdown_ids


def test_every_decision_has_a_fallback_rule():
    last_rule = {rule.decision: rule for rule in builtin_rules()}
    for name in decision_specs():
        assert last_rule[name].when is True or last_rule[name].when == "true", name


def test_gpu_database_says_where_every_number_comes_from():
    architectures = load_profile("architectures.yaml")["architectures"]
    names = set()
    for entry in load_profile("gpus.yaml")["gpus"]:
        assert entry["name"] not in names
        names.add(entry["name"])
        covered = {field for source in entry["sources"] for field in source["covers"]}
        assert all(source["kind"] in ("vendor_datasheet", "vendor_whitepaper", "other")
                   for source in entry["sources"])
        present = [field for field in OPTIONAL_GPU_FIELDS if field in entry]
        wanted = {*NUMERIC_GPU_FIELDS, *present, *(f"tensor_tflops.{k}" for k in entry["tensor_tflops"])}
        assert wanted <= covered, (entry["name"], wanted - covered)
        arch = architectures[entry["architecture"]]
        assert str(entry["compute_capability"]) in arch["compute_capabilities"], entry["name"]
        expected = set(arch["tensor_core_precisions"]) if entry["tensor_cores"] else set()
        assert set(entry["tensor_tflops"]) == expected, entry["name"]


@pytest.mark.parametrize("required", [
    "GTX 1060 6GB", "GTX 1080 Ti", "GTX 1650", "GTX 1660 6GB", "T4", "V100", "RTX 2080 Ti",
    "RTX 3050 4GB Laptop", "RTX 3050 8GB", "RTX 3060 8GB", "RTX 3060 12GB", "RTX 3090",
    "RTX 4090", "A10", "A100 40GB", "A100 80GB", "L4", "L40S", "H100 SXM", "H100 PCIe", "H200",
    "B200", "Jetson AGX Orin",
])
def test_gpu_database_has_the_required_boards(required):
    from autotune.hardware import gpu_database as gpudb

    assert gpudb.resolve(required)


@pytest.mark.parametrize("command", [
    ["recommend", "--gpu", "t4"], ["recommend"], ["plugins"], ["probe", "--json"], ["rules"],
    ["recommend", "--gpu", "t4", "--model", "resnet50", "--task", "train"],
    ["inspect", "vit_b_16", "--gpu", "h100"],
    ["compare", "--model", "resnet50", "--gpu", "t4", "--gpu", "a100", "--task", "train"],
])
def test_commands_never_import_a_framework(command):
    code = (
        "import sys\nfrom autotune.cli.main import main\n"
        f"try:\n    main({command!r})\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'tensorrt', 'onnx') if m in sys.modules]\n"
        "print(heavy, file=sys.stderr)\nassert not heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-500:]
