"""autotune: looks at the NVIDIA GPU it runs on and recommends how to run a model there."""

from autotune.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
