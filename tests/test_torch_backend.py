"""Real runs on the CPU with the PyTorch backend, and the verify and bench commands."""

from __future__ import annotations

import json
import time

import pytest
import yaml

torch = pytest.importorskip("torch")
from autotune_plugins.torch.inspect import inspect_source  # noqa: E402
from autotune_plugins.torch.runner import TorchRunner, autocast_plan  # noqa: E402
from torch import nn  # noqa: E402

from autotune.backend_api import RunConfig  # noqa: E402
from autotune.measure.measurer import Measurer  # noqa: E402
from autotune.model.source import parse_model  # noqa: E402
from tests.test_cli import one_line_error, run  # noqa: E402

SMALL = "tests.test_model_stats:small_cnn"


class NoisyInHalf(nn.Module):
    """A classifier whose half-precision output is corrupted (a broken conversion)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        scores = self.fc(self.conv(x).mean(dim=(2, 3)))
        if x.dtype != torch.float32:
            scores = scores + torch.randn_like(scores) * 100
        return scores


def noisy_in_half():
    return NoisyInHalf()


def measurer(spec=SMALL, shape="3,32,32", budget=None):
    source = parse_model(spec, shape)
    stats = inspect_source(source, (16, 32))
    return Measurer("torch", TorchRunner(), source, stats, "cpu", ("fp32", "bf16"),
                    memory_budget_bytes=budget,
                    predict_peak=lambda c: 1e6 * c.batch_size * ((c.resolution or 32) / 32) ** 2)


@pytest.mark.parametrize("task", ["infer", "train"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_real_cpu_runs(task, precision):
    config = RunConfig(task, "fp32", 4, 32, cpu_threads=1).with_precision(precision)
    result = measurer().measure(config, budget_s=0.3)
    assert result.ok, result.reason
    assert result.timing.throughput_samples_s > 0 and result.timing.warmup_iterations >= 10
    assert result.device.startswith("CPU")
    if precision == "bf16":
        assert result.accuracy.passed and result.accuracy.cosine_similarity > 0.99
    if task == "train" and precision == "bf16":
        assert autocast_plan(config.task, config.precision) == (True, torch.bfloat16, False)


def test_corrupted_half_precision_output_is_rejected():
    result = measurer("tests.test_torch_backend:noisy_in_half").measure(
        RunConfig("infer", "bf16", 4, 32), budget_s=0.2)
    assert result.status == "rejected" and "exceeds the 3% budget (S002-6)" in result.reason


def test_memory_budget_drives_the_oom_ladder():
    # The budget fits 2 samples at 32 px (1 MB each, by this test's prediction).
    result = measurer(budget=2.5e6).measure(RunConfig("infer", "fp32", 8, 32), budget_s=0.2)
    assert result.ok and result.config.batch_size == 2
    assert [step.split(":")[1].strip() for step in result.steps] == ["out of memory"] * 2
    nothing = measurer(budget=1e5).measure(RunConfig("infer", "fp32", 8, 32), budget_s=0.2)
    assert nothing.status == "failed" and "out of memory" in nothing.reason


def test_int8_is_left_to_other_backends():
    result = measurer().measure(RunConfig("infer", "int8", 4, 32), budget_s=0.2)
    assert result.status == "failed" and "not supported by the torch backend" in result.reason


@pytest.mark.usefixtures("quick_timing")
def test_verify_with_user_inputs(capsys, tmp_path):
    import numpy as np

    batch = np.random.default_rng(2).standard_normal((4, 3, 32, 32)).astype("float32")
    np.save(tmp_path / "batch.npy", batch)
    code, out, _ = run(capsys, "verify", "--model", SMALL, "--input-shape", "3,32,32", "--backend", "torch",
                       "--budget-s", "3", "--inputs", str(tmp_path / "batch.npy"), "--json")
    assert code == 0 and json.loads(out)["measured"] is True


@pytest.mark.usefixtures("quick_timing")
def test_verify_measures_and_prints_the_recommendation_again(capsys, monkeypatch):
    from autotune_plugins.torch import runner as torch_runner  # noqa: PLC0415

    # Each FP32 row says what its FP32 was, as a GPU session does (the CPU's FP32 says nothing).
    on_a_gpu = torch_runner.fp32_math
    monkeypatch.setattr(torch_runner, "fp32_math",
                        lambda precision, tf32, device: on_a_gpu(precision, tf32, "cuda"))
    started = time.monotonic()
    code, out, err = run(capsys, "verify", "--model", SMALL, "--input-shape", "3,32,32",
                         "--backend", "torch", "--budget-s", "6", "--set", "cpu_threads=1")
    elapsed = time.monotonic() - started
    config = yaml.safe_load(out)
    assert code == 0 and config["measured"] is True
    assert config["reasons"]["batch_size"]["rule"] == "measured"
    assert "measured with torch on CPU" in config["reasons"]["batch_size"]["reason"]
    torch_report = next(m for m in config["measurements"] if m["backend"] == "torch")
    assert torch_report["status"] == "measured" and torch_report["measurements"]
    assert "samples/s" in err
    fp32_rows = [row for row in torch_report["measurements"] if row["precision"] == "fp32"]
    ieee = "IEEE matmul and conv"
    assert fp32_rows and all(row["math"] == ieee for row in fp32_rows)
    assert all("math" not in row for row in torch_report["measurements"] if row["precision"] != "fp32")
    assert f"; {ieee}" in err
    assert elapsed < 6 + 5  # its budget, plus building the model and the reference once


@pytest.mark.usefixtures("quick_timing")
def test_verify_lists_backends_without_a_runner_as_skipped(capsys):
    code, out, err = run(capsys, "verify", "--model", SMALL, "--input-shape", "3,32,32",
                         "--backend", "all", "--budget-s", "3", "--json")
    report = json.loads(out)
    statuses = {m["backend"]: m["status"] for m in report["measurements"]}
    assert code == 0 and statuses["torch"] == "measured" and statuses["onnxruntime"] == "measured"
    assert statuses["tensorrt"] == "skipped"


def test_verify_exits_1_when_no_backend_can_run(capsys):
    code, out, err = run(capsys, "verify", "--model", SMALL, "--input-shape", "3,32,32",
                         "--backend", "tensorrt", "--budget-s", "2")
    assert code == 1 and out == "" and "no backend could run" in err


def test_verify_exits_3_when_nothing_fits(capsys):
    code, out, err = run(capsys, "verify", "--model", SMALL, "--input-shape", "3,32,32",
                         "--backend", "torch", "--budget-s", "3", "--memory-budget-gb", "0.01")
    assert code == 3 and out == "" and "ran out of memory at batch 1 in every precision" in err


def test_verify_rejects_an_unknown_backend(capsys):
    assert "unknown backend 'tvm'" in one_line_error(capsys, "verify", "--model", SMALL,
                                                     "--input-shape", "3,32,32", "--backend", "tvm")


@pytest.mark.usefixtures("quick_timing")
def test_bench_table_knee_and_plot(capsys, tmp_path):
    plot = tmp_path / "bench.png"
    code, out, err = run(capsys, "bench", "--model", SMALL, "--input-shape", "3,32,32",
                         "--sweep", "batch=1,2,4,8", "--precision", "fp32,bf16", "--budget-s", "5",
                         "--set", "cpu_threads=1", "--plot", str(plot), "--json")
    report = json.loads(out)
    assert code == 0 and len(report["rows"]) == 8
    for precision in ("fp32", "bf16"):
        series = [row for row in report["rows"] if row["precision"] == precision]
        knee = [row for row in series if row["knee"]]
        assert len(knee) == 1
        best = max(row["throughput_samples_s"] for row in series)
        assert knee[0]["throughput_samples_s"] >= 0.95 * best
        assert all(row["throughput_samples_s"] < 0.95 * best for row in series
                   if row["batch_size"] < knee[0]["batch_size"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.usefixtures("quick_timing")
def test_bench_sweeps_the_precisions_the_recommendation_proposes(capsys, tmp_path):
    from autotune.api import measurement_plan  # noqa: PLC0415

    settings = measurement_plan(model=SMALL, input_shape="3,32,32").proposed.settings
    proposed = {settings["precision"], settings["alternative_precision"], settings["quantization"]}
    code, out, err = run(capsys, "bench", "--model", SMALL, "--input-shape", "3,32,32", "--sweep", "batch=1",
                         "--set", "cpu_threads=1", "--plot", str(tmp_path / "bench.png"), "--json")
    assert code == 0, err
    benched = [row["precision"] for row in json.loads(out)["rows"]]
    # FP32 first, then what the recommendation proposes that torch runs: BF16 beside FP32 on a
    # CPU that computes it natively (this machine's CPU decides which), never INT8.
    assert benched[0] == "fp32" and set(benched) <= proposed | {"fp32"} and "int8" not in benched
    if settings["alternative_precision"] == "bf16":
        assert "bf16" in benched


def test_bench_rejects_a_bad_sweep(capsys):
    assert "--sweep 'size=1,2'" in one_line_error(capsys, "bench", "--sweep", "size=1,2")
    assert "positive whole numbers" in one_line_error(capsys, "bench", "--sweep", "batch=0,a")


@pytest.mark.usefixtures("ctrl_c_on_the_second_measurement")
def test_ctrl_c_prints_partial_results_and_writes_nothing(capsys, tmp_path):
    plot = tmp_path / "bench.png"
    code, out, err = run(capsys, "bench", "--model", SMALL, "--input-shape", "3,32,32",
                         "--sweep", "batch=1,2,4", "--budget-s", "0.1", "--plot", str(plot))
    assert code == 130 and "interrupted" in err and "fp32 batch 1" in err
    assert not plot.exists() and not [p for p in tmp_path.iterdir() if p.suffix == ".png"]


@pytest.mark.usefixtures("ctrl_c_on_the_second_measurement", "quick_timing")
def test_ctrl_c_during_verify_prints_partial_results_and_writes_nothing(capsys, tmp_path):
    target = tmp_path / "verified.yaml"
    code, out, err = run(capsys, "verify", "--model", SMALL, "--input-shape", "3,32,32", "--backend",
                         "torch", "--budget-s", "5", "-o", str(target))
    assert code == 130 and out == "" and "interrupted" in err and "batch" in err
    assert not target.exists()


@pytest.mark.usefixtures("quick_timing")
def test_verify_with_latency_objective_adds_the_measured_latency_to_the_verdict(capsys):
    code, out, _ = run(capsys, "verify", "--model", SMALL, "--input-shape", "3,32,32", "--backend", "torch",
                       "--budget-s", "3", "--objective", "latency", "--json")
    report = json.loads(out)
    assert code == 0 and report["settings"]["batch_size"] == 1
    assert "ms: small (S002-4)" in report["model"]["lightweight_reason"]


class FailsAboveBatchTwo(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        if x.shape[0] > 2:
            raise ValueError("this model only takes two samples")
        return self.fc(x)


def fails_above_batch_two():
    return FailsAboveBatchTwo()


def test_a_model_that_raises_is_a_failed_measurement_not_a_traceback():
    result = measurer("tests.test_torch_backend:fails_above_batch_two", "8").measure(
        RunConfig("infer", "fp32", 4, None), budget_s=0.1)
    assert result.status == "failed"
    assert "ValueError: this model only takes two samples" in result.reason


CU128_2_11 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]  # torch.cuda.get_arch_list()
CU126 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]


@pytest.mark.parametrize(("arch_list", "capability", "runs"), [
    (CU128_2_11, (8, 9), True),  # sm_86 machine code runs on 8.9
    (CU128_2_11, (12, 0), True),
    (CU128_2_11, (7, 0), False),  # a V100 on PyTorch 2.11's CUDA 12.8 wheel
    (CU128_2_11, (6, 0), False),
    (CU126, (6, 0), True),
    (CU126, (5, 2), True),  # an M60 on sm_50
    (CU126, (3, 7), False),  # a K80
    (CU126, (10, 0), False),  # no sm_100 and no PTX
    (["sm_90", "compute_90"], (10, 0), True),  # PTX compiles for newer GPUs
    (["sm_90a"], (9, 0), True),
    ([], (3, 7), True),  # a build that does not say is let through
])
def test_missing_kernels_follows_cuda_binary_compatibility(arch_list, capability, runs):
    from autotune_plugins.torch.runner import missing_kernels

    why = missing_kernels(arch_list, capability)
    assert (why is None) == runs
    if not runs:
        assert f"compute capability {capability[0]}.{capability[1]}" in why
        older_gpu, kepler = capability < (7, 5), capability < (5, 0)
        assert ("whl/cu126" in why) == (older_gpu and not kepler)
        assert ("--set device=cpu" in why) == kepler
        assert ("newer CUDA" in why) == (not older_gpu)


def test_a_gpu_this_torch_has_no_kernels_for_skips_the_backend(monkeypatch):
    from autotune.backend_api import BackendUnavailable

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(CU128_2_11))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (6, 0))
    with pytest.raises(BackendUnavailable, match="none for this GPU's compute capability 6.0"):
        TorchRunner().device("cuda")
    assert TorchRunner().device("cpu") == "cpu"
