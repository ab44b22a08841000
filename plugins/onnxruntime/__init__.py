"""The ONNX Runtime backend: CUDA, TensorRT or CPU execution providers, and the ONNX model
inspector."""
