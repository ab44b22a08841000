"""The torch inspector on stand-ins for the models users bring (tests/standin_models.py).

Each stand-in is measured as ``autotune inspect`` measures it, then checked against the
model built and run for real on the CPU: its parameters, its FLOPs (FlopCounterMode at
batch 1 at each measured size), which method gave the figures, and that inspecting it
changed nothing the user holds.
"""

from __future__ import annotations

import sys

import pytest

torch = pytest.importorskip("torch")
from autotune_plugins.torch.build import build_empty  # noqa: E402
from autotune_plugins.torch.input_discovery import guess_inputs  # noqa: E402
from autotune_plugins.torch.inspect import REASON_MAX_CHARS, inspect_module  # noqa: E402
from autotune_plugins.torch.io import call_model, synthetic_tensors  # noqa: E402
from autotune_plugins.torch.measuring_methods import METHOD_FAKE, METHOD_META, METHOD_REAL  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import tests  # noqa: E402
from autotune.errors import UserError, one_line  # noqa: E402
from autotune.model.source import model_stats_for, parse_model  # noqa: E402
from autotune.model.stats import ModelStats  # noqa: E402
from autotune.model_inputs import ModelInputs, tier_resolutions  # noqa: E402
from tests import standin_models  # noqa: E402

TWO_INPUTS = "image:float32[3,H=64,W=64]; extra:float32[8]"
#: Few sizes keep the tests fast; the detector's tiers around 640 px are added to them.
RESOLUTIONS = (64, 160)


def inspect(name: str, input_shape: str | None = None, input_spec: str | None = None,
            resolutions: tuple[int, ...] = RESOLUTIONS) -> ModelStats:
    return model_stats_for(parse_model(f"tests.standin_models:{name}", input_shape, input_spec), resolutions)


def real_flops(name: str, inputs: ModelInputs) -> int:
    model = getattr(standin_models, name)().eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        call_model(model, synthetic_tensors(inputs, 1))
    return counter.get_total_flops()


@pytest.mark.parametrize("name, shape, spec, method", [
    ("detector", "3,640,640", None, METHOD_FAKE),  # .item() and new_full(..., tensor) on meta
    ("filtering_detector", "3,640,640", None, METHOD_REAL),  # int(x.sum()) decides a shape
    ("lazy_import_model", None, None, METHOD_META),
    ("dict_output_model", "3,64,64", None, METHOD_META),
    ("model_output_model", "3,64,64", None, METHOD_META),
    ("token_classifier", None, None, METHOD_META),
    ("two_input_model", None, TWO_INPUTS, METHOD_META),
])
def test_a_standin_is_measured_exactly(name, shape, spec, method):
    stats = inspect(name, shape, spec)
    real = getattr(standin_models, name)()
    assert stats.parameters == sum(p.numel() for p in real.parameters())
    assert stats.method.startswith(method)
    for measured in stats.resolutions:
        assert measured.flops_per_sample == real_flops(name, stats.inputs.at(measured.resolution)) > 0
        assert set(measured.infer_activation_bytes) == set(measured.train_activation_bytes) \
            == {"fp32", "fp16"}
        assert 0 < measured.infer_activation_bytes["fp16"] < measured.infer_activation_bytes["fp32"]


@pytest.mark.parametrize("name, methods", [
    ("dict_output_model", (METHOD_META, METHOD_FAKE, METHOD_REAL)),
    ("detector", (METHOD_FAKE, METHOD_REAL)),
])
def test_every_method_gives_the_same_figures(name, methods):
    # The tracers follow meta, fake and real tensors alike: the chain changes how the
    # figures are made, not what they are (FP16 aside, which the real run halves).
    factory = getattr(standin_models, name)
    module = build_empty(factory, name)
    figures = []
    for method in methods:
        stats = inspect_module(module, name, "test", (3, 64, 64), (64,), build_real=factory,
                               methods=(method,))
        assert stats.method.startswith(method)
        measured = stats.resolutions[0]  # the smallest size: the one a real run measures
        figures.append((measured.resolution, measured.flops_per_sample,
                        measured.infer_activation_bytes["fp32"], measured.train_activation_bytes["fp32"],
                        measured.traffic_bytes["fp32"], stats.kernel_launches, stats.output))
    assert figures == [figures[0]] * len(methods)


def test_a_detector_is_measured_at_tiers_around_its_native_size():
    stats = inspect("detector", "3,640,640", resolutions=(100, 160))
    # 100 px is not a multiple of the detector's stride: its own check rejects it.
    assert [r.resolution for r in stats.resolutions] == sorted({160, *tier_resolutions(640)})
    assert tier_resolutions(640) == (448, 640, 928) and not stats.fixed_resolution
    assert stats.native_resolution == 640 and stats.method == METHOD_FAKE
    assert stats.output == "[0], the first tensor of tuple (4 tensors)"


def test_a_real_run_measures_the_smallest_size_and_scales_the_rest():
    stats = inspect("filtering_detector", "3,640,640")
    assert [r.resolution for r in stats.resolutions] == [64]
    assert stats.method == (f"{METHOD_REAL} at batch 1-2, 64 px, other sizes scaled by area, "
                            "FP16 figures halved")
    measured = stats.at(64)
    assert measured.infer_activation_bytes["fp16"] * 2 == measured.infer_activation_bytes["fp32"]
    assert stats.at(640).flops_per_sample == measured.flops_per_sample * 100  # by area


def test_a_model_fixed_to_its_size_is_measured_there_only():
    stats = inspect("fixed_size_model", "3,32,32")
    assert stats.fixed_resolution and [r.resolution for r in stats.resolutions] == [32]


@pytest.mark.parametrize("name, container", [("dict_output_model", "dict"),
                                             ("model_output_model", "ModelOutput")])
