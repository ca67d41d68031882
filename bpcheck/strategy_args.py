"""The argument checks of bpcheck.strategies: each raises hypothesis.errors.InvalidArgument naming the bad value
and the fix, as hypothesis's own strategies do, before anything is drawn."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis.errors import InvalidArgument

from .spec import ACTIVATIONS, SpecError, UsageError, canonical_activation, resolve_dtype


def check_int(value: Any, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgument(f"{name}={value!r} is not an integer: give an int >= {low}")
    if value < low:
        raise InvalidArgument(f"{name}={value} is below {low}: give an int >= {low}")


def check_range(lo: int, hi: int, lo_name: str, hi_name: str, low: int = 1) -> None:
    check_int(lo, lo_name, low)
    check_int(hi, hi_name, low)
    if lo > hi:
        raise InvalidArgument(f"Cannot have {hi_name}={hi} < {lo_name}={lo}: raise {hi_name} or lower {lo_name}")


def known(value: Any, vocabulary: Sequence[str]) -> bool:
    """value is in vocabulary, or (for activations) a parametrised one of them, such as 'leaky_relu:0.2'."""
    if value in vocabulary:
        return True
    if vocabulary is not ACTIVATIONS:
        return False
    try:
        canonical_activation(value)
    except SpecError:
        return False
    return True


def check_names(values: Any, name: str, vocabulary: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        example = tuple(vocabulary[:2])
        raise InvalidArgument(f"{name}={values!r} is not a sequence of names: give a tuple, like {example}")
    values = tuple(values)
    if not values:
        raise InvalidArgument(f"{name}=() is empty: give at least one of {', '.join(vocabulary)}")
    bad = [v for v in values if not known(v, vocabulary)]
    if bad:
        raise InvalidArgument(f"{name} has unknown {bad[0]!r}: choose from {', '.join(vocabulary)}")
    return values


def check_scale(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise InvalidArgument(f"{name}={value!r} is not a real number: give a positive float, like 1.0")
    if not (math.isfinite(value) and 0 < value <= 1e30):
        raise InvalidArgument(f"{name}={value!r} is not a finite positive scale: give a float in (0, 1e30]")
    return float(value)


def check_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    try:
        return np.dtype(resolve_dtype(dtype))
    except UsageError:  # hypothesis's own error type, naming the argument
        raise InvalidArgument(f"{name}={dtype!r} is not supported: use 'float32' or 'float64'") from None
