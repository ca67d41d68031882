"""Per-tensor metrics and the agreement test, one function for every comparison bpcheck makes.

The same `compare_tensor` compares the engine with a reference, two references with each other,
a layer's dL/dz traces, and the engine with a hypothesis about its bug (diagnose.py): one rule.
"""

from __future__ import annotations

import math

import numpy as np

from ..results import Entry, TensorMetrics, Tolerance
from ..spec import Gradients

_TINY = 1e-300


def norm(v: np.ndarray) -> float:
    """The 2-norm, scaled so that tensors near the float64 limits neither overflow nor underflow."""
    m = float(np.abs(v).max()) if v.size else 0.0
    if m == 0.0 or not math.isfinite(m):
        return m
    # np.linalg.norm of a real vector is sqrt(x.dot(x)); called directly, without its checks (issue 8).
    x = (v / m).ravel(order="K")
    return m * math.sqrt(float(x.dot(x)))


def mismatch(name: str, a: np.ndarray | None, b: np.ndarray | None) -> TensorMetrics:
    """A tensor that cannot be compared coordinate by coordinate: missing, or of another shape."""
    note = "missing" if a is None else f"shape {np.shape(a)}, but the reference's is {np.shape(b)}"
    return TensorMetrics(name, math.inf, math.inf, math.inf, 0.0, math.inf, 0.0, False, note=note)


def compare_tensor(
    name: str,
    a: np.ndarray,
    b: np.ndarray,
    tol: Tolerance,
    scale: float = 0.0,
    *,
    err: np.ndarray | None = None,
    kink: np.ndarray | None = None,
) -> TensorMetrics:
    """Metrics of a (producer side) against b (reference side) and whether they agree under tol.

    scale is the tensor's rounding error scale E_t (tolerance.error_scales), err the reference's
    per-coordinate error estimate and kink a bool mask of coordinates left out (shapes of a and b).
    """
    if a is None or b is None or np.shape(a) != np.shape(b):
        return mismatch(name, a, b)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    keep = None if kink is None else ~np.asarray(kink, dtype=bool)
    if keep is not None and keep.all():
        keep = None  # nothing left out: flat views instead of boolean-mask copies (same values, issue 8)
    kinks = 0 if keep is None else int(a.size - keep.sum())
    av, bv = (a.ravel(), b.ravel()) if keep is None else (a[keep], b[keep])
    diff, unexplained = _unexplained(av, bv, tol, err, keep)
    na, nb = norm(av), norm(bv)
    denom = max(na, nb)
    allowed = tol.rtol * denom + tol.gamma * scale + tol.atol * math.sqrt(av.size)
    excess_abs = norm(unexplained) if np.isfinite(unexplained).all() else math.inf
    ok = excess_abs <= allowed
    if denom > 0 and math.isfinite(denom):
        norm_rel = norm(diff) / denom if np.isfinite(diff).all() else math.inf
        excess, bound = excess_abs / denom, allowed / denom
        cosine = float(np.dot(av / na, bv / nb)) if na > 0 and nb > 0 else 0.0
    else:
        norm_rel = 0.0 if denom == 0 else math.inf
        excess, bound = (0.0 if excess_abs == 0 else math.inf), 0.0
        cosine = 1.0 if denom == 0 else 0.0
    if not math.isfinite(cosine):
        cosine = 0.0
    # Relative error means something only above the rounding level of a coordinate (the rms of the
    # allowed error): that is the floor.
    floor = max(allowed / math.sqrt(max(av.size, 1)), _TINY)
    rel = diff / np.maximum(np.maximum(np.abs(av), np.abs(bv)), floor)
    worst = None
    if av.size:
        order = unexplained if unexplained.any() else diff
        flat = int(order.argmax())
        where = np.unravel_index(flat, a.shape) if keep is None else np.argwhere(keep)[flat]
        index = tuple(int(i) for i in where)
        worst = Entry(index, a[index], b[index], diff[flat], rel[flat])
    return TensorMetrics(
        name, float(diff.max()) if diff.size else 0.0, float(rel.max()) if rel.size else 0.0,
        norm_rel, cosine, excess, bound, ok, kinks, worst,
    )


def _unexplained(av: np.ndarray, bv: np.ndarray, tol: Tolerance, err: np.ndarray | None,
                 keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(|a - b|, max(|a - b| - fd_mult err - fd_floor, 0)) over the kept coordinates (keep None: all); NaN -> inf."""
    diff = np.abs(av - bv)
    diff = np.where(np.isnan(diff), np.inf, diff)  # a NaN anywhere is infinitely wrong
    budget = 0.0
    if tol.fd_mult and err is not None:
        e = np.asarray(err, dtype=np.float64)
        budget = tol.fd_mult * (e.ravel() if keep is None else e[keep])
    return diff, np.maximum(diff - budget - tol.fd_floor, 0.0)


def explained(a: np.ndarray, b: np.ndarray, tol: Tolerance, *, err: np.ndarray, kink: np.ndarray) -> bool:
    """Does err explain every kept |a - b| (a, b, err, kink of one shape)? Then compare_tensor's result is
    the same for any err' >= err: its metrics read err only through the unexplained part, all 0 here."""
    keep = ~np.asarray(kink, dtype=bool)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return not np.any(_unexplained(a[keep], b[keep], tol, err, keep)[1])


def compare_gradients(
    engine: Gradients,
    reference: Gradients,
    tol: Tolerance,
    scales: dict[str, float] | None = None,
    *,
    kink: dict[str, np.ndarray] | None = None,
) -> tuple[TensorMetrics, ...]:
    """One TensorMetrics per tensor of reference.tensors() (params in order, then 'x').

    The reference's error estimate (FD) is read from reference.error. A tensor the engine lacks, or
    gives with another shape, is a mismatch; dL/dx is compared only when both sides give it.
    """
    scales = scales or {}
    kink = kink or {}
    err = reference.error or {}
    mine = engine.tensors()
    out = []
    for name, b in reference.tensors().items():
        if name == "x" and engine.dx is None:
            continue
        out.append(compare_tensor(name, mine.get(name), b, tol, scales.get(name, 0.0), err=err.get(name), kink=kink.get(name)))
    return tuple(out)


def agrees(metrics: tuple[TensorMetrics, ...] | list[TensorMetrics]) -> bool:
    return all(m.ok for m in metrics)
