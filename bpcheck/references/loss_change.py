"""Exact per-sample loss changes l(out + d) - l(out), formed from the change d itself.

The FD reference evaluates millions of perturbed copies whose output differs from the unperturbed
one by a tiny d. Forming l(out + d) and subtracting l(out) loses the digits the two share (eps times
the logits, for a loss fused with softmax) and runs the whole loss again on each copy. For three losses
the change has a closed form in d with no such cancellation, each an identity, not an approximation:

    mse            (1/n) sum_k d_k (2 r_k + d_k),                     r = a - y
    bce            (1/n) sum_k log1p(sigmoid(z_k) expm1(d_k)) - y_k d_k
    cross_entropy  (sum_k y_k) log1p(sum_k p_k expm1(d_k)) - sum_k y_k d_k,   p = softmax(z)

since log sum exp(z + d) - log sum exp(z) = log sum_k p_k exp(d_k) and softplus(z + d) - softplus(z)
= log(1 + sigmoid(z) (exp(d) - 1)). Their rounding is eps times |d| rather than eps times |out|, so the
FD rounding scale of fd_mlp (which assumes the direct form) stays an upper bound. The closed forms are
used while every |d_k| <= MAX_CHANGE (expm1 and log1p stay in range); huber (a kinked loss) and larger
changes take the direct form.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..ops import LOSS_RULES, sigmoid, softmax

MAX_CHANGE = 1.0


class LossChange:
    """The change of each per-sample loss for output changes d (K, B', n) of the unperturbed out (B, n).

    rows picks the samples as fd_mlp._Net.full does: None for all B, else an index array (1, B') or (K, 1).
    `closed` is False for a loss with no closed form here; then call the direct form instead.
    """

    def __init__(self, loss: str, out: np.ndarray, y: np.ndarray) -> None:
        self._form: Callable | None = _FORMS.get(loss)
        self.closed = self._form is not None
        # Unit-major (B, n), like fd_mlp's perturbed outputs, so products with them stream in order.
        self.y = np.asfortranarray(y)
        aux = {"mse": lambda: 2.0 * (out - y), "bce": lambda: sigmoid(out), "cross_entropy": lambda: softmax(out)}
        self.aux = np.asfortranarray(aux[loss]()) if self.closed else None
        self.y_sum = y.sum(axis=-1)

    def fits(self, d: np.ndarray, bound: float | None = None) -> bool:
        """Is every |d_k| <= MAX_CHANGE? bound: a known upper bound on max |d| (saves a pass over d)."""
        if bound is None:
            bound = max(-float(d.min()), float(d.max())) if d.size else 0.0
        return self.closed and bound <= MAX_CHANGE

    def __call__(self, d: np.ndarray, rows, linear: np.ndarray | None = None) -> np.ndarray:
        """(K, B') per-sample changes; d may be overwritten. linear: sum_k y_k d_k, (K, B'), when the
        caller has it cheaper (for a rank-1 d = c w it is c (y . w)); mse ignores it."""
        return self._form(self, d, rows, linear)


def _at(arr: np.ndarray, rows) -> np.ndarray:
    """arr (B, ...) at the rows: (B, ...) for all samples (broadcast over K), else (1 or K, B', ...)."""
    return arr if rows is None else arr[rows]


def _dot(d: np.ndarray, v: np.ndarray) -> np.ndarray:
    """sum_k d[..., b, k] v[..., b, k]: (K, B'), without a (K, B', n) temporary."""
    return np.einsum("kbn,kbn->kb", d, v) if v.ndim == 3 else np.einsum("kbn,bn->kb", d, v)


def _mse(lc: LossChange, d: np.ndarray, rows, linear=None) -> np.ndarray:
    n = d.shape[-1]
    return (_dot(d, _at(lc.aux, rows)) + _dot(d, d)) / n


def _bce(lc: LossChange, d: np.ndarray, rows, linear=None) -> np.ndarray:
    linear = _dot(d, _at(lc.y, rows)) if linear is None else linear
    np.expm1(d, out=d)
    d *= _at(lc.aux, rows)
    np.log1p(d, out=d)
    return (d.sum(axis=-1) - linear) / d.shape[-1]


def _cross_entropy(lc: LossChange, d: np.ndarray, rows, linear=None) -> np.ndarray:
    linear = _dot(d, _at(lc.y, rows)) if linear is None else linear
    np.expm1(d, out=d)
    return _at(lc.y_sum, rows) * np.log1p(_dot(d, _at(lc.aux, rows))) - linear


_FORMS = {"mse": _mse, "bce": _bce, "cross_entropy": _cross_entropy}
assert set(_FORMS) <= set(LOSS_RULES)
