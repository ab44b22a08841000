"""What the machine has: its GPUs through NVML (or a recording of them), its CPU and memory,
the GPU spec database, and whether the NVIDIA driver runs the installed CUDA."""
