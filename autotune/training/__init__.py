"""A training script's side: what ``import autotune.auto`` loads and applies, ``autotune.apply``,
the OOM-proof step and TF32 for PyTorch."""
