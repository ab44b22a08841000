"""The TensorRT backend: engines built from ONNX for NVIDIA GPUs (TensorRT 10 and 11)."""
