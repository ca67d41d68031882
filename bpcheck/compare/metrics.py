"""Per-tensor metrics and the agreement test, one function for every comparison bpcheck makes.

The same `compare_tensor` compares the engine with a reference, two references with each other,
a layer's dL/dz traces, and the engine with a hypothesis about its bug (diagnose.py): one rule.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..results import Entry, TensorMetrics, Tolerance
from ..spec import Gradients

_TINY = 1e-300


def norm(v: np.ndarray) -> float:
    """The 2-norm, scaled so that tensors near the float64 limits neither overflow nor underflow."""
    m = float(np.abs(v).max()) if v.size else 0.0
    if not _scalable(m):
        return 0.0 if m == 0.0 else m
    x = (v / m).ravel(order="K")
    return _norms(x, [m], [(0, x.size)])[0]


def _scalable(m: float) -> bool:
    return m != 0.0 and math.isfinite(m)


def _norms(x: np.ndarray, tops: list[float], spans: list[tuple[int, int]]) -> list[float]:
    """norm of each part v[lo:hi] of a flat v, from m = its max |v| and x = v / m (read only where m is
    neither 0 nor infinite: there m is the answer)."""
    # np.linalg.norm of a real vector is sqrt(x.dot(x)); called directly, without its checks (issue 8).
    return [m * math.sqrt(float((part := x[lo:hi]).dot(part))) if _scalable(m) else (0.0 if m == 0.0 else m)
            for m, (lo, hi) in zip(tops, spans)]


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
    slack: np.ndarray | None = None,
) -> TensorMetrics:
    """Metrics of a (producer side) against b (reference side) and whether they agree under tol.

    scale is the tensor's rounding error scale E_t (tolerance.error_scales), err the reference's
    per-coordinate error estimate, kink a bool mask of coordinates left out and slack an allowance per
    coordinate (straddle.py: a unit at a kink may take either slope), all of the shapes of a and b.
    """
    return compare_tensors([(name, a, b, tol, scale, err, kink, slack)])[0]


# compare_tensor's (name, a, b, tol, scale, err, kink), optionally followed by slack
Item = tuple[str, Any, Any, Tolerance, float, Any, Any] | tuple[str, Any, Any, Tolerance, float, Any, Any, Any]


def compare_tensors(items: Sequence[Item]) -> list[TensorMetrics]:
    """compare_tensor of each (name, a, b, tol, scale, err, kink[, slack]), in order, bit for bit, in one pass.

    Small tensors are the common case, where a numpy call costs more than its arithmetic: the elementwise
    steps run once on the kept coordinates of every tensor laid end to end, and each maximum is one
    reduceat. The dot products of the norms, whose rounding depends on how a sum is split, stay one per
    tensor, on its slice (OpenBLAS's ddot does not depend on where a slice starts).
    """
    out: list[TensorMetrics] = [None] * len(items)  # type: ignore[list-item]
    segs: list[tuple[int, str, tuple[int, ...], np.ndarray | None, Tolerance, float, int]] = []
    avs, bvs, errs, slacks = [], [], [], []
    for i, item in enumerate(items):
        name, a, b, tol, scale, err, kink = item[:7]
        slack = item[7] if len(item) > 7 else None
        if a is None or b is None or _shape(a) != _shape(b):
            out[i] = mismatch(name, a, b)
            continue
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        keep = None
        if kink is not None:
            kink = np.asarray(kink, dtype=bool)
            if kink.any():  # else flat views instead of boolean-mask copies (same values, issue 8)
                keep = ~kink
        avs.append(a.ravel() if keep is None else a[keep])
        bvs.append(b.ravel() if keep is None else b[keep])
        errs.append(_kept(err, keep, avs[-1].shape) if tol.fd_mult and err is not None else None)
        slacks.append(_kept(slack, keep, avs[-1].shape) if slack is not None else None)
        # a coordinate judged with an allowance for a straddled kink is in a kink too
        straddled = 0 if slacks[-1] is None else int(np.count_nonzero(slacks[-1]))
        segs.append((i, name, a.shape, keep, tol, scale, straddled + (0 if keep is None else int(a.size - keep.sum()))))
    if not segs:
        return out
    sizes = [v.size for v in avs]
    bounds = list(itertools.accumulate(sizes, initial=0))
    spans = list(zip(bounds, bounds[1:]))
    starts = np.array([lo for lo, n in zip(bounds, sizes) if n], dtype=np.intp)  # reduceat misreads empty ones

    def tops(v: np.ndarray) -> list[float]:
        """max of each tensor's part of v (>= 0 or NaN, so no abs), 0 for an empty one."""
        found = iter(np.maximum.reduceat(v, starts).tolist() if starts.size else ())
        return [next(found) if n else 0.0 for n in sizes]

    def spread(per_tensor: list[float]) -> float | np.ndarray:
        """One number per tensor, repeated over its coordinates; the number itself when all are equal
        (the same results: every use is elementwise, and none of these numbers is -0)."""
        first = per_tensor[0]
        return first if all(v == first for v in per_tensor) else np.repeat(np.array(per_tensor), sizes)

    def norms(v: np.ndarray, top: list[float]) -> list[float]:
        """norm of each tensor's part of v, given its max |.|: one division for all."""
        return _norms(v / spread([m if _scalable(m) else 1.0 for m in top]), top, spans)

    av_all, bv_all = _joined(avs), _joined(bvs)
    budget = None
    if any(e is not None for e in errs):  # a tensor without an estimate has none to subtract: 0
        budget = spread([seg[4].fd_mult for seg in segs]) * _joined([np.zeros(n) if e is None else e
                                                                      for e, n in zip(errs, sizes)])
    if any(s is not None for s in slacks):
        slack_all = _joined([np.zeros(n) if s is None else s for s, n in zip(slacks, sizes)])
        budget = slack_all if budget is None else budget + slack_all
    diff, unexplained = _unexplained(av_all, bv_all, budget, spread([seg[4].fd_floor for seg in segs]))
    abs_a, abs_b = np.abs(av_all), np.abs(bv_all)
    top_diff, top_a, top_b = tops(diff), tops(abs_a), tops(abs_b)
    top_unexplained = top_diff if unexplained is diff else tops(unexplained)
    norm_a, norm_b, norm_u = norms(av_all, top_a), norms(bv_all, top_b), norms(unexplained, top_unexplained)
    norm_diff = norm_u
    if unexplained is not diff:  # where nothing was subtracted, unexplained is diff value for value: no second norm
        budgeted = [e is not None or s is not None or seg[4].fd_floor != 0 for e, s, seg in zip(errs, slacks, segs)]
        own = norms(diff, [t if b else 0.0 for t, b in zip(top_diff, budgeted)])
        norm_diff = [d if b else u for d, u, b in zip(own, norm_u, budgeted)]
    # cosine = <a / ||a||, b / ||b||>, read only where both norms are > 0 and finite
    unit_a = av_all / spread([n if _scalable(n) else 1.0 for n in norm_a])
    unit_b = bv_all / spread([n if _scalable(n) else 1.0 for n in norm_b])

    found = []
    for k, (lo, hi) in enumerate(spans):
        na, nb, n = norm_a[k], norm_b[k], hi - lo
        denom = max(na, nb)
        tol, scale = segs[k][4:6]
        allowed = tol.rtol * denom + tol.gamma * scale + tol.atol * math.sqrt(n)
        # Both arrays are >= 0 or NaN, which max propagates: a finite max means every entry is finite.
        excess_abs = norm_u[k] if math.isfinite(top_unexplained[k]) else math.inf
        if denom > 0 and math.isfinite(denom):
            norm_rel = norm_diff[k] / denom if math.isfinite(top_diff[k]) else math.inf
            excess, bound = excess_abs / denom, allowed / denom
            cosine = float(unit_a[lo:hi].dot(unit_b[lo:hi])) if na > 0 and nb > 0 else 0.0
        else:
            norm_rel = 0.0 if denom == 0 else math.inf
            excess, bound = (0.0 if excess_abs == 0 else math.inf), 0.0
            cosine = 1.0 if denom == 0 else 0.0
        if not math.isfinite(cosine):
            cosine = 0.0
        # Relative error means something only above the rounding level of a coordinate (the rms of the
        # allowed error): that is the floor.
        floor = max(allowed / math.sqrt(max(n, 1)), _TINY)
        # an infinite error is never within a bound, even one an infinite gradient made infinite (rtol * inf)
        found.append((norm_rel, cosine, excess, bound, excess_abs <= allowed and math.isfinite(excess_abs), floor))

    rel = diff / np.maximum(np.maximum(abs_a, abs_b), spread([f[-1] for f in found]))
    top_rel = tops(rel)
    for k, (i, name, shape, keep, _, _, kinks) in enumerate(segs):
        lo, hi = spans[k]
        norm_rel, cosine, excess, bound, ok, _ = found[k]
        worst = None
        if hi > lo:
            flat = int((unexplained if top_unexplained[k] != 0 else diff)[lo:hi].argmax())
            where = _unravel(flat if keep is None else int(np.flatnonzero(keep)[flat]), shape)
            at = lo + flat
            worst = Entry(where, av_all.item(at), bv_all.item(at), diff.item(at), rel.item(at))
        out[i] = TensorMetrics(name, top_diff[k], top_rel[k], norm_rel, cosine, excess, bound, ok, kinks, worst)
    return out


def _shape(v: Any) -> tuple[int, ...]:
    return v.shape if type(v) is np.ndarray else np.shape(v)  # np.shape's dispatch costs more than a small compare


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _kept(err: Any, keep: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """err's entries at the kept coordinates, as a flat array of the kept tensor's shape."""
    e = np.asarray(err, dtype=np.float64)
    e = e.ravel() if keep is None else e[keep]
    return e if e.shape == shape else np.broadcast_to(e, shape)


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """np.unravel_index of one C-order position, without its call overhead."""
    index = []
    for n in reversed(shape):
        flat, i = divmod(flat, n)
        index.append(i)
    return tuple(reversed(index))


def _unexplained(av: np.ndarray, bv: np.ndarray, budget: np.ndarray | None,
                 fd_floor: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(|a - b|, max(|a - b| - budget - fd_floor, 0)) (budget: flat, of a's shape, fd_mult err plus any slack,
    or None for none; fd_floor a number or one per coordinate); NaN -> inf.

    Without a budget (torch, jax away from kinks) the second is the first, the same array: max(d - 0 - 0, 0)
    is d, bit for bit, as d >= 0."""
    diff = np.abs(av - bv)
    diff = np.where(np.isnan(diff), np.inf, diff)  # a NaN anywhere is infinitely wrong
    if budget is not None:
        return diff, np.maximum(diff - budget - fd_floor, 0.0)
    return diff, (np.maximum(diff - fd_floor, 0.0) if np.any(fd_floor) else diff)


def explained(a: np.ndarray, b: np.ndarray, tol: Tolerance, *, err: np.ndarray, kink: np.ndarray) -> bool:
    """Does err explain every kept |a - b| (a, b, err, kink of one shape)? Then compare_tensor's result is
    the same for any err' >= err: its metrics read err only through the unexplained part, all 0 here."""
    keep = ~np.asarray(kink, dtype=bool)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = a[keep], b[keep]
    kept = tol.fd_mult * _kept(err, keep, a.shape) if tol.fd_mult and err is not None else None
    return not np.any(_unexplained(a, b, kept, tol.fd_floor)[1])


def compare_gradients(
    engine: Gradients,
    reference: Gradients,
    tol: Tolerance,
    scales: dict[str, float] | None = None,
    *,
    kink: dict[str, np.ndarray] | None = None,
    slack: dict[str, np.ndarray] | None = None,
) -> tuple[TensorMetrics, ...]:
    """One TensorMetrics per tensor of reference.tensors() (params in order, then 'x').

    The reference's error estimate (FD) is read from reference.error. A tensor the engine lacks, or
    gives with another shape, is a mismatch; dL/dx is compared only when both sides give it.
    """
    return tuple(compare_tensors(gradient_items(engine, reference, tol, scales, kink, slack)))


def gradient_items(engine: Gradients, reference: Gradients, tol: Tolerance, scales: dict[str, float] | None = None,
                   kink: dict[str, np.ndarray] | None = None, slack: dict[str, np.ndarray] | None = None) -> list[Item]:
    """compare_gradients' tensors, as compare_tensors' items."""
    scales = scales or {}
    kink = kink or {}
    slack = slack or {}
    err = reference.error or {}
    mine = engine.tensors()
    return [(name, mine.get(name), b, tol, scales.get(name, 0.0), err.get(name), kink.get(name), slack.get(name))
            for name, b in reference.tensors().items() if not (name == "x" and engine.dx is None)]


def agrees(metrics: tuple[TensorMetrics, ...] | list[TensorMetrics]) -> bool:
    return all(m.ok for m in metrics)
