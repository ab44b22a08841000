"""autotune's built-in plugins, installed as ``autotune_plugins``.

Each module is an ordinary plugin declared in ``[project.entry-points.autotune]``, the
same road a third-party plugin takes. A backend's framework is imported only inside the
functions that run it, so listing the plugins never pays for torch or onnxruntime.
"""
