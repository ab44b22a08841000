"""The TensorRT stand-in (tests/standin_tensorrt.py) itself, for TensorRT 10 and 11: an ONNX
model built, serialized, deserialized and run on host memory; the failures the real library
reports (through the logger, with None or False); the precision each version's build gives;
and the walk that keeps it from offering a name the real version lacks."""

from __future__ import annotations

import functools
import io
import json
import sys
import warnings

import pytest

np = pytest.importorskip("numpy")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

from tests import standin_tensorrt  # noqa: E402
from tests.standin_tensorrt import make_module, public_names, unregistered_names  # noqa: E402

TENSORRT_10, TENSORRT_11 = "10.16.1.11", "11.4.0.106"
VERSIONS = (TENSORRT_10, TENSORRT_11)
CONV_SHAPES = ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))
ROW_SHAPES = ((1, 4), (2, 4), (4, 4))


@functools.cache
def conv_model() -> bytes:
    """Conv, Relu, global average pool, Flatten, Gemm: input[batch,3,8,8] -> output[batch,5]."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 5))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation: it is the fast one
        torch.onnx.export(model.eval(), (torch.zeros(1, 3, 8, 8),), buffer, input_names=["input"],
                          output_names=["output"], dynamo=False,
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return buffer.getvalue()


@functools.cache
def fp16_model() -> bytes:
    """The conv model converted to FP16 inside, FP32 at its inputs and outputs."""
    float16 = pytest.importorskip("onnxconverter_common.float16")
    model = float16.convert_float_to_float16(onnx.load_from_string(conv_model()), keep_io_types=True)
    return model.SerializeToString()


def row_model(nodes, initializers, opset: int = 13) -> bytes:
    graph = helper.make_graph(
        nodes, "rows", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


@functools.cache
def qdq_model() -> bytes:
    """x[n,4] -> Q/DQ int8 -> MatMul with int8 weights behind a DQ -> y[n,3]: explicit quantization."""
    weights = np.random.default_rng(0).integers(-100, 100, (4, 3)).astype(np.int8)
    initializers = [numpy_helper.from_array(weights, "w"),
                    numpy_helper.from_array(np.float32(0.05), "w_scale"),
                    numpy_helper.from_array(np.int8(0), "w_zero"),
                    numpy_helper.from_array(np.float32(0.02), "x_scale"),
                    numpy_helper.from_array(np.int8(0), "x_zero")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"], name="quantize_x"),
             helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"], name="dequantize_x"),
             helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"], name="dequantize_w"),
             helper.make_node("MatMul", ["xd", "wd"], ["y"], name="matmul")]
    return row_model(nodes, initializers)


def custom_model() -> bytes:
    """A Relu, then an operator of a custom domain that TensorRT has no importer for."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("MyOp", ["r"], ["y"], name="custom", domain="custom.ops")]
    graph = helper.make_graph(nodes, "custom",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("custom.ops", 1)]).SerializeToString()


