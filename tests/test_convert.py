"""Converting models between plugins' formats, and the cache the converted files live in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import autotune
from autotune import plugins
from autotune.cache import cache_root, cached_file
from autotune.errors import UserError
from autotune.model.convert import COMPARED_OUTPUT_KEY, ConversionRequest, convert_model
from autotune.model.source import ModelSource, parse_model
from autotune.model_inputs import from_shape, synthetic_batch
from autotune.types import ModelConverter

SMALL_CNN = "tests.test_model_stats:small_cnn"
SHIFTED_CNN = "tests.test_convert:shifted_cnn"
TOKEN_CLASSIFIER = "tests.standin_models:token_classifier"
#: What the fake converters below were asked, in order.
CONVERTED: list[tuple[str, ModelSource, ConversionRequest]] = []


def fake_convert(source: ModelSource, request: ConversionRequest) -> Path:
    CONVERTED.append(("fake-onnx", source, request))
    return Path("fake.onnx")


def fake_convert_to_tensorrt(source: ModelSource, request: ConversionRequest) -> Path:
    CONVERTED.append(("fake-tensorrt", source, request))
    return Path("fake.plan")


class FakeConverters:
    """A plugin object declaring the converters it is given."""

    def __init__(self, *converters: ModelConverter):
        self.converters = converters

    @autotune.hookimpl
    def autotune_model_converters(self):
        return list(self.converters)


#: Added to the small CNN's last bias by ``shifted_cnn``: a test changes it to change the weights.
BIAS_SHIFT = 0.0


def shifted_cnn():
    import torch  # noqa: PLC0415 - this file runs without torch too

    from tests.test_model_stats import small_cnn  # noqa: PLC0415 - that module needs torch

    model = small_cnn()
    with torch.no_grad():
        model.fc.bias += BIAS_SHIFT
    return model


def branching_model():
    """A forward that branches on a tensor value: the TorchScript exporter bakes in one branch
    silently; the torch.export-based exporter must refuse it."""
    from torch import nn  # noqa: PLC0415

    class Branching(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(12, 4)

        def forward(self, x):
            y = self.fc(x.flatten(1))
            return y * 2 if y.sum() > 0 else y - 1

    return Branching()


def two_input_branching_model():
    """Two inputs, and a branch on their values: the exporter must refuse it in one line."""
    from torch import nn  # noqa: PLC0415

    class TwoInputBranching(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, features, bias):
            y = self.fc(features)
            return y + bias if bias.sum() > 0 else y

    return TwoInputBranching()


def no_tensor_model():
    """A model whose output holds no tensor: there is nothing for an ONNX file to return."""
    from torch import nn  # noqa: PLC0415

    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return {"rows": int(self.fc(x).shape[0])}

    return Counter()


def write_identity_onnx(module, sample, path, request, output_names):
    """Stands in for torch.onnx.export: a valid file at once, for the tests about the cache.
    It takes every input, and returns the first as the model's one output."""
    import numpy as np  # noqa: PLC0415
    from onnx import helper, save  # noqa: PLC0415

    batch = "batch" if request.dynamic_batch else 1
    values = [helper.make_tensor_value_info(spec.name, helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype)),
                                            [batch, *spec.shape]) for spec in request.inputs.inputs]
    (output_name,) = output_names
    first = values[0]
    graph = helper.make_graph(
        [helper.make_node("Identity", [first.name], [output_name])], "fake", values,
        [helper.make_tensor_value_info(output_name, first.type.tensor_type.elem_type,
                                       [batch, *request.inputs.primary.shape])])
    save(helper.make_model(graph), str(path))


@pytest.fixture
def torch_convert():
    for module in ("torch", "torchvision", "onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)
    from autotune_plugins.torch import convert as torch_convert  # noqa: PLC0415

    return torch_convert


def _cache_folder_files(kind: str) -> list[str]:
    """What is in a kind's cache folder, but filelock's empty lock files (which stay, by design)."""
    folder = cache_root() / kind
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".lock") if folder.is_dir() else []


# --- the hook and convert_model --------------------------------------------------------------


def test_hook_autotune_model_converters_dispatches_to_the_first_matching_converter(register_plugin):
    CONVERTED.clear()
    register_plugin(FakeConverters(
        ModelConverter(name="fake-tensorrt", framework="json", source_kinds=("callable",),
                       target="tensorrt", convert="tests.test_convert:fake_convert_to_tensorrt"),
        ModelConverter(name="fake-onnx", framework="json", source_kinds=("callable",),
                       target="onnx", convert="tests.test_convert:fake_convert"),
    ), name="fake-converters")
    assert ("fake-converters", "fake-onnx") in [(p, c.name) for p, c in plugins.model_converters()]
    source = ModelSource("callable", "mypackage.models:build", from_shape((3, 8, 8)))

    # The plugin registered last is asked first, before the torch plugin's converter.
    assert convert_model(source) == Path("fake.onnx")
    assert convert_model(source, "tensorrt") == Path("fake.plan")
    # The source's inputs, and its input_shape for converters written before inputs.
    default = ConversionRequest(input_shape=(3, 8, 8), inputs=from_shape((3, 8, 8)))
    assert CONVERTED == [("fake-onnx", source, default), ("fake-tensorrt", source, default)]
    request = ConversionRequest(input_shape=(3, 16, 16), dynamic_batch=False, opset=18)
    convert_model(source, request=request)
    assert CONVERTED[-1] == ("fake-onnx", source, request)