def test_the_output_the_accuracy_check_reads_is_the_logits(name, container):
    assert inspect(name, "3,64,64").output == f"logits of {container} (2 tensors)"


def test_token_ids_and_a_mask_are_guessed_from_the_first_embedding():
    stats = inspect("token_classifier")
    ids, mask = stats.inputs.inputs
    assert (ids.name, ids.dtype, ids.values, ids.high) == ("input_ids", "int64", "tokens", 1000)
    assert ids.shape == mask.shape == (128,)
    assert (mask.name, mask.dtype, mask.values) == ("attention_mask", "int64", "ones")
    assert stats.kind == "text" and [r.resolution for r in stats.resolutions] == [None]
    assert len(stats.inputs.guesses) == 1 and "sequence length 128 guessed" in stats.inputs.guesses[0]
    assert stats.family == "transformer"


def test_a_given_sequence_length_is_measured():
    spec = "input_ids:int64[S=32]:tokens<1000; attention_mask:int64[S=32]:ones"
    stats = inspect("token_classifier", input_spec=spec)
    assert stats.inputs.sequence_length == 32 and stats.inputs.guesses == ()
    assert stats.at(None).flops_per_sample == real_flops("token_classifier", stats.inputs)


def test_guesses_are_said_when_no_shape_is_given():
    image = inspect("dict_output_model")
    assert image.inputs.names == ("image",) and image.input_shape == (3, 224, 224)
    assert image.inputs.guesses == ("input guessed as 3x224x224 from the first Conv2d; pass "
                                    "--input-shape or --input-spec if the model expects another size",)
    features = inspect("lazy_import_model")
    assert features.inputs.names == ("x",) and features.input_shape == (8,)
    assert "8 features from the first Linear" in features.inputs.guesses[0]
    assert inspect("dict_output_model", "3,64,64").inputs.guesses == ()


def test_hugging_face_style_inputs_are_the_named_ones():
    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = nn.Embedding(50, 8)

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                    return_dict=None):
            return self.embeddings(input_ids)

    guessed = guess_inputs(Encoder())
    assert guessed.names == ("input_ids", "attention_mask", "token_type_ids")
    assert [spec.values for spec in guessed.inputs] == ["tokens", "ones", "zeros"]


def test_two_inputs_cannot_be_guessed_from_one_layer():
    with pytest.raises(UserError, match=r"cannot guess the inputs of .*two_input_model \(its forward "
                                        r"takes image, extra.*--input-spec"):
        inspect("two_input_model")
    assert inspect("two_input_model", input_spec=TWO_INPUTS).inputs.names == ("image", "extra")


@pytest.fixture
def fresh_lazy_lib(monkeypatch):
    """The lazily imported library not imported yet: the next build imports it."""
    monkeypatch.delitem(sys.modules, "tests.standin_lazy_lib", raising=False)
    monkeypatch.delattr(tests, "standin_lazy_lib", raising=False)


def test_a_lazily_imported_library_still_runs_for_real_after_inspection(fresh_lazy_lib):
    assert inspect("lazy_import_model").method == METHOD_META
    from tests.standin_lazy_lib import Anchors

    assert Anchors.GRID.device.type == "cpu"
    assert standin_models.lazy_import_model()(torch.randn(2, 8)).shape == (2, 4)


def test_building_under_the_meta_device_would_break_the_library(fresh_lazy_lib):
    # Why the inspector patches register_parameter instead: the library's class-level
    # tensor would be made on meta, and every real run after it fails.
    with torch.device("meta"):
        model = standin_models.lazy_import_model()
    with pytest.raises((NotImplementedError, RuntimeError)):  # in torch's words, whatever they are
        model.to_empty(device="cpu")(torch.randn(2, 8))


def _snapshot(model: nn.Module) -> dict:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


@pytest.mark.parametrize("name, shape, attribute", [
    ("SHARED_MODEL", "3,32,32", "SHARED_MODEL"),  # the instance named directly
    ("shared_model", "3,32,32", "SHARED_MODEL"),  # a factory handing out the instance
    ("shared_filtering_detector", "3,64,64", "SHARED_FILTERING_DETECTOR"),  # a real run too
])
def test_a_module_level_instance_is_left_as_it_was(name, shape, attribute):
    shared = getattr(standin_models, attribute)
    before, training = _snapshot(shared), shared.training
    inspect(name, shape)
    after = shared.state_dict()
    assert all(after[key].device.type == "cpu" and torch.equal(after[key], value)
               for key, value in before.items())
    assert shared.training == training and all(p.is_meta is False for p in shared.parameters())


def test_when_no_method_runs_the_error_says_what_each_said():
    with pytest.raises(UserError) as caught:
        inspect("dict_output_model", "4,32,32")
    message = str(caught.value)
    assert message.startswith("cannot measure model tests.standin_models:dict_output_model with "
                              "input: float32[batch, C=4, H=32, W=32] (meta device: ")
    assert "; FakeTensorMode: " in message and "; a real CPU run: " in message
    # What torch itself says for this input, in whatever words its release uses.
    with pytest.raises(Exception) as direct:  # noqa: B017 - whatever torch raises, its text is what counts
        standin_models.dict_output_model().eval()(torch.zeros(1, 4, 32, 32))
    assert f"; a real CPU run: {one_line(str(direct.value), REASON_MAX_CHARS)}" in message
    assert "\n" not in message and "does not fit model" in message


def test_a_module_on_the_meta_device_is_not_run_for_real():
    with pytest.raises(UserError, match="FakeTensorMode: .*\\); if that input"):
        inspect_module(standin_models.filtering_detector().to("meta"), "filtering", "test",
                       (3, 64, 64), (64,))
