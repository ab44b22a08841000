"""The command line as a user runs it: outputs, overrides, and one-line errors."""

from __future__ import annotations

import json

import pytest
import yaml

from autotune.cli.main import main
from autotune.recommendation.rules import builtin_rules
from tests.conftest import RECORDINGS


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def one_line_error(capsys, *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert code == 2, (code, out, err)
    assert out == ""
    assert err.startswith("autotune: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_recommend_default_is_yaml_a_script_can_load(capsys):
    code, out, _ = run(capsys, "recommend", "--gpu", "3060 8GB")
    assert code == 0
    config = yaml.safe_load(out)
    assert config["settings"]["batch_size"] == 4 and config["measured"] is False


@pytest.mark.parametrize("output_format", ["json", "toml", "env"])
def test_recommend_other_formats(capsys, output_format):
    code, out, _ = run(capsys, "recommend", "--gpu", "t4", "--format", output_format)
    assert code == 0 and "fp16" in out


def test_explain_prints_every_decision_with_its_source(capsys):
    code, out, err = run(capsys, "recommend", "--gpu", "NVIDIA GeForce RTX 3060", "--explain")
    assert code == 0 and yaml.safe_load(out)["settings"]["batch_size"] == 4  # 12 GB variant
    for text in ("batch_size", "batch-8gb", "S000-4", "resolution", "S000-5"):
        assert text in err


def test_output_file(capsys, tmp_path):
    target = tmp_path / "out" / "autotune.json"
    target.parent.mkdir()
    code, out, err = run(capsys, "recommend", "--gpu", "t4", "--format", "json", "-o", str(target))
    assert code == 0 and out == "" and "wrote" in err
    assert json.loads(target.read_text())["settings"]["precision"] == "fp16"


def test_replayed_machine(capsys):
    code, out, _ = run(capsys, "recommend", "--replay", str(RECORDINGS / "gtx1660.yaml"),
                       "--task", "train")
    assert code == 0 and yaml.safe_load(out)["settings"]["amp"] is False


def test_flags_override_and_say_so(capsys):
    code, out, _ = run(capsys, "recommend", "--gpu", "t4", "--batch-size", "8", "--precision",
                       "fp32", "--backend", "torch,onnxruntime", "--set", "cudnn-benchmark=false")
    config = yaml.safe_load(out)
    assert config["settings"]["batch_size"] == 8
    assert config["settings"]["backends"] == ["torch", "onnxruntime"]
    assert config["settings"]["cudnn_benchmark"] is False
    assert config["reasons"]["batch_size"]["reason"] == "set by user (by flag)"
    # Later decisions follow the override: FP32 inference on a T4 suggests FP16 next.
    assert config["settings"]["alternative_precision"] == "fp16"


def test_config_layers_and_their_precedence(capsys, tmp_path, monkeypatch):
    user_config = tmp_path / "xdg" / "autotune" / "autotune.toml"
    user_config.parent.mkdir(parents=True)
    user_config.write_text('tier = "accuracy"\nnum_workers = 3\n')
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.autotune]\nbatch_size = 8\nresolution = 256\n')
    (tmp_path / "autotune.yaml").write_text("batch_size: 6\ngpu: [t4]\n")
    (tmp_path / "autotune.toml").write_text("batch_size = 5\n")
    explicit = tmp_path / "team.yaml"
    explicit.write_text("resolution: 192\n")
    code, out, _ = run(capsys, "recommend", "--config", str(explicit))
    config = yaml.safe_load(out)
    assert code == 0 and config["inputs"]["tier"] == "accuracy"
    assert config["machine"].startswith("1 x T4")
    assert config["settings"]["num_workers"] == 3
    assert config["settings"]["batch_size"] == 5
    assert config["reasons"]["batch_size"]["reason"] == "set by user (in autotune.toml)"
    assert config["settings"]["resolution"] == 192
    code, out, _ = run(capsys, "recommend", "--config", str(explicit), "--resolution", "96")
    assert yaml.safe_load(out)["settings"]["resolution"] == 96


def test_cpu_only_recommendation_on_this_machine(capsys, monkeypatch):
    code, out, _ = run(capsys, "recommend", "--replay", str(RECORDINGS / "no_driver.yaml"))
    config = yaml.safe_load(out)
    assert code == 0 and config["settings"]["device"] == "cpu"
    assert "CPU only" in config["machine"]


@pytest.mark.parametrize("args, says", [
    (["recommend", "--gpu", "t5"], "closest known: T4"),
    (["recommend", "--gpu", "a100 pcie 80"], "unknown GPU"),
    (["recommend", "--gpu", "t4", "--precision", "fp64"], "precision by flag must be one of"),
    (["recommend", "--gpu", "t4", "--precision", "bf16"], "does not run on T4"),
    (["recommend", "--gpu", "t4", "--batch-size", "eight"], "batch_size by flag must be a whole"),
    (["recommend", "--gpu", "t4", "--batch-size", "0"], "at least 1"),
    (["recommend", "--gpu", "t4", "--backend", "tvm"], "a list drawn from"),
    (["recommend", "--gpu", "t4", "--set", "batchsize=4"], "did you mean 'batch_size'"),
    (["recommend", "--gpu", "t4", "--set", "tf32"], "DECISION=VALUE"),
    (["recommend", "--task", "serve"], "(see autotune --help)"),  # click's words, autotune's wrapping
    (["recommend", "--colour"], "(see autotune --help)"),
    (["recommend", "--config", "missing.toml"], "cannot read config file"),
    (["rules", "--decision", "speed"], "unknown decision 'speed'"),
    (["probe", "--replay", str(RECORDINGS / "gtx1660.yaml"), "--record", "x.yaml"], "--record"),
])
def test_bad_input_is_one_line_exit_2(capsys, args, says):
    assert says in one_line_error(capsys, *args)


@pytest.mark.parametrize("filename, text, says", [
    ("bad.toml", "batch_size = ", "is not valid TOML"),
    ("bad.yaml", "batch_size: [4\n", "is not valid YAML"),
    ("bad.yaml", "- 4\n- 8\n", "must hold a mapping"),
    ("bad.yaml", "batch_size: eight\n", "batch_size in "),
    ("bad.yaml", "task: serve\n", "task in "),
    ("bad.yaml", "precsion: fp16\n", "did you mean 'precision'"),
    ("bad.yaml", "gpu: 4\n", "gpu in "),
    ("bad.yaml", "!!python/object/apply:os.system ['echo hacked']\n", "is not valid YAML"),
    ("bad.ini", "[x]", "unknown format"),
])
def test_bad_config_files_are_one_line_exit_2(capsys, tmp_path, filename, text, says):
    path = tmp_path / filename
    path.write_text(text)
    assert says in one_line_error(capsys, "recommend", "--gpu", "t4", "--config", str(path))


def test_project_pyproject_with_a_bad_value_names_the_file(capsys, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.autotune]\nresolution = "big"\n')
    assert "resolution in pyproject.toml" in one_line_error(capsys, "recommend", "--gpu", "t4")


def test_a_recommendation_is_not_written_over_the_settings_files(capsys, tmp_path):
    assert "where autotune reads your settings" in one_line_error(
        capsys, "recommend", "--gpu", "t4", "-o", "autotune.yaml")
    (tmp_path / "autotune.yaml").write_text("autotune_version: 0.1.0\nsettings: {batch_size: 4}\n")
    assert "holds a recommendation autotune wrote" in one_line_error(capsys, "recommend", "--gpu", "t4")


def test_errors_leave_an_existing_output_file_untouched(capsys, tmp_path):
    target = tmp_path / "keep.yaml"
    target.write_text("precious\n")
    one_line_error(capsys, "recommend", "--gpu", "t5", "-o", str(target))
    assert target.read_text() == "precious\n"
    one_line_error(capsys, "recommend", "--gpu", "t4", "-o", str(tmp_path / "no" / "such.yaml"))
    assert [p.name for p in tmp_path.iterdir() if p.name != "xdg"] == ["keep.yaml"]


def test_probe_text_json_and_simulated(capsys):
    code, out, _ = run(capsys, "probe", "--replay", str(RECORDINGS / "a100_mig.yaml"))
    assert code == 0 and "MIG on" in out and "1555 GB/s" in out
    code, out, _ = run(capsys, "probe", "--json", "--gpu", "gtx 1660", "--gpu", "t4")
    machine = json.loads(out)
    assert [gpu["tensor_cores"] for gpu in machine["gpus"]] == [False, True]
    code, out, _ = run(capsys, "probe", "--json")
    assert code == 0 and "host" in json.loads(out)


def test_probe_record_writes_a_replayable_file(capsys, tmp_path):
    target = tmp_path / "machine.yaml"
    code, _, _ = run(capsys, "probe", "--record", str(target))
    assert code == 0
    code, out, _ = run(capsys, "probe", "--json", "--replay", str(target))
    assert code == 0 and "host" in json.loads(out)


def test_rules_lists_every_rule_with_its_source(capsys):
    code, out, _ = run(capsys, "rules")
    assert code == 0
    for rule in builtin_rules():
        assert rule.id in out
    assert "S000-4: Batch size by VRAM" in out
    code, out, _ = run(capsys, "rules", "--facts")
    assert "gpu.vram_gb" in out and "host.cpu_cores" in out
    code, out, _ = run(capsys, "rules", "--decision", "batch_size")
    assert "batch-8gb" in out and "resolution-balanced" not in out


def test_plugins_lists_the_built_in_backends(capsys):
    code, out, _ = run(capsys, "plugins", "--json")
    rows = {row["backend"]: row for row in json.loads(out)}
    assert {"torch", "onnxruntime", "tensorrt"} <= set(rows)
    assert rows["torch"]["from"].startswith("autotune ")
    assert rows["torch"]["measurable"] and rows["tensorrt"]["measurable"]
    code, out, _ = run(capsys, "plugins")
    assert code == 0 and "tensorrt" in out


def test_gpus_lists_the_database(capsys):
    code, out, _ = run(capsys, "gpus")
    assert code == 0 and "RTX 3060 8GB" in out and "Jetson AGX Orin" in out and "TDP W" in out


def test_version_lists_backends(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("autotune 0.1.0") and "backend torch" in out


def test_inspect_a_reference_model(capsys):
    code, out, _ = run(capsys, "inspect", "resnet18", "--gpu", "t4")
    assert code == 0
    assert "parameters 11,689,512" in out and "1.814 GMACs" in out
    assert "lightweight verdict: medium" in out and "roofline" in out
    code, out, _ = run(capsys, "inspect", "vit_b_16", "--json", "--optimizer", "sgd")
    report = json.loads(out)
    assert report["fixed_resolution"] and report["training_state_gb"]["optimizer_states"] == 0
    assert report["gpu"] is None  # this machine has no GPU in CI


def test_recommend_with_a_model(capsys):
    code, out, err = run(capsys, "recommend", "--gpu", "RTX 3060 8GB", "--model", "resnet50",
                         "--task", "train", "--explain")
    config = yaml.safe_load(out)
    assert code == 0 and config["reasons"]["batch_size"]["rule"] == "memory-model"
    assert config["reasons"]["batch_size"]["reason"].startswith("memory model: ")
    assert config["model"]["optimizer"] == "adam" and "memory model" in err


def test_model_settings_from_a_config_file(capsys, tmp_path):
    (tmp_path / "autotune.toml").write_text('model = "mobilenet_v3_small"\noptimizer = "sgd"\n'
                                            'gpu = "t4"\ntask = "train"\n')
    code, out, _ = run(capsys, "recommend")
    config = yaml.safe_load(out)
    assert config["model"]["name"] == "mobilenet_v3_small" and config["model"]["optimizer"] == "sgd"


def huge_mlp():
    from torch import nn

    return nn.Linear(200_000, 200_000)  # 40 G parameters: 20 GB even in INT4


@pytest.mark.parametrize("args, says", [
    (["inspect", "missing.onnx"], "does not exist"),
    (["inspect", "resnet19"], "did you mean resnet18"),
    (["inspect", "no.such.module:build"], "cannot import no.such.module"),
    (["recommend", "--gpu", "t4", "--optimizer", "sgd"], "needs a model"),
    (["recommend", "--gpu", "t4", "--model", "resnet18", "--optimizer", "lion"], "optimizer by flag"),
    (["recommend", "--gpu", "t4", "--model", "resnet18", "--headroom", "1.5"], "headroom by flag"),
    (["recommend", "--gpu", "t4", "--model", "vit_b_16", "--resolution", "320"], "takes only 224 px"),
])
def test_bad_model_input_is_one_line_exit_2(capsys, args, says):
    assert says in one_line_error(capsys, *args)


def test_a_model_that_fits_nowhere_exits_3(capsys):
    code, out, err = run(capsys, "recommend", "--gpu", "t4", "--model", "tests.test_cli:huge_mlp",
                         "--input-shape", "200000")
    assert code == 3 and out == "" and err.count("\n") == 1
    assert "does not fit on T4" in err and "GB short" in err


def test_a_file_that_is_not_onnx_is_one_line_exit_2(capsys, tmp_path):
    pytest.importorskip("onnx")
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x00\x01 not a protobuf")
    assert "is not an ONNX model" in one_line_error(capsys, "inspect", str(path))


def test_an_explicit_input_shape_fixes_the_resolution(capsys):
    code, out, _ = run(capsys, "recommend", "--gpu", "t4", "--model", "tests.test_model_stats:small_cnn",
                       "--input-shape", "3,32,32")
    config = yaml.safe_load(out)
    assert code == 0 and config["settings"]["resolution"] == 32
    assert "H=32, W=32" in config["reasons"]["resolution"]["reason"]