def test_no_installed_converter_is_a_one_line_user_error():
    with pytest.raises(UserError, match=r"no installed plugin converts callable models like "
                                        r"mypackage.models:build to coreml; .*pip install") as caught:
        convert_model(ModelSource("callable", "mypackage.models:build"), "coreml")
    assert "\n" not in str(caught.value)


def test_a_converter_whose_framework_is_missing_says_what_to_install(register_plugin):
    register_plugin(FakeConverters(
        ModelConverter(name="absent-onnx", framework="no_such_framework_for_autotune",
                       source_kinds=("reference",), target="onnx", convert="absent.module:convert"),
    ), name="absent-framework")
    with pytest.raises(UserError, match=r"converting resnet18 to onnx needs no_such_framework_for_autotune "
                                        r".*not installed; pip install"):
        convert_model(ModelSource("reference", "resnet18"))


def test_an_onnx_model_asked_for_as_onnx_is_returned_where_it_is(tmp_path, monkeypatch):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not read")
    monkeypatch.setattr(plugins, "model_converters", lambda: pytest.fail("no converter is asked"))
    assert convert_model(parse_model(str(model))) == model
    assert not cache_root().exists()


def test_importing_convert_imports_no_framework():
    code = ("import sys, autotune.model.convert, autotune.cache\n"
            "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'onnxscript') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-500:]


# --- the cache --------------------------------------------------------------------------------


def test_a_cached_file_is_built_once_named_by_its_key_and_explained_beside_it():
    built = []

    def build(path: Path) -> None:
        built.append(path)
        path.write_text("artifact")

    key = {"model": "abc", "settings": {"opset": 18, "shape": [3, 8, 8]}}
    path = cached_file("things", key, ".txt", build, note="a thing")
    assert path.parent == cache_root() / "things" and path.suffix == ".txt"
    assert path.read_text() == "artifact"
    # The temporary is beside the file, so os.replace is a rename within one filesystem.
    assert len(built) == 1 and built[0].parent == path.parent and built[0].name.endswith(".txt")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar == {"kind": "things", "file": path.name, "note": "a thing", "key": key}

    same_key_reordered = {"settings": {"shape": [3, 8, 8], "opset": 18}, "model": "abc"}
    assert cached_file("things", same_key_reordered, ".txt", build) == path
    assert len(built) == 1
    other = cached_file("things", {**key, "model": "abd"}, ".txt", build)
    assert other != path and len(built) == 2
    assert _cache_folder_files("things") == sorted([path.name, path.with_suffix(".json").name,
                                                    other.name, other.with_suffix(".json").name])


@pytest.mark.parametrize("interruption", [RuntimeError("exporter crashed"), KeyboardInterrupt()])
def test_a_failing_build_leaves_nothing_behind(interruption):
    def build(path: Path) -> None:
        path.write_text("half a fi")
        path.with_name(path.name + ".data").write_text("side file the builder wrote")
        raise interruption

    with pytest.raises(type(interruption)):
        cached_file("things", {"model": "abc"}, ".onnx", build)
    assert _cache_folder_files("things") == []
    assert all(lock.stat().st_size == 0 for lock in (cache_root() / "things").glob("*.lock"))
    # The next try builds afresh.
    path = cached_file("things", {"model": "abc"}, ".onnx", lambda p: p.write_text("whole"))
    assert path.read_text() == "whole"


def test_a_build_that_writes_nothing_caches_nothing():
    with pytest.raises(RuntimeError, match="wrote nothing"):
        cached_file("things", {"model": "abc"}, ".onnx", lambda path: None)
    assert _cache_folder_files("things") == []


def test_an_unwritable_cache_folder_is_a_one_line_user_error(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "cache-is-a-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_folder))
    with pytest.raises(UserError, match=r"cannot write the autotune cache folder .*cache-is-a-file"
                                        r"/autotune/things .*XDG_CACHE_HOME") as caught:
        cached_file("things", {"model": "abc"}, ".onnx", lambda path: pytest.fail("not built"))
    assert "\n" not in str(caught.value)


def test_processes_building_the_same_file_at_once_build_it_once(tmp_path):
    log = tmp_path / "builds.log"
    code = (
        "import time\nfrom autotune.cache import cached_file\n"
        "def build(path):\n"
        f"    with open({str(log)!r}, 'a') as f: f.write('built\\n')\n"
        "    time.sleep(0.5)\n"
        "    path.write_text('artifact')\n"
        "print(cached_file('race', {'model': 'abc'}, '.txt', build))\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                  env=os.environ.copy()) for _ in range(2)]
    printed = {process.communicate(timeout=60)[0].strip() for process in processes}
    assert all(process.returncode == 0 for process in processes)
    assert len(printed) == 1 and Path(printed.pop()).read_text() == "artifact"
    assert log.read_text() == "built\n"


# --- the torch plugin's converter -----------------------------------------------------------


def test_a_torch_callable_converts_to_onnx_that_onnxruntime_runs_at_batch_1_and_3(torch_convert,
                                                                                  monkeypatch):
    import numpy as np  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from tests.test_model_stats import small_cnn  # noqa: PLC0415

    path = convert_model(parse_model(SMALL_CNN, "3,32,32"))
    assert path.parent == cache_root() / "onnx" and path.suffix == ".onnx"
    assert (json.loads(path.with_suffix(".json").read_text())["note"]
            == f"{SMALL_CNN} with input: float32[batch, C=3, H=32, W=32]")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["output"]
    assert session.get_modelmeta().custom_metadata_map[COMPARED_OUTPUT_KEY] == "output"
    torch.manual_seed(0)  # the seed the torch runner and the converter build with
    model = small_cnn().eval()
    for batch in (1, 3):
        inputs = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32), dtype=np.float32)
        (got,) = session.run(None, {"input": inputs})
        with torch.inference_mode():
            expected = model(torch.from_numpy(inputs)).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)

    # Same model, same settings, same versions: answered from the cache, not exported again.
    monkeypatch.setattr(torch_convert, "_export", lambda *args: pytest.fail("exported again"))
    assert convert_model(parse_model(SMALL_CNN, "3,32,32")) == path


