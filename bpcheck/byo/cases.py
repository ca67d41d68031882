"""The cases check_gradients checks: drawn as the sweep draws them (case i from (seed, i) alone), given as Cases,
or built around the user's fixed (x, y) data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..spec import Arch, Case, DataError, UsageError, init_params, resolve_dtype

FIXED_DATA_DRAWS = 3     # parameter sets drawn for fixed (x, y) data


def build_cases(arch: Any, cases: Any, *, seed: int, dtype: Any, any_arch: bool, targets: str | None = None) -> list[Case]:
    """The cases to check: drawn (an int), given (Cases), or built around fixed (x, y) data."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed={seed!r} is not a whole number >= 0: give e.g. seed=0")
    dtypes = _dtypes(dtype)
    fixed = _as_arch(arch) if arch is not None and not _is_strategy(arch) else None
    if isinstance(cases, bool):
        raise UsageError(f"cases={cases!r}: give a number of cases, a list of Cases, or (x, y)")
    if isinstance(cases, (int, np.integer)):
        if cases < 1:
            raise UsageError(f"cases={cases} draws nothing: give a number >= 1")
        if fixed is None and not any_arch:
            raise UsageError("arch is missing: give the Arch grad_fn computes, e.g. Arch((2, 2, 1), "
                             "('sigmoid', 'sigmoid'), 'mse'), or make grad_fn take (arch, params, x, y)")
        if targets == "labels" and fixed is not None and fixed.loss != "cross_entropy":
            raise UsageError(f"targets 'labels' gives integer class indices, for cross_entropy; arch {fixed.label()} "
                             f"declares {fixed.loss}: leave targets out or use 'onehot'")
        return draw_cases(fixed if fixed is not None else arch, int(cases), seed, dtypes, targets)
    if isinstance(cases, tuple) and len(cases) == 2 and not isinstance(cases[0], Case):
        if fixed is None:
            raise UsageError("fixed (x, y) data needs a fixed arch: give arch=Arch(...)")
        return _around_data(fixed, cases[0], cases[1], seed, dtypes)
    if isinstance(cases, Sequence) and cases and all(isinstance(c, Case) for c in cases):
        if not any_arch:
            archs = {c.arch for c in cases}
            expected = fixed or next(iter(archs))
            if archs != {expected}:
                raise UsageError(f"cases have archs {sorted(a.label() for a in archs)}, but grad_fn(params, x, y) "
                                 f"computes one ({expected.label()}): give cases of one arch, or make grad_fn take arch")
        return list(cases)
    raise UsageError(f"cases={cases!r:.60} is not a number, a list of Cases or (x, y): give e.g. cases=10")


def _dtypes(dtype: Any) -> tuple[str, ...]:
    if dtype is None:
        return ("float64", "float32")
    items = [dtype] if isinstance(dtype, str) or not isinstance(dtype, Sequence) else list(dtype)
    return tuple(np.dtype(resolve_dtype(d)).name for d in items)


def _is_strategy(arch: Any) -> bool:
    from hypothesis.strategies import SearchStrategy

    return isinstance(arch, SearchStrategy)


def _as_arch(arch: Any) -> Arch:
    if isinstance(arch, Arch):
        return arch
    if isinstance(arch, dict):
        return Arch.from_dict(arch)
    raise UsageError(f"arch={arch!r:.60} is not an Arch: give Arch(sizes, activations, loss), its dict, "
                     "or (for grad_fn(arch, params, x, y)) a strategy of Archs or None")


def draw_cases(archs: Arch | Any | None, n: int, seed: int, dtypes: Sequence[str], targets: str | None = None) -> list[Case]:
    """n Cases from bpcheck.strategies.cases, as the sweep draws them (bpcheck.draw): case i from (seed, i)
    alone, its regime and dtype cycling through every regime and the requested dtypes.

    archs: a fixed Arch, a strategy of Archs, or None for the sweep's small nets.
    """
    from ..draw import archs_for, draw, regime_and_dtype
    from ..stacks import case_for
    from ..strategies import REGIMES
    from ..strategies import cases as case_strategy

    out = []
    for i in range(n):
        regime, dt = regime_and_dtype(i, REGIMES, tuple(dtypes))
        if isinstance(archs, Arch) and not archs.is_mlp:  # a stack: drawn as the layered sweep draws its cases
            out.append(case_for(np.random.default_rng([seed, i]), archs, regime, dt))
            continue
        chosen = archs if archs is not None else archs_for(regime, 3, 4)
        out.append(draw(case_strategy(archs=chosen, regimes=(regime,), dtypes=(dt,), targets=targets), (seed, i)))
    return out


def _around_data(arch: Arch, x: Any, y: Any, seed: int, dtypes: Sequence[str]) -> list[Case]:
    """FIXED_DATA_DRAWS cases on the user's (x, y): Xavier weights, biases ~ N(0, 0.5^2), per dtype."""
    x, y = _numbers("x", x), _numbers("y", y)
    out = []
    for i in range(FIXED_DATA_DRAWS):
        rng = np.random.default_rng([seed, i])
        params = init_params(arch, rng)
        params = {k: v + 0.5 * rng.standard_normal(v.shape) if k.startswith("b") else v for k, v in params.items()}
        dt = dtypes[i % len(dtypes)]
        out.append(Case(arch, params, x, y).astype(dt))
    return out


def _numbers(name: str, value: Any) -> np.ndarray:
    """The user's fixed x or y as float64; text, objects or ragged rows are a DataError naming the value."""
    try:
        arr = np.asarray(value)
        if name == "y" and arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer):
            return arr  # class labels for cross_entropy: Case keeps them integers
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} cannot be read as numbers ({exc}): give a 2-D array of floats") from None
