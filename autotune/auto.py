"""``import autotune.auto`` at the top of a training script: this machine's training profile
(or a rules-only recommendation, saved as the profile) is loaded, PyTorch's global settings
it chose are applied (TF32, ``cudnn.benchmark``; never one the script set before), one line
says what, and the choices are here::

    import autotune.auto
    batch_size = autotune.auto.config.batch_size
    print(autotune.auto.config.reasons["batch_size"])

It never breaks the script: see :mod:`autotune.training.config` for the fallbacks and the
environment variables (``AUTOTUNE_DISABLE``, ``AUTOTUNE_PROFILE``, ``AUTOTUNE_STORE``,
``AUTOTUNE_QUIET``).
"""

from autotune.training.config import process_config as _process_config

config = _process_config()