def recording_logger(trt):
    """A logger as the backend writes one: a subclass of trt.ILogger keeping every message."""

    class Recording(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages = []

        def log(self, severity, msg):
            self.messages.append((severity, msg))

        def said(self, severity: str) -> list[str]:
            return [text for level, text in self.messages if level == getattr(trt.ILogger, severity)]

    return Recording()


def parse(trt, model: bytes, network_flags: int = 0):
    logger = recording_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(model), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    return logger, builder, network


def build(trt, model: bytes, flags=(), shapes=CONV_SHAPES, network_flags: int = 0, detailed: bool = True):
    """The plan of ``model`` with one profile for its first input, and the logger that saw it built."""
    logger, builder, network = parse(trt, model, network_flags)
    config = builder.create_builder_config()
    for flag in flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if detailed:
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    profile = builder.create_optimization_profile()
    profile.set_shape(network.get_input(0).name, *shapes)
    assert config.add_optimization_profile(profile) == 0
    plan = builder.build_serialized_network(network, config)
    assert plan is not None, logger.said("ERROR")
    return plan, logger


def run(engine, inputs: dict[str, torch.Tensor]):
    """Run ``engine`` on CPU tensors through their data_ptr(), as the backend does on the GPU."""
    context = engine.create_execution_context()
    for name, tensor in inputs.items():
        assert context.set_input_shape(name, tuple(tensor.shape))
        context.set_tensor_address(name, tensor.data_ptr())
    outputs = {}
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        if name not in inputs:
            outputs[name] = torch.empty(tuple(context.get_tensor_shape(name)), dtype=torch.float32)
            context.set_tensor_address(name, outputs[name].data_ptr())
    assert context.execute_async_v3(0)
    return outputs, context


def reference(model: bytes, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, {name: tensor.numpy() for name, tensor in inputs.items()})[0]


def compute_formats(trt, engine, context=None) -> list[str]:
    """The format phrase of each compute layer's tensors, as the engine inspector gives them:
    10's "Format/Datatype", 11's "Format" (11 has the type apart, in "Datatype")."""
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context
    information = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    tensors = [tensor for layer in information["Layers"] if layer["LayerType"].startswith("Cask")
               for tensor in (*layer["Inputs"], *layer["Outputs"])]
    if trt.__version__.startswith("10."):
        assert information["Bindings"] == names
        return [tensor["Format/Datatype"] for tensor in tensors]
    assert "Bindings" not in information and [t["Name"] for t in information["I/O Tensors"]] == names
    assert all("Format/Datatype" not in tensor and "Datatype" in tensor for tensor in tensors)
    return [tensor["Format"] for tensor in tensors]


@pytest.mark.parametrize(("version", "keys"), [(TENSORRT_10, {"Format/Datatype"}),
                                               (TENSORRT_11, {"Format", "Datatype"})])
def test_each_version_writes_its_own_inspector_layout(version, keys):
    trt = make_module(version)
    engine = trt.Runtime(recording_logger(trt)).deserialize_cuda_engine(build(trt, fp16_model())[0])
    _, context = run(engine, {"input": torch.randn(2, 3, 8, 8)})
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context
    layers = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))["Layers"]
    conv = next(layer for layer in layers if layer["LayerType"] == "CaskConvolution")
    tensor = conv["Outputs"][0]
    assert set(tensor) == {"Name", "Location", "Dimensions"} | keys
    if version == TENSORRT_11:
        assert tensor["Datatype"] == "Half"


@pytest.mark.parametrize("version", VERSIONS)
def test_a_plan_is_serialized_deserialized_and_run_on_host_memory(version):
    trt = make_module(version)
    plan, build_log = build(trt, conv_model())
    assert build_log.said("ERROR") == [] and build_log.said("INFO")
    assert bytes(plan) == memoryview(plan).tobytes() and plan.nbytes == len(bytes(plan))
    assert plan.dtype == trt.DataType.UINT8 and isinstance(plan, trt.IHostMemory)

    engine = trt.Runtime(recording_logger(trt)).deserialize_cuda_engine(bytes(plan))
    assert [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)] == ["input", "output"]
    assert engine.get_tensor_mode("input") == trt.TensorIOMode.INPUT
    assert engine.get_tensor_mode("output") == trt.TensorIOMode.OUTPUT
    assert engine.get_tensor_mode("nothing") == trt.TensorIOMode.NONE
    assert engine.get_tensor_dtype("output") == trt.DataType.FLOAT
    assert engine.get_tensor_shape("input") == (-1, 3, 8, 8) and engine.get_tensor_shape("output") == (-1, 5)
    assert engine.get_tensor_profile_shape("input", 0) == list(CONV_SHAPES)
    # Four times the largest activation at the profile's max: the input, 4x3x8x8 floats.
    assert engine.num_layers == 5 and engine.device_memory_size_v2 == 4 * (4 * 3 * 8 * 8 * 4)
    assert bytes(engine.serialize()) == bytes(plan)

    x = torch.randn(3, 3, 8, 8)
    outputs, context = run(engine, {"input": x})
    assert context.get_tensor_shape("output") == (3, 5) and context.engine is engine
    np.testing.assert_array_equal(outputs["output"].numpy(), reference(conv_model(), {"input": x}))


