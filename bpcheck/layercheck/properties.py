"""Reference-free properties of a backward: they need no FD, torch or jax, and hold in any precision.

Each function takes what the worker sent back and returns '' or one sentence naming the argument, where,
and the likely cause. Bounds: `close` allows rtol of the norms involved plus PROBE_SAFETY times the
rounding scale E of the argument's backward (references.Oracle.rounding; 0 for a layer of no known kind),
so cancellation-heavy backwards (batchnorm's dx at batch 2) are held to their own rounding, not to 1e-9.
"""

from __future__ import annotations

import numpy as np

from ..byo.calls import changed_in_place
from .judge import PROBE_SAFETY

RTOL = 1e-9          # float64: two sums of the same terms in another order
RTOL32 = 1e-4        # a layer that computes in float32 inside


def _norm(a: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64).ravel()))


def _where(diff: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)) if diff.size else ()


def close(a: np.ndarray, b: np.ndarray, scale: float, e: float, rtol: float) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        d = _norm(a - b)
    return bool(np.isfinite(d) and d <= rtol * scale + PROBE_SAFETY * e)


def zero_dout(kind: str, names: list[str], grads: list[np.ndarray]) -> tuple[str, str]:
    """A backward is linear in dout, so dout = 0 gives exactly 0 (any float: 0 * finite is 0)."""
    for name, g in zip(names, grads):
        g = np.asarray(g)
        if np.any(g != 0):
            where = _where(np.abs(np.nan_to_num(g, nan=np.inf)))
            return name, (f"d{name} of {kind} is not 0 for dout = 0 ({g[where]:.6g} at {where}): the backward does not "
                          "scale with dout (dout ignored, assumed all ones, or a term added that is not multiplied by it)")
    return "", ""


def linearity(kind: str, names: list[str], g1: list, g2: list, g12: list, a: float, b: float,
              rounding: dict[str, float], rtol: float) -> tuple[str, str]:
    """backward(a d1 + b d2) = a backward(d1) + b backward(d2)."""
    for name, x, y, z in zip(names, g1, g2, g12):
        want = a * np.asarray(x, dtype=np.float64) + b * np.asarray(y, dtype=np.float64)
        scale = abs(a) * _norm(x) + abs(b) * _norm(y) + _norm(z)
        if not close(z, want, scale, (abs(a) + abs(b) + 1) * rounding.get(name, 0.0), rtol):
            diff = np.abs(np.asarray(z, dtype=np.float64) - want)
            where = _where(np.nan_to_num(diff, nan=np.inf))
            return name, (f"d{name} of {kind} is not linear in dout: backward({a:g} d1 + {b:g} d2) gives "
                          f"{np.asarray(z)[where]:.6g} at {where}, {a:g} backward(d1) + {b:g} backward(d2) gives "
                          f"{want[where]:.6g}: it uses dout other than as a factor (squared, its sign, a ones mask)")
    return "", ""


def permutation(kind: str, names: list[str], grads: list, permuted: list, perm: np.ndarray,
                rounding: dict[str, float], rtol: float) -> tuple[str, str]:
    """For a per-sample layer: permuting the batch permutes dx and leaves every parameter gradient alone."""
    for name, g, gp in zip(names, grads, permuted):
        want = np.asarray(g)[perm] if name == "x" else np.asarray(g)
        if not close(gp, want, _norm(g) + _norm(gp), 2 * rounding.get(name, 0.0), rtol):
            diff = np.abs(np.asarray(gp, dtype=np.float64) - want)
            where = _where(np.nan_to_num(diff, nan=np.inf))
            what = "dx is not permuted with the batch" if name == "x" else f"d{name} changes when the batch is permuted"
            return name, (f"{what} in {kind} ({np.asarray(gp)[where]:.6g} at {where}, expected {want[where]:.6g}): rows "
                          "are mixed up (every row written to one row, a wrong batch index)")
    return "", ""


def same_twice(kind: str, names: list[str], first: list, again: list, after_other: bool, rtol: float) -> tuple[str, str]:
    """The same call twice (or again after a call on other arrays: A, B, A) gives the same gradients."""
    for name, a, b in zip(names, first, again):
        a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if not close(a64, b64, _norm(a64), 0.0, 16 * np.finfo(np.float64).eps if rtol == RTOL else rtol):
            diff = np.abs(a64 - b64)
            where = _where(np.nan_to_num(diff, nan=np.inf))
            when = "after a call on other arrays" if after_other else "when called twice on the same arrays"
            return name, (f"d{name} of {kind} changes {when} ({a64[where]:.6g} then {b64[where]:.6g} at {where}): "
                          + ("it keeps state between calls (a global, a stale cache)" if after_other else
                             "it is not deterministic (an unseeded RNG, state kept between calls)"))
    return "", ""


def same_for_other(kind: str, names: list[str], first: list, other: list | None) -> tuple[str, str]:
    """Other arrays and another dout (B) giving bit for bit A's gradients: a cache keyed on the shape, not on the
    values (None: not run, as for a loss layer, whose saturated softmax may rightly give the same dx)."""
    if other is not None and all(np.array_equal(a, b) for a, b in zip(first, other)) and any(np.any(a) for a in first):
        name = next(n for n, a in zip(names, first) if np.any(a))
        return name, (f"{kind} returned the same gradients, bit for bit, for other arrays of the same shapes: it keeps "
                      "state between calls (a cache keyed on the shape, not the values); compute from dout and the cache")
    return "", ""


def precision32(kind: str, names: list[str], grads32: list, right: dict[str, np.ndarray],
                rounding: dict[str, float]) -> tuple[str, str]:
    """A framework function run in float32 is within float32's rounding of the float64 reference: the probe's
    float32 rounding (rounding is scaled to float64, so it is scaled back), PROBE_SAFETY times."""
    for name, g in zip(names, grads32):
        if np.asarray(g).dtype != np.float32:
            return name, (f"d{name} of {kind} comes back as {np.asarray(g).dtype} for float32 inputs: keep the "
                          "inputs' dtype")
        ref = np.asarray(right[name], dtype=np.float64)
        e32 = rounding.get(name, 0.0) * float(np.finfo(np.float32).eps / np.finfo(np.float64).eps)
        if not close(g, ref, 0.0, e32 + 1e-7 * _norm(ref) / PROBE_SAFETY, 0.0):
            err = _norm(np.asarray(g, dtype=np.float64) - ref) / max(_norm(ref), 1e-300)
            return name, (f"d{name} of {kind} in float32 is {err:.3g} off the float64 reference, beyond float32's "
                          "rounding for this case: it loses precision (a subtraction of near-equal terms, an "
                          "accumulation in float16)")
    return "", ""


def mutated(kind: str, before: dict[str, np.ndarray], after: dict[str, np.ndarray], what: str) -> str:
    """'' or which array the calls changed in place (arrays, dout, or the cache across a backward)."""
    for label, old in before.items():
        new = after.get(label)
        if new is None:
            continue
        new, old = np.asarray(new), np.asarray(old)
        change = changed_in_place(label, old, new)
        if change:
            return f"{what} {change}: work on a copy" + (
                "" if new.shape != old.shape else " (dout.copy(), x.copy()), e.g. dx = dout * mask, not dout[mask == 0] = 0")
    return ""
