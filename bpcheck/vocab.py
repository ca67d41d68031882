"""The words a spec is written in: the errors, the activation and loss names, the dtypes, and the layer kinds.

Why a module of its own: the layer kinds (bpcheck.layers.*) import these errors and names, and the Arch
validates each layer through the registry, so neither may import the other at module level. Both import
this module instead: `LAYERS` here is the very dict `bpcheck.layers.LAYERS` fills at import of each kind
(bpcheck/__init__ imports bpcheck.layers, so the dict is full before any Arch can be built), and spec reads
it without importing a kind. Imports stay one-way: vocab <- spec <- ops <- layers <- engine.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

import numpy as np

ACTIVATIONS: tuple[str, ...] = (
    "identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "softmax", "silu", "gelu_tanh",
)
LOSSES: tuple[str, ...] = ("mse", "bce", "cross_entropy", "huber")
# Activations that take a parameter, written 'name:value' ('leaky_relu:0.2'): name -> (what it is, default).
PARAMETERS: dict[str, tuple[str, float]] = {"leaky_relu": ("slope", 0.01)}
# A loss computed from logits fixes the output activation it is fused with.
LOSS_OUTPUT: dict[str, str] = {"bce": "sigmoid", "cross_entropy": "softmax"}
DTYPES: dict[str, type] = {"float32": np.float32, "float64": np.float64}
# kind -> bpcheck.layers.base.Layer; filled by bpcheck.layers.register (see the module docstring).
LAYERS: dict[str, Any] = {}

Params = dict[str, np.ndarray]
Grads = dict[str, np.ndarray]


class BpcheckError(ValueError):
    """Any error a user can fix; the CLI prints its message as one line and exits 2."""


class SpecError(BpcheckError):
    """An invalid architecture, parameter set or spec JSON."""


class DataError(BpcheckError):
    """Inputs or targets that do not fit the architecture or the loss."""


class UserFunctionError(BpcheckError):
    """A user's gradient or loss function that cannot be loaded, called or read."""


class UsageError(BpcheckError):
    """A command-line or API option with a bad value."""


def suggest(name: object, choices: tuple[str, ...] | list[str]) -> str:
    """' (did you mean 'x'?)' for the nearest choice, or '' when none is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def split_activation(act: Any) -> tuple[str, float | None]:
    """('leaky_relu', 0.2) for 'leaky_relu:0.2', ('tanh', None) for 'tanh'; a SpecError names a bad one."""
    if not isinstance(act, str):
        raise SpecError(f"Arch has activation {act!r}, not a name: choose from {', '.join(ACTIVATIONS)}")
    base, sep, text = act.partition(":")
    if base not in ACTIVATIONS:
        raise SpecError(f"Arch has unknown activation {act!r}{suggest(base, ACTIVATIONS)}: choose from "
                        f"{', '.join(ACTIVATIONS)}")
    if not sep:
        return base, None
    if base not in PARAMETERS:
        raise SpecError(f"Arch has activation {act!r}, but {base} takes no parameter: write {base!r}")
    what, default = PARAMETERS[base]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise SpecError(f"Arch has activation {act!r}: its {what} {text!r} is not a finite number >= 0; write e.g. "
                        f"{base}:0.2 (default {default:g})")
    return base, value


def canonical_activation(act: Any) -> str:
    """The one spelling of an activation: 'leaky_relu:0.2', and the bare name for the default parameter
    ('leaky_relu:0.01' is 'leaky_relu'), so equal nets compare, hash and serialise equal."""
    base, value = split_activation(act)
    if value is None or value == PARAMETERS[base][1]:
        return base
    return f"{base}:{value!r}"


def resolve_dtype(dtype: Any) -> type:
    """np.float32 / np.float64 from a dtype or its name; anything else is a UsageError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in DTYPES:
        raise UsageError(f"dtype {dtype!r} is not supported: use 'float32' or 'float64'")
    return DTYPES[dt.name]
