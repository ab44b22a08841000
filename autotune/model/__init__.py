"""The user's model: what ``--model`` names, what it costs (parameters, FLOPs, activations),
the memory model, the OOM step-down, and conversion to another format."""
