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
scalar-only function once per evaluation. `family_difference` runs the same scheme over any
family of coordinates whose perturbed evaluations a callback supplies, with kink flags and one
retry at a smaller step. The MLP-aware reference and the directional mode live in fd_mlp.py and
fd_directional.py (fd_stack.py and fd_stack_directional.py for other stacks; directions.py draws and checks the
directions), built on these; fd.py routes a case to one of them (`gradients`, the "fd" entry of the registry, and
`directional`), so this module imports none of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..spec import UsageError, UserFunctionError

EPS = float(np.finfo(np.float64).eps)
# Plain central differences balance h^2 truncation against eps/h rounding at c ~ eps^(1/3) ~ 6e-6.
# Richardson cancels the h^2 term, so a larger step wins: R's error, 3 eps S/h + O(h^4), is least
# near eps^(1/5) ~ 7e-4. We stop at 1e-4 (~eps^(1/4)) because the truncation estimate |D(h) - D(h/2)|/3
# is O(h^2) and turns loose beyond it, and kink crossings grow with h. Measured on 150 random small
# nets (worst norm-relative error vs the engine): 3.5e-8 at eps^(1/3), 1.5e-9 at 1e-4, 1.2e-10 at 1e-3;
# kinked coordinates of a 50-32-32-32-1 relu-family net, batch 64: none, 7%, 26% (before the retry).
REL_STEP = 1e-4
# A coordinate whose +-h crosses a kink is redone with this fraction of h (~eps^(1/3) / 2), so only
# kinks within ~3e-6 relative of the point stay flagged.
KINK_RETRY = 1 / 32
# Richardson's truncation estimate |D(h) - D(h/2)| / 3 holds only where the step is short next to the
# scale on which L curves; past this fraction of |R| it is not (a huge-regime net whose W3 step moved a
# sigmoid's input by 2.2: estimate 0.3% of R, actual error 3.6%), and the coordinate is redone at
# h * KINK_RETRY. With h = 1e-4 the estimate is ~1e-8 of |R| on ordinary coordinates.
CURVED = 1e-3
SLOPE_MOVED = 0.1
# The evaluations per coordinate, as multiples of h: theta +- h, then theta +- h/2. The +-h pair
# comes first so that kink checks (done at the largest step) can look at the first half only.
STEP_FACTORS = np.array([1.0, -1.0, 0.5, -0.5])
# The rounding of one evaluation is bounded by eps * S only to first order and for typical
# (not adversarial) summation orders; the factor absorbs that. Over 3,000 random nets the actual error
# of the MLP path reached at most 0.21 of the estimate (median 5e-3); see tests/test_finite_diff.py.
ROUNDING_SAFETY = 4.0
# Memory budget of one batched evaluation. Smaller chunks keep a pass's arrays nearer the caches: the full
# FD of a 784-128-10 net (batch 16, 1 BLAS thread) took 1.12 / 1.71 s (min / median of 4) at 16 MiB against
# 1.28 / 2.08 s at 64 MiB; a 100-90-10 net took 0.11 s at either (benchmarks/bench_full_fd.py, issue 8).
CHUNK_BYTES = 16 * 2**20
# A pass of the MLP-aware paths (fd_mlp, fd_dense, fd_directional) holds about this many (K, B', width)
# float64 arrays at once; with CHUNK_BYTES it sets how many perturbed copies a chunk takes.
PASS_ARRAYS = 8


def checked_rel_step(rel_step: float) -> float:
    if not (isinstance(rel_step, (int, float, np.floating)) and np.isfinite(rel_step) and 0 < rel_step < 1):
        raise UsageError(f"rel_step={rel_step!r} is out of range: give a step factor in (0, 1), like {REL_STEP:.0e}")
    return float(rel_step)


def relative_steps(values: np.ndarray, rel_step: float = REL_STEP) -> np.ndarray:
    """h_i = rel_step * max(|theta_i|, 1): relative for large coordinates, absolute near zero."""
    return checked_rel_step(rel_step) * np.maximum(np.abs(np.asarray(values, dtype=np.float64)), 1.0)


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


def changes_rounding(changes: np.ndarray, h: np.ndarray) -> np.ndarray:
    """rounding_error of the changes L(theta + s e_i) - L(theta) (4, n) at their own size, max over the four.

    The scale S of a callback's evaluations bounds the rounding of L to first order; a change formed in
    closed form (loss_change) or from a loss at its minimum also rounds at its own size, eps |change|,
    which for mse's d^2 is second order in h and no term of S sees. This is the generic path's eps max |L|.
    """
    return rounding_error(np.abs(changes).max(axis=0), h)


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


def family_difference(h: np.ndarray, run: Callable, chunk: int, group: int = 0):
    """Richardson FD over len(h) coordinates whose evaluations run(idx, s, n_kink) supplies.

    run(idx (K,), s (K,), n_kink) -> (L(theta + s_k e_idx[k]) - L(theta), (K,); crossed, (n_kink,)):
    crossed[k] says the perturbation k < n_kink moved across a kink. Chunks of K = 4C perturbations
    hold +h, -h, +h/2, -h/2 of C <= chunk coordinates in that order, so the kink check (at +-h) covers
    the first 2C; with group, a chunk stays inside one run of `group` consecutive coordinates.
    Coordinates whose +-h crosses a kink, or whose step is too long for the function's curvature (the
    truncation estimate above CURVED of |R|), are redone once with h * KINK_RETRY; those still crossing
    keep kink=True. Returns (R, truncation estimate plus changes_rounding, kink, h used), each (n,).
    """
    h = np.array(h, dtype=np.float64)
    changes, kink = np.empty((4, len(h))), np.zeros(len(h), dtype=bool)

    def evaluate(idx: np.ndarray) -> None:
        steps = STEP_FACTORS[:, None] * h[idx][None, :]  # (4, C)
        change, crossed = run(np.tile(idx, 4), steps.ravel(), 2 * len(idx))
        changes[:, idx] = change.reshape(4, -1)
        kink[idx] = crossed.reshape(2, -1).any(axis=0)

    def combine(at) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(R, truncation estimate plus changes_rounding, curved) at the coordinates `at`, from their changes.

        Elementwise, so one call over a whole family gives the same bits as one call per chunk, for less Python.
        """
        c, hs = changes[:, at], h[at]
        grad, trunc = richardson(c, STEP_FACTORS[:, None] * hs[None, :])
        # Long next to the curvature: the estimate says so itself, or the step moved the slope by a good part
        # of itself (the even part of L(theta +- h) against the odd part), where the estimate can be small by
        # coincidence (a sigmoid pushed 2.25 either side: D(h) and D(h/2) agreed to 0.2% and both were 4% off).
        curved = (trunc > CURVED * np.abs(grad)) | (np.abs(c[0] + c[1]) > SLOPE_MOVED * np.abs(c[0] - c[1]))
        return grad, trunc + changes_rounding(c, hs), curved

    group = group or len(h)
    for g in range(0, len(h), group):
        for lo in range(g, min(g + group, len(h)), chunk):
            evaluate(np.arange(lo, min(lo + chunk, g + group, len(h))))
    grad, trunc, curved = combine(slice(None))
    retry = np.flatnonzero(kink | curved)
    h[retry] *= KINK_RETRY
    for lo in range(0, len(retry), chunk):
        evaluate(retry[lo:lo + chunk])
    grad[retry], trunc[retry], _ = combine(retry)
    return grad, trunc, kink, h
