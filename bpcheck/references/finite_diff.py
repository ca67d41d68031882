"""Central differences with Richardson extrapolation and an error estimate per coordinate.

For one coordinate theta_i with step h_i = c * max(|theta_i|, 1) (c = REL_STEP = 1e-4, see below):

    D(h)   = (L(theta + h e_i) - L(theta - h e_i)) / 2h          = L' + L''' h^2 / 6 + O(h^4)
    D(h/2) = (L(theta + h/2 e_i) - L(theta - h/2 e_i)) / h       = L' + L''' h^2 / 24 + O(h^4)
    R      = (4 D(h/2) - D(h)) / 3                                = L' + O(h^4)         (returned)

The error estimate is truncation plus rounding:
    truncation  |D(h) - D(h/2)| / 3   (the error of D(h/2), a conservative bound on R's)
    rounding    3 * ROUNDING_SAFETY * eps * S / h, where S bounds the absolute rounding error of one
                evaluation of L (|L| for an opaque function); R weighs the two differences by 4/3
                and 1/3, whose rounding errors are eps S / (h/2) and eps S / h, hence the 3.

This module knows nothing of MLPs: `central_difference` differentiates any
`loss_fn(params: dict[str, ndarray]) -> float`. Its batched path takes a loss function that
accepts a leading axis of K stacked parameter sets and returns shape (K,); the plain path calls a
scalar-only function once per evaluation. The MLP-aware reference (`gradients`, the "fd" entry of
the registry) and the directional mode live in fd_mlp.py, which builds on the helpers here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..spec import Case, Gradients, UsageError, UserFunctionError

EPS = float(np.finfo(np.float64).eps)
# Plain central differences balance h^2 truncation against eps/h rounding at c ~ eps^(1/3) ~ 6e-6.
# Richardson cancels the h^2 term, so a larger step wins: R's error, 3 eps S/h + O(h^4), is least
# near eps^(1/5) ~ 7e-4. We stop at 1e-4 (~eps^(1/4)) because the truncation estimate |D(h) - D(h/2)|/3
# is O(h^2) and turns loose beyond it, and kink crossings grow with h (measured in the tests' notes).
REL_STEP = 1e-4
# A coordinate whose +-h crosses a kink is redone with this fraction of h (~eps^(1/3) / 2), so only
# kinks within ~3e-6 relative of the point stay flagged.
KINK_RETRY = 1 / 32
# The evaluations per coordinate, as multiples of h: theta +- h, then theta +- h/2. The +-h pair
# comes first so that kink checks (done at the largest step) can look at the first half only.
STEP_FACTORS = np.array([1.0, -1.0, 0.5, -0.5])
# The rounding of one evaluation is bounded by eps * S only to first order and for typical
# (not adversarial) summation orders; the factor absorbs that. Calibrated in tests/test_finite_diff.py.
ROUNDING_SAFETY = 4.0
CHUNK_BYTES = 64 * 2**20  # memory budget of one batched evaluation


def relative_steps(values: np.ndarray, rel_step: float = REL_STEP) -> np.ndarray:
    """h_i = rel_step * max(|theta_i|, 1): relative for large coordinates, absolute near zero."""
    if not (np.isfinite(rel_step) and 0 < rel_step < 1):
        raise UsageError(f"rel_step={rel_step!r} is out of range: give a step factor in (0, 1), like {REL_STEP:.1e}")
    return rel_step * np.maximum(np.abs(np.asarray(values, dtype=np.float64)), 1.0)


def richardson(values: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Combine four evaluations per coordinate into R and its truncation estimate.

    values: (4, n) L at theta + steps (any common offset, e.g. L(theta), cancels); steps: (4, n)
    the signed steps actually taken, in STEP_FACTORS order (+h, -h, +h/2, -h/2).
    Returns (R, |D(h) - D(h/2)| / 3), both (n,).
    """
    d_full = (values[0] - values[1]) / (steps[0] - steps[1])
    d_half = (values[2] - values[3]) / (steps[2] - steps[3])
    return d_half + (d_half - d_full) / 3.0, np.abs(d_full - d_half) / 3.0


def rounding_error(scale: np.ndarray | float, h: np.ndarray) -> np.ndarray:
    """3 * ROUNDING_SAFETY * eps * S / h: the rounding part of R's error for evaluations accurate to eps * S."""
    return 3.0 * ROUNDING_SAFETY * EPS * np.asarray(scale, dtype=np.float64) / h


@dataclass(frozen=True)
class FDResult:
    """A finite-difference gradient of a generic loss function.

    grads and error have the params' keys and shapes (float64); error is the absolute error
    estimate per coordinate; steps is the h used per coordinate; value is L(params).
    """

    value: float
    grads: dict[str, np.ndarray]
    error: dict[str, np.ndarray]
    steps: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)