def test_changed_weights_or_settings_miss_the_cache(torch_convert, monkeypatch):
    exports = []

    def counting_export(module, sample, path, request, output_names):
        exports.append(request)
        write_identity_onnx(module, sample, path, request, output_names)

    monkeypatch.setattr(torch_convert, "_export", counting_export)
    source = parse_model(SHIFTED_CNN, "3,32,32")
    first = convert_model(source)
    assert convert_model(source) == first and len(exports) == 1

    monkeypatch.setattr(sys.modules[__name__], "BIAS_SHIFT", 1.0)
    changed_weights = convert_model(source)
    monkeypatch.setattr(sys.modules[__name__], "BIAS_SHIFT", 0.0)
    assert convert_model(source) == first  # the same weights again: a hit
    # input_shape alone is one float input named "input": the same request as the source's.
    assert convert_model(source, request=ConversionRequest(input_shape=(3, 32, 32))) == first
    other_opset = convert_model(source, request=ConversionRequest(input_shape=(3, 32, 32), opset=18))
    fixed_batch = convert_model(source, request=ConversionRequest(input_shape=(3, 32, 32),
                                                                   dynamic_batch=False))
    other_shape = convert_model(parse_model(SHIFTED_CNN, "3,16,16"))
    assert len({first, changed_weights, other_opset, fixed_batch, other_shape}) == 5
    assert len(exports) == 5


def test_inputs_that_differ_only_in_sequence_length_are_two_files(torch_convert, monkeypatch):
    exports = []

    def counting_export(module, sample, path, request, output_names):
        exports.append({name: tuple(tensor.shape) for name, tensor in sample.items()})
        write_identity_onnx(module, sample, path, request, output_names)

    monkeypatch.setattr(torch_convert, "_export", counting_export)
    source = parse_model(TOKEN_CLASSIFIER)
    inputs = _inspected_inputs(source)
    at_16 = convert_model(source, request=ConversionRequest(inputs=inputs.at(sequence_length=16)))
    at_32 = convert_model(source, request=ConversionRequest(inputs=inputs.at(sequence_length=32)))
    assert at_16 != at_32
    assert exports == [{"input_ids": (2, 16), "attention_mask": (2, 16)},
                       {"input_ids": (2, 32), "attention_mask": (2, 32)}]
    key = json.loads(at_32.with_suffix(".json").read_text())["key"]["request"]
    assert key["inputs"] == {"inputs": [
        {"name": "input_ids", "shape": [32], "dtype": "int64", "axes": ["sequence"], "values": "tokens",
         "high": 1000},
        {"name": "attention_mask", "shape": [32], "dtype": "int64", "axes": ["sequence"], "values": "ones"}]}
    # What was guessed is said to the user, not part of the file: the same file.
    noted = inputs.at(sequence_length=16).with_guess("another line for the user")
    assert convert_model(source, request=ConversionRequest(inputs=noted)) == at_16
    assert len(exports) == 2


