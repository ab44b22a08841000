"""autotune: looks at the NVIDIA GPU it runs on and recommends how to run a model there.

The Python API (:mod:`autotune.api`) is reachable from here, loaded on first use so that
``import autotune`` stays as light as the command line needs::

    import autotune
    recommendation = autotune.recommend(model="resnet50", task="train")
"""

from typing import TYPE_CHECKING

from autotune.version import __version__

_API = ("probe", "recommend", "inspect", "compare", "verify", "bench", "profile", "check_profile")
__all__ = ["__version__", "hookimpl", "apply",
           "probe", "recommend", "inspect", "compare", "verify", "bench", "profile", "check_profile"]  # _API

if TYPE_CHECKING:  # what __getattr__ loads on first use, as type checkers should see it
    from autotune.api import bench, check_profile, compare, inspect, probe, profile, recommend, verify
    from autotune.hookspecs import hookimpl
    from autotune.training.apply import apply


def __getattr__(name: str):
    # Loaded on first use: ``import autotune.auto`` in a training script pays for neither
    # the plugin manager (pluggy) nor the rules engine when a cached profile answers.
    if name == "hookimpl":
        from autotune.hookspecs import hookimpl  # noqa: PLC0415

        return hookimpl
    if name == "apply":
        from autotune.training.apply import apply  # noqa: PLC0415

        return apply
    if name in _API:
        from autotune import api  # noqa: PLC0415

        return getattr(api, name)
    raise AttributeError(f"module 'autotune' has no attribute {name!r}")
