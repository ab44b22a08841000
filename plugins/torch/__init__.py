"""The PyTorch backend: eager PyTorch (optionally torch.compile) on CUDA or the CPU, its model
inspector and its ONNX converter."""
