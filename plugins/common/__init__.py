"""What the ONNX-based backends share: the checked ONNX file, its precision variants (made with
ONNX Runtime's tools), ONNX Runtime's messages, the NVML peak and the CUDA-event clock."""
