"""Model stats: FLOPs, activation memory, the shipped profile, ONNX graphs, the verdict."""

from __future__ import annotations

from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from autotune_plugins.onnxruntime.inspect import inspect_onnx  # noqa: E402
from autotune_plugins.torch.forward_costs import flops, inference_memory, saved_for_backward_bytes  # noqa: E402
from autotune_plugins.torch.inspect import inspect_module, inspect_source  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from torch import nn  # noqa: E402

from autotune.errors import UserError  # noqa: E402
from autotune.model.source import ModelSource, parse_model  # noqa: E402
from autotune.model.stats import lightweight_verdict, reference_models  # noqa: E402


class SmallCnn(nn.Module):
    """3x32x32 -> conv 3->8 k3 p1 -> relu -> maxpool 2 -> conv 8->16 k3 p1 -> mean -> fc 16->10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


def small_cnn():
    return SmallCnn()


def test_flops_of_a_small_cnn_equal_the_hand_count():
    # A multiply-add is 2 FLOPs: conv = 2 x out_elements x (in_channels x k x k).
    conv1 = 2 * (8 * 32 * 32) * (3 * 3 * 3)
    conv2 = 2 * (16 * 16 * 16) * (8 * 3 * 3)
    fc = 2 * 16 * 10
    assert flops(SmallCnn(), torch.empty(1, 3, 32, 32)) == conv1 + conv2 + fc


def test_resnet18_at_224_is_about_1_8_gmacs():
    stats = reference_models()["resnet18"]
    assert stats.at(224).flops_per_sample / 2 == pytest.approx(1.82e9, rel=0.01)
    assert stats.parameters == 11_689_512


def test_activation_estimate_equals_the_tensors_saved_for_backward_on_cpu():
    torch.manual_seed(0)
    real = SmallCnn()
    real_batch = torch.randn(4, 3, 32, 32)
    saved_for_real = []

    def pack(tensor):
        saved_for_real.append(tensor)
        return tensor

    weights = {p.untyped_storage().data_ptr() for p in real.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        real(real_batch).sum().backward()
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in saved_for_real}
    actually_saved = sum(n for ptr, n in storages.items() if ptr not in weights)

    meta = SmallCnn().to("meta")
    estimated = saved_for_backward_bytes(meta, torch.empty(4, 3, 32, 32, device="meta"))
    assert estimated == actually_saved > 0


def test_inference_peak_follows_tensors_as_they_are_freed():
    model = SmallCnn().to("meta")
    tracer = inference_memory(model, torch.empty(2, 3, 32, 32, device="meta"))
    # Largest moment: the input, conv1's output and its ReLU (before conv1's output is
    # freed); never all intermediate tensors at once.
    input_bytes, conv1_out = 2 * 3 * 32 * 32 * 4, 2 * 8 * 32 * 32 * 4
    assert tracer.peak_bytes == input_bytes + 2 * conv1_out
    assert tracer.live_bytes == 0


def test_shipped_profile_matches_a_fresh_computation():
    fresh = inspect_source(ModelSource("reference", "resnet18"), (160, 224, 320))
    shipped = reference_models()["resnet18"]
    assert fresh.method == "meta device" and fresh.output == "the output tensor"
    # How the figures were made is said differently in the profile; the figures are the same.
    assert replace(fresh, method=shipped.method, output=shipped.output) == shipped, \
        "profiles/models.yaml is stale: run `make models`"


def test_reference_models_are_all_shipped():
    assert {"resnet18", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large",
            "efficientnet_b0", "vit_b_16"} <= set(reference_models())
    vit = reference_models()["vit_b_16"]
    assert vit.family == "transformer" and vit.fixed_resolution
    assert reference_models()["resnet50"].at(224).flops_per_sample / 2 == pytest.approx(4.09e9, rel=0.01)


def test_activations_scale_with_resolution_squared():
    stats = reference_models()["resnet18"]
    ratio = stats.at(320).infer_activation_bytes["fp32"] / stats.at(160).infer_activation_bytes["fp32"]
    assert ratio == pytest.approx(4, rel=0.05)
    scaled = stats.at(448)  # not measured: scaled by area from 320
    assert scaled.flops_per_sample == pytest.approx(stats.at(320).flops_per_sample * (448 / 320) ** 2)


def test_fp16_halves_activation_memory():
    stats = reference_models()["resnet50"].at(224)
    assert stats.infer_activation_bytes["fp16"] * 2 == stats.infer_activation_bytes["fp32"]
    assert stats.train_activation_bytes["fp16"] < 0.55 * stats.train_activation_bytes["fp32"]


def test_a_module_callable_is_inspected_with_a_guessed_input_shape():
    stats = inspect_source(parse_model("tests.test_model_stats:small_cnn", "3,32,32"), (16, 32))
    assert stats.parameters == sum(p.numel() for p in SmallCnn().parameters())
    assert stats.family == "cnn" and [r.resolution for r in stats.resolutions] == [16, 32]


def test_lightweight_verdict_uses_the_s002_thresholds():
    verdict, reason = lightweight_verdict(reference_models()["mobilenet_v3_small"], 224)
    # 2.5 M parameters and 0.11 GFLOPs are small, but 10.2 MB of FP32 weights is not.
    assert verdict == "medium"
    assert "2.5 M parameters: small (S002-1)" in reason and "10.2 MB FP32: medium (S002-2)" in reason
    assert "S002-1" in reason and "S002-2" in reason and "S002-3" in reason
    assert lightweight_verdict(reference_models()["resnet18"], 224)[0] == "medium"
    assert lightweight_verdict(reference_models()["vit_b_16"], 224)[0] == "large"
    assert lightweight_verdict(reference_models()["resnet18"], 224, latency_ms=120)[0] == "large"


def _onnx_file(tmp_path, batch="N"):
    """x[N,3,8,8] -> Conv(4 out, k3, pad 1) -> Flatten -> Gemm(256->5) -> MatMul(5x7)."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["c"], ["f"]),
        helper.make_node("Gemm", ["f", "g", "gb"], ["y"], transB=1),
        helper.make_node("MatMul", ["y", "m"], ["out"]),
    ]
    initializers = [
        helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], [0.0] * 108),
        helper.make_tensor("g", TensorProto.FLOAT, [5, 256], [0.0] * 1280),
        helper.make_tensor("gb", TensorProto.FLOAT, [5], [0.0] * 5),
        helper.make_tensor("m", TensorProto.FLOAT, [5, 7], [0.0] * 35),
    ]
    graph = helper.make_graph(
        nodes, "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, 7])],
        initializers)
    path = tmp_path / "small.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_onnx_flops_and_parameters_from_the_graph(tmp_path):
    stats = inspect_onnx(_onnx_file(tmp_path), None)
    conv = 2 * (4 * 8 * 8) * (3 * 3 * 3)
    gemm = 2 * 5 * 256
    matmul = 2 * 7 * 5
    assert stats.at(8).flops_per_sample == conv + gemm + matmul
    assert stats.parameters == 108 + 1280 + 5 + 35
    assert stats.trainable is False and stats.fixed_resolution
    # Peak: the input with the conv output (both alive while Flatten reads the latter).
    assert stats.at(8).infer_activation_bytes["fp32"] == (3 * 8 * 8 + 2 * 4 * 8 * 8) * 4 - 3 * 8 * 8 * 4


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_matches_torch_flops_for_the_same_model(tmp_path):
    path = tmp_path / "cnn.onnx"
    try:
        torch.onnx.export(SmallCnn().eval(), torch.randn(1, 3, 32, 32), str(path), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    except (TypeError, ImportError, ModuleNotFoundError) as error:  # exporter unavailable
        pytest.skip(f"torch.onnx.export unavailable here: {error}")
    onnx_stats = inspect_onnx(path, None)
    assert onnx_stats.at(32).flops_per_sample == flops(SmallCnn(), torch.empty(1, 3, 32, 32))


@pytest.mark.parametrize("spec, shape, says", [
    ("missing.onnx", None, "does not exist"),
    ("no_such_module_xyz:build", None, "cannot import no_such_module_xyz"),
    ("tests.test_model_stats:nothing_here", None, "has no nothing_here"),
    ("tests.test_model_stats:lightweight_verdict", None, "building model"),
    ("tests.test_model_stats:not_a_model", None, "not a torch.nn.Module"),
    ("tests.test_model_stats:small_cnn", "3,5", "does not fit model"),
    ("tests.test_model_stats:small_cnn", "3,a,4", "must be positive whole numbers"),
    ("resnet19", None, "unknown model 'resnet19'; did you mean resnet18"),
    ("bad spec:", None, "package.module:callable"),
])
def test_bad_models_are_user_errors(spec, shape, says):
    with pytest.raises(UserError, match=says):
        source = parse_model(spec, shape)
        inspect_source(source, (32,))


def not_a_model():
    return "a string"


def test_a_file_that_is_not_onnx(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("this is not protobuf")
    with pytest.raises(UserError, match="is not an ONNX model"):
        inspect_onnx(path, None)


def test_onnx_dynamic_input_needs_a_shape(tmp_path):
    path = _onnx_file(tmp_path)
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    onnx.save(model, path)
    with pytest.raises(UserError, match="dynamic input dimensions"):
        inspect_onnx(path, None)
    with pytest.raises(UserError, match="does not fit"):
        inspect_onnx(path, (3, 8))


def test_inspect_module_rejects_an_input_the_model_cannot_take():
    with pytest.raises(UserError, match="does not fit model small"):
        inspect_module(SmallCnn(), "small", "test", (4, 32, 32), (32,))


def test_inspect_an_onnx_file_from_the_command_line(tmp_path, capsys):
    import json

    from tests.test_cli import run

    code, out, _ = run(capsys, "inspect", str(_onnx_file(tmp_path)), "--json", "--gpu", "t4")
    report = json.loads(out)
    assert code == 0 and report["name"] == "small" and report["flops_per_sample"] == 2 * (
        4 * 8 * 8 * 27 + 5 * 256 + 7 * 5)
    assert "training_state_gb" not in report
    assert report["gpu"]["by_precision"]["fp16"]["largest_infer_batch"] > 0


def test_published_models_profile_matches_a_fresh_computation():
    """profiles/published_models.yaml (`make published-models`) as the torch plugin measures
    it today: the torchvision-built entries can be remeasured without timm or transformers."""
    import sys
    from pathlib import Path

    from autotune.model.stats import ModelStats
    from autotune.shipped_data import load_profile

    sys.path.append(str(Path(__file__).resolve().parent.parent / "scripts"))
    from make_published_models import ARCHITECTURES, measured  # noqa: PLC0415

    shipped = ModelStats.from_dict(load_profile("published_models.yaml")["models"]["resnet18"]["224"])
    fresh = measured("resnet18", "224", *ARCHITECTURES["resnet18"]())
    assert fresh == shipped, "profiles/published_models.yaml is stale: run `make published-models`"