def central_difference(
    loss_fn: Callable[[dict[str, np.ndarray]], Any],
    params: dict[str, np.ndarray],
    *,
    batched: bool = False,
    rel_step: float = REL_STEP,
    chunk_bytes: int = CHUNK_BYTES,
) -> FDResult:
    """dL/dparams of any scalar loss function by Richardson-extrapolated central differences, in float64.

    batched=False: loss_fn(params) -> float is called 4 times per coordinate, plus once at params.
    batched=True: loss_fn(stacked) -> (K,), where stacked[name] has shape (K, *params[name].shape),
    is called on chunks of at most chunk_bytes of stacked parameter sets.
    Raises UserFunctionError if loss_fn fails or returns something that is not a finite number.
    """
    start = time.perf_counter()
    theta = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    evaluate = _batched_evaluator(loss_fn, theta, chunk_bytes) if batched else _looped_evaluator(loss_fn, theta)
    value = float(evaluate(None, None, None)[0])
    scale = abs(value)
    grads, error, steps = {}, {}, {}
    for name, arr in theta.items():
        flat = arr.ravel()
        h = relative_steps(flat, rel_step)
        # The step actually taken is fl(theta + s) - theta, which is exact; divide by it, not by s.
        moved = flat[None, :] + STEP_FACTORS[:, None] * h[None, :]
        taken = moved - flat[None, :]
        values = evaluate(name, np.tile(np.arange(flat.size), 4), moved.ravel()).reshape(4, -1)
        grad, trunc = richardson(values, taken)
        # An opaque function's rounding is known only through its values: eps * max |L|.
        scale = max(scale, float(np.abs(values).max(initial=0.0)))
        grads[name] = grad.reshape(arr.shape)
        steps[name] = h.reshape(arr.shape)
        error[name] = (trunc + rounding_error(np.abs(values).max(axis=0), (taken[0] - taken[1]) / 2)).reshape(arr.shape)
    meta = {"rel_step": rel_step, "batched": batched, "seconds": time.perf_counter() - start, "scale": scale}
    return FDResult(value, grads, error, steps, meta)


def _checked(result: Any, shape: tuple[int, ...], how: str) -> np.ndarray:
    try:
        out = np.asarray(result, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserFunctionError(f"loss_fn returned {type(result).__name__}, not a number: {how}") from None
    if out.shape != shape and not (shape == () and out.size == 1):
        raise UserFunctionError(f"loss_fn returned shape {out.shape}, but {shape} was needed: {how}")
    if not np.all(np.isfinite(out)):
        raise UserFunctionError(f"loss_fn returned {out.ravel()[~np.isfinite(out.ravel())][0]}: "
                                "make it finite near these params, or check them")
    return out.reshape(shape)


def _call(loss_fn: Callable, arg: dict[str, np.ndarray], shape: tuple[int, ...], how: str) -> np.ndarray:
    try:
        result = loss_fn(arg)
    except Exception as exc:  # a user's function can fail in any way; name it and stop
        raise UserFunctionError(f"loss_fn raised {type(exc).__name__}: {exc}") from exc
    return _checked(result, shape, how)


def _looped_evaluator(loss_fn: Callable, theta: dict[str, np.ndarray]):
    """evaluate(name, flat_indices, new_values) -> L per (index, value); (None, ...) gives [L(theta)]."""
    how = "return one float for one parameter set"

    def evaluate(name, indices, values):
        if name is None:
            return _call(loss_fn, theta, (), how).reshape(1)
        work = dict(theta)
        flat = theta[name].ravel().copy()
        work[name] = flat.reshape(theta[name].shape)  # a view: edits to flat show through
        out = np.empty(len(indices))
        for k, (i, v) in enumerate(zip(indices, values)):
            old, flat[i] = flat[i], v
            out[k] = _call(loss_fn, work, (), how)
            flat[i] = old
        return out

    return evaluate


def _batched_evaluator(loss_fn: Callable, theta: dict[str, np.ndarray], chunk_bytes: int):
    """Stack K perturbed copies of theta per call, K bounded so the copies fit in chunk_bytes."""
    per_set = 8 * sum(v.size for v in theta.values())
    k_max = max(1, chunk_bytes // max(per_set, 1))

    def evaluate(name, indices, values):
        if name is None:
            stacked = {k: v[None] for k, v in theta.items()}
            return _call(loss_fn, stacked, (1,), "with batched=True, return shape (K,) for K stacked sets")
        out = np.empty(len(indices))
        for lo in range(0, len(indices), k_max):
            idx, val = indices[lo:lo + k_max], values[lo:lo + k_max]
            k = len(idx)
            stacked = {n: np.broadcast_to(v, (k, *v.shape)) for n, v in theta.items()}
            target = np.array(stacked[name]).reshape(k, -1)
            target[np.arange(k), idx] = val
            stacked[name] = target.reshape(k, *theta[name].shape)
            out[lo:lo + k] = _call(loss_fn, stacked, (k,), "with batched=True, return shape (K,) for K stacked sets")
        return out

    return evaluate


# The MLP-aware reference builds on the helpers above; importing it at call time keeps this
# module free of MLP knowledge and avoids an import cycle.
def gradients(case: Case) -> Gradients:
    """The "fd" reference: Case -> Gradients in float64, with error and kink per coordinate (see fd_mlp)."""
    from .fd_mlp import mlp_gradients

    return mlp_gradients(case)


def directional(case: Case, directions: dict[str, np.ndarray], *, rel_step: float = REL_STEP):
    """(values, errors), each (k,): Richardson FD of L along each unit direction; see fd_mlp.directional."""
    from .fd_mlp import directional as _directional

    return _directional(case, directions, rel_step=rel_step)


def random_directions(case: Case, k: int, rng: np.random.Generator, *, include_x: bool = False) -> dict:
    """k directions drawn uniformly on the unit sphere over all params (and x, if include_x).

    Returns name -> (k, *shape) float64 arrays, each direction of joint Euclidean norm 1.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise UsageError(f"k={k!r} directions: give a whole number >= 1")
    shapes = dict(case.arch.param_shapes())
    if include_x:
        shapes["x"] = case.x.shape
    draws = {name: rng.standard_normal((k, *shape)) for name, shape in shapes.items()}
    norm = np.sqrt(sum((d.reshape(k, -1) ** 2).sum(axis=1) for d in draws.values()))
    return {name: d / norm.reshape(-1, *([1] * (d.ndim - 1))) for name, d in draws.items()}
