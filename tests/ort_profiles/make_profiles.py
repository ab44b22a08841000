"""Writes the profiles beside it: ``cpu_dynamic_batch.json``, what onnxruntime 1.31.1 wrote
for a CPU session of a dynamic-batch model with a shape subgraph (Shape, Gather, Unsqueeze,
Concat feeding a Reshape), and ``cuda_dynamic_batch.json``, the same events with the nodes
that have a float output placed on the CUDA provider: what the CUDA provider's own
placement (shape arithmetic left on the CPU) would write, until a GPU records a real one.

    python tests/ort_profiles/make_profiles.py tests/ort_profiles
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def model():
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    zero = numpy_helper.from_array(np.array(0, np.int64), "zero")
    minus1 = numpy_helper.from_array(np.array([-1], np.int64), "minus1")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="matmul"),
        helper.make_node("Relu", ["m"], ["r"], name="relu"),
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="batch_of", axis=0),
        helper.make_node("Unsqueeze", ["n", "zero_axes"], ["n1"], name="unsqueeze"),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], name="target_shape", axis=0),
        helper.make_node("Reshape", ["r", "target"], ["y"], name="flatten"),
    ]
    axes = numpy_helper.from_array(np.array([0], np.int64), "zero_axes")
    graph = helper.make_graph(nodes, "dynamic_batch",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
                              [w, zero, minus1, axes])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


options = ort.SessionOptions()
options.enable_profiling = True
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # every node stays
options.profile_file_prefix = "/tmp/gen-profile"
session = ort.InferenceSession(model().SerializeToString(), options, providers=["CPUExecutionProvider"])
session.run(None, {"x": np.ones((2, 4), np.float32)})
events = json.loads(Path(session.end_profiling()).read_text())
out = Path(sys.argv[1])
(out / "cpu_dynamic_batch.json").write_text(json.dumps(events, indent=1) + "\n")
for event in events:
    args = event.get("args", {})
    if event.get("cat") == "Node" and any(set(o) - {"int64"} for o in args.get("output_type_shape", [])):
        args["provider"] = "CUDAExecutionProvider"
(out / "cuda_dynamic_batch.json").write_text(json.dumps(events, indent=1) + "\n")