@pytest.mark.parametrize("version", VERSIONS)
def test_failures_return_none_or_false_after_an_error_through_the_logger(version):
    trt = make_module(version)
    logger = recording_logger(trt)
    runtime = trt.Runtime(logger)
    assert runtime.deserialize_cuda_engine(b"\x00not a plan at all") is None
    assert "Magic tag does not match" in logger.said("ERROR")[-1]
    plan = bytes(build(trt, conv_model())[0])
    assert runtime.deserialize_cuda_engine(plan[: len(plan) // 3]) is None  # cut short
    assert "Serialization" in logger.said("ERROR")[-1]

    engine = runtime.deserialize_cuda_engine(plan)
    context = engine.create_execution_context()
    assert not context.set_input_shape("input", (9, 3, 8, 8))  # above the profile's max
    assert "does not satisfy any optimization profiles" in logger.said("ERROR")[-1]
    assert not context.set_input_shape("input", (2, 3, 9, 9))  # not the network's static dims
    assert not context.execute_async_v3(0)
    assert "dimensions are not specified: input" in logger.said("ERROR")[-1]
    assert context.infer_shapes() == ["input"]
    x = torch.zeros(2, 3, 8, 8)
    assert context.set_input_shape("input", (2, 3, 8, 8)) and context.infer_shapes() == []
    context.set_tensor_address("input", x.data_ptr())
    assert not context.execute_async_v3(0)
    assert "Address is not set for output tensor output" in logger.said("ERROR")[-1]

    # A dynamic input without a profile, and profiles that do not fit the network.
    build_log, builder, network = parse(trt, conv_model())
    config = builder.create_builder_config()
    assert builder.build_serialized_network(network, config) is None
    assert "no optimization profile has been defined" in build_log.said("ERROR")[-1]
    backwards = builder.create_optimization_profile()
    backwards.set_shape("input", (4, 3, 8, 8), (2, 3, 8, 8), (1, 3, 8, 8))
    assert not backwards and config.add_optimization_profile(backwards) == -1
    wrong_size = builder.create_optimization_profile()
    wrong_size.set_shape("input", (1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 16, 16))
    assert config.add_optimization_profile(wrong_size) == 0
    assert builder.build_serialized_network(network, config) is None
    assert "does not match network definition" in build_log.said("ERROR")[-1]


def test_a_plan_from_another_tensorrt_version_is_refused():
    plan = build(make_module(TENSORRT_10), conv_model())[0]
    eleven = make_module(TENSORRT_11)
    logger = recording_logger(eleven)
    assert eleven.Runtime(logger).deserialize_cuda_engine(plan) is None
    assert ("The engine plan file is not compatible with this version of TensorRT, expecting library version "
            f"{TENSORRT_11} got {TENSORRT_10}, please rebuild.") in logger.said("ERROR")[-1]
    # Any 10.x takes 10's API, and its plans are its own.
    nine = make_module("10.9.0.34")
    assert hasattr(nine.BuilderFlag, "FP16")
    ten = make_module(TENSORRT_10)
    assert ten.Runtime(recording_logger(ten)).deserialize_cuda_engine(build(nine, conv_model())[0]) is None


def test_tensorrt_10s_fp16_flag_gives_half_layers_the_inspector_shows_only_with_shapes():
    trt = make_module(TENSORRT_10)
    assert trt.Builder(recording_logger(trt)).platform_has_fast_fp16
    engine = trt.Runtime(recording_logger(trt)).deserialize_cuda_engine(build(trt, conv_model(), ["FP16"])[0])
    assert set(compute_formats(trt, engine)) == {"N/A due to dynamic shapes"}
    x = torch.randn(2, 3, 8, 8)
    outputs, context = run(engine, {"input": x})
    formats = compute_formats(trt, engine, context)
    assert formats and all("FP16" in text for text in formats)
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context
    first = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))["Layers"][0]
    assert first["LayerType"] == "Reformat" and first["Inputs"][0]["Dimensions"] == [2, 3, 8, 8]
    assert [t["Format/Datatype"] for t in (*first["Inputs"], *first["Outputs"])] == [
        "Row major linear FP32 format", "Row major linear FP16 format"]
    # The outputs went through FP16, so precision shows.
    y = outputs["output"]
    torch.testing.assert_close(y, y.half().float(), rtol=0, atol=0)
    np.testing.assert_allclose(y.numpy(), reference(conv_model(), {"input": x}), atol=2e-3)
    # FP32 by default, TF32 on by default, as in the real library.
    config = trt.Builder(recording_logger(trt)).create_builder_config()
    assert config.get_flag(trt.BuilderFlag.TF32) and not config.get_flag(trt.BuilderFlag.FP16)
    plain = trt.Runtime(recording_logger(trt)).deserialize_cuda_engine(build(trt, conv_model())[0])
    assert all("FP32" in text for text in compute_formats(trt, plain, run(plain, {"input": x})[1]))


