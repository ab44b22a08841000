"""``import autotune.auto`` in a real training-script process: every failure is exit 0 and
one warning line; ``autotune.apply``; the example script runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autotune.machine_profiles.store import read_profile
from autotune.training.config import TrainingConfig
from tests.conftest import REPO

SCRIPT = ("import autotune.auto as a, json; c = a.config; print(json.dumps({'source': c.source, "
          "'precision': c.precision, 'batch_size': c.batch_size, 'reasons': sorted(c.reasons)}))")


def run_script(tmp_path, code=SCRIPT, **env) -> tuple[int, dict | None, list[str]]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AUTOTUNE_")}
    environment.update({"AUTOTUNE_STORE": str(tmp_path / "store"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    environment.update(env)
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    out = done.stdout.strip().splitlines()
    return done.returncode, json.loads(out[-1]) if out and out[-1].startswith("{") else None, \
        done.stderr.strip().splitlines()


def test_no_profile_computes_the_rules_and_saves_them_as_the_profile(tmp_path):
    code, config, err = run_script(tmp_path)
    assert code == 0 and config["source"] == "rules" and config["batch_size"] >= 1
    assert {"batch_size", "precision", "amp_dtype"} <= set(config["reasons"])
    assert len(err) == 1 and err[0].startswith("autotune: rules: ") and "AUTOTUNE_QUIET" in err[0]
    (path,) = (tmp_path / "store").glob("*.train.yaml")
    assert read_profile(path).purpose == "train"
    code, config, err = run_script(tmp_path)  # the next script reads it
    assert config["source"] == "profile" and err[0].startswith(f"autotune: profile from {path}")
    assert run_script(tmp_path, AUTOTUNE_QUIET="1")[2] == []


@pytest.mark.parametrize("content, words", [
    ("not: [valid\n", "is not valid YAML"),
    ("!!python/object/apply:os.system ['touch OWNED']\n", "is refused"),
    ("schema: autotune.profile/999\n", "has schema"),
])
def test_a_corrupt_or_hostile_profile_is_one_warning_and_fp32(tmp_path, content, words):
    store = tmp_path / "store"
    run_script(tmp_path)
    (path,) = store.glob("*.train.yaml")
    path.write_text(content)
    code, config, err = run_script(tmp_path)
    assert code == 0 and config["source"] == "fallback" and config["precision"] == "fp32"
    assert len(err) == 2 and err[0].startswith("autotune: warning: ") and words in err[0]
    assert not (tmp_path / "OWNED").exists()


def test_a_stale_profile_says_what_changed_and_falls_back(tmp_path):
    run_script(tmp_path)
    (path,) = (tmp_path / "store").glob("*.train.yaml")
    data = read_profile(path).to_dict()
    data["fingerprint"]["gpus"] = [{"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-x", "vram_gb": 79.6,
                                    "compute_capability": "9.0", "mig": None}]
    path.write_text(json.dumps(data))
    code, config, err = run_script(tmp_path)
    assert code == 0 and config["source"] == "fallback" and config["precision"] == "fp32"
    assert "the hardware changed" in err[0] and "NVIDIA H100 80GB HBM3" in err[0]
    data["fingerprint"]["gpus"] = []
    data["fingerprint"]["rules_hash"] = "another"
    path.write_text(json.dumps(data))
    code, config, err = run_script(tmp_path)
    assert config["source"] == "rules" and "the rules changed" in err[0]


def test_an_unwritable_store_is_one_warning_and_the_script_goes_on(tmp_path):
    (tmp_path / "a-file").write_text("")
    code, config, err = run_script(tmp_path, AUTOTUNE_STORE=str(tmp_path / "a-file" / "store"))
    assert code == 0 and config["source"] == "rules"
    assert len(err) == 2 and "cannot write the profile" in err[0] and "not saved" in err[0]


def test_disable_and_a_given_profile(tmp_path):
    code, config, err = run_script(tmp_path, AUTOTUNE_DISABLE="1")
    assert code == 0
    assert config == {"source": "disabled", "precision": None, "batch_size": None, "reasons": []}
    assert err == [] and not (tmp_path / "store").exists()
    run_script(tmp_path)
    (path,) = (tmp_path / "store").glob("*.train.yaml")
    moved = tmp_path / "elsewhere.yaml"
    path.rename(moved)
    code, config, err = run_script(tmp_path, AUTOTUNE_PROFILE=str(moved))
    assert config["source"] == "profile" and str(moved) in err[0]
    code, config, err = run_script(tmp_path, AUTOTUNE_PROFILE=str(tmp_path / "missing.yaml"))
    assert code == 0 and config["source"] == "fallback" and "no profile at" in err[0]


def test_apply_places_the_model_and_gives_autocast_and_a_scaler_only_for_fp16_training():
    torch = pytest.importorskip("torch")
    from autotune.training.apply import apply  # noqa: PLC0415

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    fp16 = TrainingConfig(source="profile", device="cuda", precision="fp16", amp=True,
                          amp_dtype_name="float16", grad_scaler=True, channels_last=True)
    placed, autocast, scaler = apply(model, config=fp16)
    assert next(placed.parameters()).dtype == torch.float32  # training keeps FP32 weights
    assert placed[0].weight.is_contiguous(memory_format=torch.channels_last)
    # No CUDA here: the model stays on the CPU, and loss scaling (a CUDA-FP16 need) is off.
    assert next(placed.parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert scaler.is_enabled() == torch.cuda.is_available()
    bf16 = TrainingConfig(source="profile", device="cpu", precision="bf16", amp=True,
                          amp_dtype_name="bfloat16")
    placed, autocast, scaler = apply(torch.nn.Linear(4, 2), config=bf16)
    with autocast():
        assert placed(torch.randn(2, 4)).dtype == torch.bfloat16
    assert not scaler.is_enabled()
    served, _, _ = apply(torch.nn.Linear(4, 2), config=bf16, task="infer")
    assert next(served.parameters()).dtype == torch.bfloat16  # inference casts the model itself


def test_the_example_trains_a_few_steps_on_the_cpu(tmp_path):
    pytest.importorskip("torchvision")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AUTOTUNE_")}
    environment["AUTOTUNE_STORE"] = str(tmp_path / "store")
    done = subprocess.run([sys.executable, str(REPO / "examples" / "train_classifier.py"), "--steps", "2",
                           "--batch-size", "4", "--resolution", "32"], env=environment, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "step 2/2: loss" in done.stdout and done.stderr.startswith("autotune: rules: ")
    assert Path(tmp_path / "store").is_dir()


def test_global_settings_follow_the_profile_and_keep_what_the_script_set_first():
    torch = pytest.importorskip("torch")
    from autotune.training.config import apply_torch_settings  # noqa: PLC0415
    from autotune.training.torch_tf32 import read_state, restore, tf32_in_use  # noqa: PLC0415

    backends = torch.backends
    saved = backends.cudnn.benchmark, read_state()
    try:
        chosen = TrainingConfig(source="profile", device="cuda", tf32=True, cudnn_benchmark=True)
        backends.cudnn.benchmark = False
        done = apply_torch_settings(chosen, torch_was_imported=False)
        assert backends.cudnn.benchmark and tf32_in_use() == (True, True)
        assert done == ("cudnn.benchmark=on", "tf32=on")
        # The script set them before importing autotune.auto: kept, and said so.
        done = apply_torch_settings(replace_config(chosen, tf32=False), torch_was_imported=True)
        assert tf32_in_use() == (True, True)
        assert done == ("kept your cudnn.benchmark=True",
                        "kept your TF32 settings (matmul tf32, cuDNN conv tf32)")
        assert apply_torch_settings(replace_config(chosen, device="cpu"), torch_was_imported=False) == ()
        assert not torch.cuda.is_initialized()  # flags only: CUDA is never initialised
    finally:
        backends.cudnn.benchmark = saved[0]
        restore(saved[1])


def replace_config(config, **changes):
    from dataclasses import replace  # noqa: PLC0415

    return replace(config, **changes)