@pytest.mark.parametrize("factory", ["tests.test_convert:branching_model",
                                     "tests.test_convert:two_input_branching_model"])
def test_an_export_failure_is_one_line_naming_the_model_and_leaves_nothing(torch_convert, capfd, factory):
    # The real exporter, on a model it must refuse: its pages of logging stay off the terminal.
    two_inputs = factory.endswith(":two_input_branching_model")
    spec = "features:float32[4]; bias:float32[2]" if two_inputs else "x:float32[3,2,2]"
    with pytest.raises(UserError) as caught:
        convert_model(parse_model(factory, input_spec=spec))
    message = str(caught.value)
    assert message.startswith(f"exporting {factory} to ONNX failed: ")
    assert "\n" not in message and "\x1b" not in message
    assert _cache_folder_files("onnx") == []
    assert capfd.readouterr() == ("", "")


def test_a_model_whose_inputs_cannot_be_guessed_asks_for_them(torch_convert):
    # Its forward takes an image and a vector, and the first Conv2d says what only one is.
    with pytest.raises(UserError, match=r"cannot guess the inputs of tests.standin_models:two_input_model "
                                        r".*pass --input-spec with one item per input .*'image:float32"):
        convert_model(parse_model("tests.standin_models:two_input_model"))


def test_a_model_returning_no_tensor_is_a_one_line_user_error(torch_convert):
    with pytest.raises(UserError, match=r"model tests.test_convert:no_tensor_model returned dict with no "
                                        r"tensor in it") as caught:
        convert_model(parse_model("tests.test_convert:no_tensor_model", "4"))
    assert "\n" not in str(caught.value)
    assert _cache_folder_files("onnx") == []


def test_an_input_shape_the_model_rejects_is_a_user_error(torch_convert):
    with pytest.raises(UserError, match="input shape 3,5 does not fit model"):
        convert_model(parse_model(SMALL_CNN, "3,5"))


# --- several named inputs of any dtype, outputs of any shape ----------------------------------

def _inspected_inputs(source: ModelSource):
    """What the torch inspector says ``source`` takes: what was given, else its guess."""
    from autotune_plugins.torch.build import build_seeded  # noqa: PLC0415
    from autotune_plugins.torch.input_discovery import model_inputs_for  # noqa: PLC0415

    return model_inputs_for(source, build_seeded(source))


@pytest.mark.parametrize(("spec", "input_spec", "size", "compared"), [
    # input_ids (token ids below the vocabulary) and attention_mask (ones), int64, guessed.
    (TOKEN_CLASSIFIER, None, {"sequence_length": 16}, "output"),
    # Given in the other order than forward's: passed by keyword all the same, and the file's
    # inputs named so that a runner feeding them by name feeds each its own.
    (TOKEN_CLASSIFIER, "attention_mask:int64[S=16]:ones; input_ids:int64[S=16]:tokens<1000", {}, "output"),
    ("tests.standin_models:two_input_model", "image:float32[3,H=32,W=32]; extra:float32[8]", {}, "output"),
    # {"features": ..., "logits": ...}: logits, the second.
    ("tests.standin_models:dict_output_model", None, {"resolution": 32}, "output1"),
    # A ModelOutput(logits, hidden_states=(features,)), a dict subclass pytree does not know.
    ("tests.standin_models:model_output_model", None, {"resolution": 32}, "output0"),
], ids=["token_classifier", "token_classifier_reordered", "two_input_model", "dict_output_model",
        "model_output_model"])
def test_named_inputs_of_any_dtype_export_under_their_names_and_the_compared_output_matches_torch(
        torch_convert, spec, input_spec, size, compared):
    import numpy as np  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from autotune_plugins.torch.io import call_model, select_output, to_tensors  # noqa: PLC0415

    source = parse_model(spec, input_spec=input_spec)
    inputs = _inspected_inputs(source).at(**size)
    # As the ONNX Runtime runner asks for it.
    path = convert_model(source, "onnx", ConversionRequest(inputs=inputs, dynamic_batch=True))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_types = {"float32": "tensor(float)", "int64": "tensor(int64)"}
    assert [(i.name, i.type, i.shape) for i in session.get_inputs()] == [
        (i.name, onnx_types[i.dtype], ["batch", *i.shape]) for i in inputs.inputs]
    assert session.get_modelmeta().custom_metadata_map[COMPARED_OUTPUT_KEY] == compared
    model = torch_convert.build_seeded(source).eval()  # the weights the converter exported
    for batch in (1, 3):
        arrays = synthetic_batch(inputs, batch, seed=batch)
        (got,) = session.run([compared], arrays)
        with torch.inference_mode():
            expected, _ = select_output(call_model(model, to_tensors(arrays)))
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-4)
