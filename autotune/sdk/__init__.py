"""The plugin SDK: everything a backend plugin imports from autotune.

A plugin imports from ``autotune.sdk`` and its submodules, and from nothing else of
autotune's; the built-in backends (``autotune_plugins.torch``, ``.onnxruntime``,
``.tensorrt``) are held to the same rule, so what they can do, a third-party backend can.

- ``autotune.sdk`` (this module): registering a backend — :data:`hookimpl`, the
  :class:`Backend` record and its :class:`BackendOption` settings, model inspectors and
  converters, extra rules — and the errors a plugin raises. Light: a plugin's registration module is
  imported by every command, ``autotune recommend`` included.
- :mod:`autotune.sdk.running`: the :class:`~autotune.sdk.running.Runner` protocol a backend
  implements to be measured, the records it is handed, and the clocks.
- :mod:`autotune.sdk.models`: what a model takes and costs, synthetic inputs, reference
  models, and the conversion hook (a model in another plugin's format).
- :mod:`autotune.sdk.files`: the on-disk cache and the one reader of a user's file.
- :mod:`autotune.sdk.cuda`: CUDA helpers a GPU runtime shares: OOM recognition, TF32 set
  consistently, the driver check, NVML's view of this process's GPU.
- :mod:`autotune.sdk.testing`: a runner without a framework, for a plugin's tests.
"""

from autotune.errors import AutotuneError, UserError, one_line
from autotune.hookspecs import hookimpl
from autotune.types import Backend, BackendOption, ModelConverter, ModelInspector, Rule

__all__ = ["hookimpl", "Backend", "BackendOption", "ModelConverter", "ModelInspector", "Rule",
           "AutotuneError", "UserError", "one_line"]
