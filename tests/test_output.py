"""Output formats round-trip; files are written whole or not at all."""

from __future__ import annotations

import os

import pytest

from autotune.errors import UserError
from autotune.recommendation.engine import recommend
from autotune.recommendation.formats import parse, render, write_atomically
from tests.conftest import replayed, simulated

MACHINES = {
    "t4": lambda: simulated("T4"),
    "cpu": lambda: replayed("no_driver.yaml"),
    "h100x2": lambda: replayed("h100x2_nvlink.yaml"),
}


@pytest.mark.parametrize("output_format", ["yaml", "json", "toml"])
@pytest.mark.parametrize("machine", list(MACHINES))
@pytest.mark.parametrize("task", ["infer", "train"])
def test_formats_parse_back_to_the_same_recommendation(output_format, machine, task):
    original = recommend(MACHINES[machine](), {"task": task, "objective": "throughput",
                                               "tier": "low-resource"})
    assert parse(render(original, output_format), output_format) == original


def test_env_format_is_one_assignment_per_decision():
    recommendation = recommend(simulated("T4"), {"task": "infer", "objective": "throughput",
                                                 "tier": "balanced"})
    lines = [line for line in render(recommendation, "env").splitlines()
             if not line.startswith("#")]
    assert len(lines) == len(recommendation.decisions)
    assert "AUTOTUNE_PRECISION=fp16" in lines
    assert "AUTOTUNE_BACKENDS=tensorrt,onnxruntime,torch" in lines
    assert "AUTOTUNE_CUDNN_BENCHMARK=true" in lines


def test_yaml_output_loads_as_plain_settings_for_a_script():
    import yaml

    recommendation = recommend(simulated("RTX 3060 8GB"), {"task": "infer",
                                                           "objective": "throughput",
                                                           "tier": "balanced"})
    config = yaml.safe_load(render(recommendation, "yaml"))
    assert config["settings"]["batch_size"] == 4
    assert config["reasons"]["batch_size"]["source"] == "S000-4"


def test_atomic_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "config.yaml"
    target.write_text("old")
    write_atomically(target, "new content\n")
    assert target.read_text() == "new content\n"
    assert os.listdir(tmp_path) == ["config.yaml"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("path", ["missing/config.yaml", "."])
def test_unwritable_paths_are_user_errors(tmp_path, path):
    with pytest.raises(UserError, match="cannot write"):
        write_atomically(tmp_path / path, "x")
    assert os.listdir(tmp_path) == []
