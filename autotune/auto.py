"""``import autotune.auto`` at the top of a training script: this machine's training profile
(or a rules-only recommendation, saved as the profile) is loaded, PyTorch's global settings
it chose are applied (TF32, ``cudnn.benchmark``; never one the script set before), one line
says what, and the choices are here::

    import autotune.auto
    batch_size = autotune.auto.config.batch_size
    print(autotune.auto.config.reasons["batch_size"])

It never breaks the script: see :mod:`autotune.training_config` for the fallbacks and the
environment variables (``AUTOTUNE_DISABLE``, ``AUTOTUNE_PROFILE``, ``AUTOTUNE_STORE``,
``AUTOTUNE_QUIET``).
"""

import os as _os
import sys as _sys
from dataclasses import replace as _replace

from autotune.training_config import apply_torch_settings as _apply_torch_settings
from autotune.training_config import load_training_config as _load
from autotune.training_config import summary as _summary

config = _load()
if config.source != "disabled":
    _torch_was_imported = "torch" in _sys.modules
    config = _replace(config, applied=_apply_torch_settings(config, torch_was_imported=_torch_was_imported))
    if _os.environ.get("AUTOTUNE_QUIET") != "1":
        print(_summary(config), file=_sys.stderr)
