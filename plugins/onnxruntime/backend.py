"""The ONNX Runtime backend: CUDA, TensorRT or CPU execution providers."""

from autotune.sdk import Backend, BackendOption, ModelInspector, hookimpl

#: How an INT8 model is made (see ``autotune_plugins.common.onnx_variants``). The static methods are
#: the plausible ones on a CPU: which is fastest differs by CPU (VNNI or not, AVX-512 or
#: AVX2), so verify measures them rather than fixing one. ``dynamic`` computes activation
#: scales at run time, meant for transformers' MatMuls; on a convolutional net it takes the
#: ConvInteger path, measured several times *slower* than FP32 (16 against 95 samples/s for
#: resnet18 on this build machine's CPU), so no rule picks it and verify explores it for
#: transformers only; ``--set onnxruntime.int8_method=dynamic`` asks for it anywhere.
INT8_STATIC_METHODS = ("qdq", "qoperator", "qdq_s8")

OPTIONS = (
    BackendOption("provider", "choice", "execution provider: auto (CUDA on a GPU, the CPU provider on a "
                  "CPU), cpu, cuda or tensorrt; a GPU provider that cannot load is reported, never "
                  "replaced by the CPU", default="auto", choices=("auto", "cpu", "cuda", "tensorrt")),
    BackendOption("int8_method", "choice", "how the INT8 model is made: static calibrated qdq (uint8 "
                  "activations, per-channel int8 weights), qoperator (the same with reduce_range, "
                  "QLinear operators), qdq_s8 (symmetric int8, TensorRT's form), or dynamic (activation "
                  "scales at run time, for transformers; slow on convolutions)", default="qdq",
                  choices=(*INT8_STATIC_METHODS, "dynamic"), explore=True, precisions=("int8",),
                  explore_choices=INT8_STATIC_METHODS,
                  # On a small BERT-like encoder dynamic was the fastest INT8 method in one run
                  # (495 against 453 samples/s for qdq) and within 1 % of it in the next
                  # (benchmarks/verify_vs_sweep.py): worth a measurement on transformers.
                  explore_also=(("model.family == 'transformer'", ("dynamic",)),)),
    BackendOption("graph_optimization", "choice", "ONNX Runtime graph optimisation level",
                  default="all", choices=("all", "extended", "basic", "disabled")),
    BackendOption("execution_mode", "choice", "run independent branches one after another or in "
                  "parallel (inter-op threads)", default="sequential", choices=("sequential", "parallel"),
                  devices=("cpu",)),
    BackendOption("cudnn_conv_algo_search", "choice", "how the CUDA provider picks convolution "
                  "algorithms: heuristic (quick), exhaustive (times each, per new shape) or default",
                  default="heuristic", choices=("heuristic", "exhaustive", "default"), devices=("cuda",)),
    BackendOption("prefer_nhwc", "bool", "NHWC (channels-last) convolution kernels in the CUDA provider",
                  default=False, decision="channels_last", explore=True, devices=("cuda",),
                  model_kinds=("image",)),
    BackendOption("tf32", "bool", "TF32 for FP32 matmuls and convolutions in the CUDA provider (its "
                  "use_tf32, on by default in ONNX Runtime; off unless the tf32 decision says so)",
                  default=False, decision="tf32", devices=("cuda",)),
    BackendOption("cuda_graph", "bool", "capture the run in a CUDA graph (static shapes only)",
                  default=False, devices=("cuda",)),
)


@hookimpl
def autotune_backends():
    return [
        Backend(
            name="onnxruntime",
            framework="onnxruntime",
            # onnxruntime-gpu and onnxruntime install the same import name.
            distributions=("onnxruntime-gpu", "onnxruntime"),
            description="ONNX Runtime with the CUDA, TensorRT or CPU execution provider; FP32, FP16, "
                        "INT8 and INT4 models; inference only",
            runner="autotune_plugins.onnxruntime.runner:OrtRunner",
            options=OPTIONS,
        )
    ]


@hookimpl
def autotune_model_inspectors():
    return [
        ModelInspector(
            name="onnx",
            framework="onnx",
            kinds=("onnx",),
            inspect="autotune_plugins.onnxruntime.inspect:inspect_source",
        )
    ]
