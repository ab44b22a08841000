"""What an engine runs, read from TensorRT's engine inspector; parser errors in one line."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from autotune_plugins.tensorrt import engine_build as trt_build
from autotune_plugins.tensorrt import messages as trt_messages
from autotune_plugins.tensorrt import precision_proof as trt_proof

from autotune.backend_api import UnsupportedConfig


def layer(kind: str, *formats: str) -> dict:
    tensors = [{"Name": f"t{i}", "Location": "Device", "Dimensions": [8, 64], "Format/Datatype": f}
               for i, f in enumerate(formats)]
    return {"Name": kind.lower(), "LayerType": kind, "Inputs": tensors[:1], "Outputs": tensors[1:] or tensors}


def information(*layers) -> str:
    return json.dumps({"Layers": list(layers), "Bindings": ["input", "logits"]})


def test_each_compute_layer_counts_once_in_its_output_type_and_reformats_not_at_all():
    engine = information(
        layer("Reformat", "Row major linear FP32 format", "Row major linear FP16 format"),
        layer("CaskConvolution", "Row major linear FP16 format",
              "Channel major FP16 format where channel % 8 == 0"),
        layer("CaskConvolution", "Thirty-two wide channel vectorized row major Int8 format",
              "Thirty-two wide channel vectorized row major Int8 format."),
        layer("CaskGemm", "Half", "Float"),  # TensorRT 10.9's short words; its output decides
    )
    layers = trt_proof.layer_precisions(engine)
    assert layers.counts == {"fp16": 1, "int8": 1, "fp32": 1}
    assert layers.describe() == "TensorRT engine: 3 layers 1 fp16, 1 fp32, 1 int8"


def test_an_engine_read_without_its_shapes_or_detail_proves_nothing():
    dynamic = information(layer("CaskConvolution", "N/A due to dynamic shapes"))
    names_only = json.dumps({"Layers": ["conv1 + relu", "fc"], "Bindings": []})
    for text in (dynamic, names_only):
        layers = trt_proof.layer_precisions(text)
        assert layers.unknown
        with pytest.raises(UnsupportedConfig, match="cannot be proven"):
            trt_proof.prove_precision("fp16", layers)


def test_an_fp32_engine_is_never_reported_as_fp16_and_says_what_tensorrt_warned():
    fp32_engine = trt_proof.layer_precisions(information(layer("CaskConvolution", "Float", "Float")))
    with pytest.raises(UnsupportedConfig) as refused:
        trt_proof.prove_precision("fp16", fp32_engine,
                                   ["Precision flag FP16 ignored: network is strongly typed"])
    message = str(refused.value)
    assert "fp32 layers and none in fp16" in message and "strongly typed" in message
    trt_proof.prove_precision("fp32", fp32_engine)
    trt_proof.prove_precision("tf32", fp32_engine)  # TF32 is FP32's math mode: its layers say FP32


def test_an_int8_engine_needs_int8_layers_and_fp16_ones_do_not_count():
    mixed = trt_proof.layer_precisions(information(layer("CaskConvolution", "Half", "Half")))
    with pytest.raises(UnsupportedConfig, match="none in int8"):
        trt_proof.prove_precision("int8", mixed)


def test_parser_errors_name_the_node_its_name_and_operator():
    class Error:
        def __init__(self, node, name, operator, desc):
            self._values = node, name, operator, desc

        def node(self):
            return self._values[0]

        def node_name(self):
            return self._values[1]

        def node_operator(self):
            return self._values[2]

        def desc(self):
            return self._values[3]

    errors = [Error(12, "/roi/RoiAlign", "RoiAlign", "No importer registered for op: RoiAlign\nmore"),
              Error(-1, "", "", "ModelImporter.cpp:123: failed to load")]
    parser = SimpleNamespace(num_errors=2, get_error=lambda i: errors[i])
    assert trt_messages.parser_errors(parser) == [
        "node 12 (/roi/RoiAlign, RoiAlign): No importer registered for op: RoiAlign",
        "ModelImporter.cpp:123: failed to load"]


def test_the_engine_key_names_the_gpu_the_version_the_precision_the_shapes_and_the_file(tmp_path):
    request = trt_build.EngineRequest(
        onnx_path=tmp_path / "m.onnx", onnx_sha256="ab" * 32, precision="fp16",
        input_shapes={"input": ((1, 3, 224, 224), (8, 3, 224, 224), (64, 3, 224, 224))},
        workspace_bytes=2**30, optimization_level=3, tf32=False, gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0")
    key = request.cache_key("10.16.1.11")
    assert {key["tensorrt"], key["gpu"], key["compute_capability"], key["precision"], key["onnx"]} == {
        "10.16.1.11", "NVIDIA H100 80GB HBM3", "9.0", "fp16", "ab" * 32}
    assert key["shapes"] == {"input": [[1, 3, 224, 224], [8, 3, 224, 224], [64, 3, 224, 224]]}
    assert request.cache_key("11.4.0.106") != key


def test_tensorrt_11s_split_type_and_format_keys_read_as_10s_combined_one():
    def eleven(kind: str, datatype: str, format_text: str) -> dict:
        tensor = {"Name": "t", "Location": "Device", "Dimensions": [8, 64], "Format": format_text,
                  "Datatype": datatype}
        return {"Name": kind.lower(), "LayerType": kind, "Inputs": [tensor], "Outputs": [tensor]}

    split = trt_proof.layer_precisions(information(
        eleven("CaskConvolution", "Half", "Channel major FP16 format where channel % 8 == 0"),
        eleven("CaskGemm", "Int8", "Row major linear Int8 format"),
        eleven("CaskGemm", "Float", "Row major linear FP32 format (kLINEAR)")))
    combined = trt_proof.layer_precisions(information(
        layer("CaskConvolution", "Channel major FP16 format where channel % 8 == 0"),
        layer("CaskGemm", "Row major linear Int8 format"), layer("CaskGemm", "Row major linear FP32 format")))
    assert split.counts == combined.counts == {"fp16": 1, "int8": 1, "fp32": 1}
    # The type's own key decides, whatever the layout says; spelt as the I/O tensors spell it too.
    assert trt_proof.layer_precisions(information(eleven("CaskGemm", "Half", "Row major linear format"))
                                       ).counts == {"fp16": 1}
    said = trt_proof.tensor_type_text({"DataType": "BFloat16", "Format": "Row major linear format"})
    assert said == "BFloat16"
    assert trt_proof.layer_precisions(information(eleven("CaskGemm", "N/A due to dynamic shapes",
                                                          "N/A due to dynamic shapes"))).unknown
