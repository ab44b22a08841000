"""A helper library that a stand-in model imports lazily, inside its factory.

Importing it creates a class-level tensor, as detection libraries do for their anchor
grids: built under ``with torch.device("meta")`` it would be a meta tensor for the rest
of the process, and every real run of the model would then fail.
"""

from __future__ import annotations

import torch


class Anchors:
    GRID = torch.arange(8.0)
