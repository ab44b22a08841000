"""autotune: looks at the NVIDIA GPU it runs on and recommends how to run a model there.

The Python API (:mod:`autotune.api`) is reachable from here, loaded on first use so that
``import autotune`` stays as light as the command line needs::

    import autotune
    recommendation = autotune.recommend(model="resnet50", task="train")
"""

from autotune.hookspecs import hookimpl

__version__ = "0.1.0"
_API = ("probe", "recommend", "inspect", "verify", "bench")
__all__ = ["__version__", "hookimpl", *_API]


def __getattr__(name: str):
    if name in _API:
        from autotune import api  # noqa: PLC0415 - loaded on first use

        return getattr(api, name)
    raise AttributeError(f"module 'autotune' has no attribute {name!r}")
