"""The layers: LAYERS maps a kind to its Layer (bpcheck.layers.base), one module per kind (registry.py holds LAYERS)."""

from __future__ import annotations

from .base import BugShape, Layer
from .registry import LAYERS, register

__all__ = ["LAYERS", "BugShape", "Layer", "register"]

# One line per kind; each module registers its Layer at import.
from .activation import ACTIVATION  # noqa: E402,F401
from .avgpool2d import AVGPOOL2D  # noqa: E402,F401
from .batchnorm import BATCHNORM  # noqa: E402,F401
from .conv2d import CONV2D  # noqa: E402,F401
from .dense import DENSE  # noqa: E402,F401
from .dropout import DROPOUT  # noqa: E402,F401
from .flatten import FLATTEN  # noqa: E402,F401
from .layernorm import LAYERNORM  # noqa: E402,F401
from .maxpool2d import MAXPOOL2D  # noqa: E402,F401
