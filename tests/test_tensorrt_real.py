"""Real TensorRT engines on a real GPU: built, proven and measured by the backend as a user
runs it. Skipped without TensorRT and a CUDA GPU (every CI run, and the build machine; see
docs/backends/tensorrt.md for the versions these tests have run against)."""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.tensorrt

if importlib.util.find_spec("tensorrt") is None:
    pytest.skip("TensorRT is not installed", allow_module_level=True)
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU here", allow_module_level=True)

from autotune_plugins.tensorrt import engine_build as trt_build  # noqa: E402
from autotune_plugins.tensorrt import engine_cache as trt_cache  # noqa: E402

from autotune import api  # noqa: E402
from autotune.cache import cache_root  # noqa: E402
from tests.test_ort_runner import conv_net  # noqa: E402


@pytest.fixture
def onnx_file(tmp_path):
    return conv_net(tmp_path / "conv_net.onnx")


def test_each_precision_this_tensorrt_builds_is_proven_and_measured(onnx_file):
    verification = api.verify(str(onnx_file), backends="tensorrt", budget_s=120)
    (report,) = verification.reports
    assert report.status == "measured", report.reason
    ran = [m for m in report.measurements if m.ok]
    assert ran
    for measurement in ran:
        shown = "fp32" if measurement.config.precision == "tf32" else measurement.config.precision
        assert f" {shown}" in measurement.model_file.detail, measurement.model_file.detail
        assert measurement.timing is not None and measurement.timing.p50_ms > 0


def test_a_second_run_reads_the_engine_from_the_cache(onnx_file, monkeypatch):
    api.verify(str(onnx_file), backends="tensorrt", budget_s=60, precision="fp16", batch_size=8)
    built = []
    original = trt_build.build_engine
    monkeypatch.setattr(trt_build, "build_engine", lambda trt, request, logger=None: built.append(
        request) or original(trt, request, logger))
    api.verify(str(onnx_file), backends="tensorrt", budget_s=60, precision="fp16", batch_size=8)
    assert built == []
    assert list((cache_root() / trt_cache.ENGINE_CACHE_KIND).glob("*.engine"))