def test_tensorrt_11_has_no_precision_flags_and_takes_half_from_an_fp16_file():
    trt = make_module(TENSORRT_11)
    for owner, name in [(trt.BuilderFlag, "FP16"), (trt.BuilderFlag, "INT8"), (trt.BuilderFlag, "BF16"),
                        (trt.BuilderFlag, "OBEY_PRECISION_CONSTRAINTS"),
                        (trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")]:
        with pytest.raises(AttributeError):
            getattr(owner, name)
    builder = trt.Builder(recording_logger(trt))
    with pytest.raises(AttributeError):
        builder.platform_has_fast_fp16  # noqa: B018
    with pytest.raises(AttributeError):
        builder.create_builder_config().int8_calibrator  # noqa: B018
    assert {trt.DataType.HALF, trt.DataType.BF16, trt.DataType.INT8, trt.DataType.FP8} <= set(trt.DataType)

    x = torch.randn(2, 3, 8, 8)
    strongly = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # accepted, changes nothing
    engine = trt.Runtime(recording_logger(trt)).deserialize_cuda_engine(
        build(trt, fp16_model(), network_flags=strongly)[0])
    with pytest.raises(AttributeError):
        engine.device_memory_size  # noqa: B018
    assert engine.get_tensor_dtype("input") == trt.DataType.FLOAT  # keep_io_types
    outputs, context = run(engine, {"input": x})
    formats = compute_formats(trt, engine, context)
    assert formats and all("FP16" in text for text in formats)
    np.testing.assert_allclose(outputs["output"].numpy(), reference(fp16_model(), {"input": x}), atol=1e-3)
    # The FP32 file gives FP32 layers on 11: there is no flag to ask for more.
    plain = trt.Runtime(recording_logger(trt)).deserialize_cuda_engine(build(trt, conv_model())[0])
    assert all("FP32" in text for text in compute_formats(trt, plain, run(plain, {"input": x})[1]))


def test_built_precision_makes_every_layer_report_it_with_a_warning_only():
    trt = make_module(TENSORRT_11, built_precision="Float")
    plan, logger = build(trt, fp16_model())
    assert logger.said("ERROR") == [] and any("Float" in text for text in logger.said("WARNING"))
    engine = trt.Runtime(recording_logger(trt)).deserialize_cuda_engine(plan)
    formats = compute_formats(trt, engine, run(engine, {"input": torch.randn(2, 3, 8, 8)})[1])
    assert formats and set(formats) == {"Row major linear FP32 format"}
    with pytest.raises(ValueError, match="built_precision"):
        make_module(TENSORRT_11, built_precision="fp16")


def test_int8_takes_the_flag_and_qdq_nodes_on_10_and_the_qdq_nodes_alone_on_11():
    ten = make_module(TENSORRT_10)
    x = {"x": torch.randn(3, 4)}

    def int8_formats(trt, model, flags=(), shapes=ROW_SHAPES):
        plan, logger = build(trt, model, flags, shapes)
        engine = trt.Runtime(recording_logger(trt)).deserialize_cuda_engine(plan)
        inputs = x if model == qdq_model() else {"input": torch.randn(2, 3, 8, 8)}
        outputs, context = run(engine, inputs)
        return [text for text in compute_formats(trt, engine, context) if "Int8" in text], logger, outputs

    assert int8_formats(ten, qdq_model())[0] == []  # Q/DQ nodes, no flag
    quantized, _, outputs = int8_formats(ten, qdq_model(), ["INT8"])
    assert quantized
    np.testing.assert_allclose(outputs["y"].numpy(), reference(qdq_model(), x), rtol=1e-6)
    unquantized, logger, _ = int8_formats(ten, conv_model(), ["INT8"], CONV_SHAPES)  # the flag, no Q/DQ
    assert unquantized == [] and any("Calibrator is not being used" in t for t in logger.said("WARNING"))
    assert int8_formats(make_module(TENSORRT_11), qdq_model())[0]  # strongly typed: the file decides


def test_a_strongly_typed_network_on_10_ignores_the_precision_flags_with_a_warning():
    trt = make_module(TENSORRT_10)
    strongly = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    plan, logger = build(trt, conv_model(), ["FP16"], network_flags=strongly)
    assert any("strongly typed" in text for text in logger.said("WARNING"))
    engine = trt.Runtime(recording_logger(trt)).deserialize_cuda_engine(plan)
    formats = compute_formats(trt, engine, run(engine, {"input": torch.randn(2, 3, 8, 8)})[1])
    assert formats and all("FP32" in text for text in formats)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_parser_names_each_node_it_has_no_importer_for(version, tmp_path):
    trt = make_module(version)
    logger = recording_logger(trt)
    parser = trt.OnnxParser(trt.Builder(logger).create_network(0), logger)
    assert not parser.parse(custom_model())
    assert parser.num_errors == 1
    error = parser.get_error(0)
    assert (error.node(), error.node_name(), error.node_operator()) == (1, "custom", "MyOp")
    assert error.code() == trt.ErrorCode.INVALID_NODE and "Plugin not found" in error.desc()
    assert str(error).startswith("In node 1 with name: custom and operator: MyOp "
                                 "(checkFallbackPluginImporter): INVALID_NODE: ")
    assert "No checker registered for op: MyOp" in logger.said("INFO")[-1] and logger.said("ERROR")
    parser.clear_errors()
    assert parser.num_errors == 0 and parser.get_error(0) is None

    # A file that does not load: one error about no node.
    parser = trt.OnnxParser(trt.Builder(logger).create_network(0), logger)
    assert not parser.parse_from_file(str(tmp_path / "missing.onnx"))
    assert parser.num_errors == 1 and parser.get_error(0).node() == -1
    assert parser.get_error(0).code() == trt.ErrorCode.MODEL_DESERIALIZE_FAILED
    assert not trt.OnnxParser(trt.Builder(logger).create_network(0), logger).parse(b"\x08\x01garbage")

    # A standard operator refused, as tests of the backend ask for.
    path = tmp_path / "conv.onnx"
    path.write_bytes(conv_model())
    standin_tensorrt.refuse_operator(trt, "Gemm")
    parser = trt.OnnxParser(trt.Builder(logger).create_network(0), logger)
    assert not parser.parse_from_file(str(path))
    assert (parser.get_error(0).node(), parser.get_error(0).node_operator()) == (4, "Gemm")


@pytest.mark.parametrize("version", VERSIONS)
def test_a_timing_cache_round_trips_and_one_from_another_version_is_refused(version):
    trt = make_module(version)
    logger, builder, network = parse(trt, conv_model())
    config = builder.create_builder_config()
    assert config.get_timing_cache() is None
    cache = config.create_timing_cache(b"")
    assert config.set_timing_cache(cache, False) and config.get_timing_cache() is cache
    profile = builder.create_optimization_profile()
    profile.set_shape("input", *CONV_SHAPES)
    config.add_optimization_profile(profile)
    assert builder.build_serialized_network(network, config) is not None
    saved = bytes(config.get_timing_cache().serialize())
    assert version.encode() in saved and len(saved) > len(bytes(trt.Builder(logger).create_builder_config()
                                                                 .create_timing_cache(b"").serialize()))
    again = config.create_timing_cache(saved)
    assert config.set_timing_cache(again, False) and bytes(again.serialize()) == saved

    other = make_module(TENSORRT_11 if version == TENSORRT_10 else TENSORRT_10)
    foreign = other.Builder(recording_logger(other)).create_builder_config().create_timing_cache(b"")
    imported = config.create_timing_cache(bytes(foreign.serialize()))
    assert imported is not None
    assert not config.set_timing_cache(imported, False) and config.set_timing_cache(imported, True)
    assert config.create_timing_cache(b"not a timing cache") is None and logger.said("ERROR")


@pytest.mark.parametrize("version", VERSIONS)
def test_every_public_name_is_one_that_version_registers(version):
    trt = make_module(version)
    assert unregistered_names(trt) == set()
    names = public_names(trt)
    # The walk reaches module attributes, class members (inherited ones too), nested enums'
    # members and tail-merged names.
    assert {"__version__", "Builder", "build_serialized_network", "Severity", "VERBOSE", "UINT8", "INT8",
            "execute_async_v3", "get_engine_information", "nbytes", "min_severity"} <= names
    assert ("FP16" in names) == (version == TENSORRT_10)
    assert ("device_memory_size" in names) == (version == TENSORRT_10)
    assert not {"bit_length", "from_buffer_copy", "raw"} & names  # int's and ctypes' own, not TensorRT's

    # A name the real version lacks is caught, wherever it is defined.
    trt.ICudaEngine.get_binding_shape = lambda self, index: ()
    assert unregistered_names(trt) == {"get_binding_shape"}


@pytest.mark.parametrize("version", VERSIONS)
def test_objects_keep_no_public_state_of_their_own_and_take_no_unknown_attribute(version):
    trt = make_module(version)
    plan, logger = build(trt, conv_model())
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    _, context = run(engine, {"input": torch.zeros(1, 3, 8, 8)})
    _, builder, network = parse(trt, conv_model())
    objects = [engine, context, engine.create_engine_inspector(), builder, network, network.get_input(0),
               builder.create_builder_config(), builder.create_optimization_profile(), trt.Runtime(logger),
               trt.OnnxParser(network, logger), trt.Logger(trt.Logger.INFO)]
    for thing in objects:
        assert not [name for name in vars(thing) if not name.startswith("_")], thing
    config = builder.create_builder_config()
    with pytest.raises(AttributeError):
        config.max_workspace_size = 1  # removed in TensorRT 10: a pybind11 object refuses it
    config.builder_optimization_level = 5  # a real property takes it
    assert config.builder_optimization_level == 5
    with pytest.raises(TypeError):
        trt.ICudaEngine()


@pytest.mark.parametrize("version", VERSIONS)
def test_enums_loggers_and_argument_types_behave_as_pybind11s(version, monkeypatch):
    trt = standin_tensorrt.install(monkeypatch, version)
    assert sys.modules["tensorrt"] is trt and trt.__version__ == version
    assert int(trt.BuilderFlag.TF32) == 6 and str(trt.BuilderFlag.TF32) == "BuilderFlag.TF32"
    assert trt.ILogger.WARNING is trt.ILogger.Severity.WARNING is trt.Logger.Severity.WARNING

    kept = trt.Logger(trt.Logger.WARNING)
    kept.log(trt.Logger.INFO, "dropped")
    kept.log(trt.Logger.ERROR, "kept")
    assert kept.min_severity == trt.Logger.WARNING and kept._messages == [(trt.Logger.ERROR, "kept")]
    trt.Builder(kept)  # the shipped Logger is a logger too

    class Forgetful(trt.ILogger):
        def __init__(self):  # does not call trt.ILogger.__init__: pybind11 refuses the object
            self.messages = []

    with pytest.raises(TypeError, match="__init__"):
        trt.Builder(Forgetful())
    config = trt.Builder(kept).create_builder_config()
    with pytest.raises(TypeError):
        config.set_flag(6)  # a plain int is no BuilderFlag
    other = make_module(TENSORRT_11 if version == TENSORRT_10 else TENSORRT_10)
    with pytest.raises(TypeError):
        config.set_flag(other.BuilderFlag.TF32)  # nor is another module's
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 2**30)
    assert config.get_memory_pool_limit(trt.MemoryPoolType.WORKSPACE) == 2**30
    assert config.profiling_verbosity == trt.ProfilingVerbosity.LAYER_NAMES_ONLY
    assert trt.init_libnvinfer_plugins(kept, "")

    # LAYER_NAMES_ONLY (the default): the inspector gives names only.
    engine = trt.Runtime(kept).deserialize_cuda_engine(build(trt, conv_model(), detailed=False)[0])
    layers = json.loads(engine.create_engine_inspector().get_engine_information(
        trt.LayerInformationFormat.JSON))["Layers"]
    assert layers == ["/0/Conv", "/1/Relu", "/2/GlobalAveragePool", "/3/Flatten", "/4/Gemm"]
    with pytest.raises(ValueError, match="TensorRT 10 and 11"):
        make_module("8.6.1")
