"""Directional FD: the derivative of L along k directions over all params (and x), for the fast check.

L(theta + s u) is evaluated for each direction u at the four Richardson steps, through the same net as
fd_mlp's per-coordinate reference (fd_mlp_pass.Net), so its changes, kink flags and rounding scale are
those of the full check; a direction costs one batched forward instead of one pass per coordinate.
"""

from __future__ import annotations

import numpy as np

from ..spec import Case
from .directions import checked_directions, directional_steps
from .fd_mlp import _fd_run, _float64, _loss_base, _Scales
from .fd_mlp_pass import Net as _Net
from .finite_diff import (
    CHUNK_BYTES,
    PASS_ARRAYS,
    REL_STEP,
    STEP_FACTORS,
    changes_rounding,
    richardson,
    rounding_error,
)


def directional(case: Case, directions: dict[str, np.ndarray], *, rel_step: float = REL_STEP,
                chunk_bytes: int = CHUNK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """(values, errors), each (k,): Richardson FD of L along each of k directions u, in float64.

    directions: name -> (k, *shape) for every param, and optionally "x". values[d] estimates the
    directional derivative sum over names of <grad, u_d>; the step along u_d is
    s = rel_step * |u_d * max(|theta|, 1)| / |u_d|^2, which for a one-hot u is the per-coordinate h.
    errors[d] is the absolute error estimate, or inf where +-s moved a kinked pre-activation or the
    huber residual to another region (that direction cannot be judged: draw another).
    """
    fd = DirectionalFD(case, directions, rel_step=rel_step, chunk_bytes=chunk_bytes)
    return fd.values, fd.errors()


class DirectionalFD:
    """The directional FD of `directional`, with its error estimate in two grades.

    errors() is the estimate `directional` returns: truncation plus the rounding of scale S, the
    widest of _Scales, which needs the FD of every dz_l (for a 784-128-10 net, batch 16, a third of
    the fast check's time). errors(full=False) bounds it from below with S's loss terms alone
    (every other term of S is >= 0, and rounding is monotone, so lower <= full holds in floats too):
    a comparison whose difference the lower estimate already explains needs no more.
    """

    def __init__(self, case: Case, directions: dict[str, np.ndarray], *, rel_step: float = REL_STEP,
                 chunk_bytes: int = CHUNK_BYTES) -> None:
        net = _Net(_float64(case))
        u, k = checked_directions(directions, net.arch.param_shapes(), {"x": net.x.shape})
        s = directional_steps({**net.p, "x": net.x}, u, rel_step)
        values, trunc, crossed = np.empty(k), np.empty(k), np.zeros(k, dtype=bool)
        # Per direction: the (4, B, n) activations of every layer, PASS_ARRAYS at a time, and at most one
        # contiguous copy of the direction itself (matmul may make one of a strided view).
        per_direction = 8 * (PASS_ARRAYS * 4 * net.B * sum(net.arch.sizes) + sum(v.size // len(v) for v in u.values()))
        size = max(1, int(chunk_bytes // per_direction))
        for lo in range(0, k, size):
            d = slice(lo, min(k, lo + size))  # a view: the directions are not copied
            steps = STEP_FACTORS[:, None] * s[d][None, :]  # (4, C), +-s first
            change, kinked = _along(net, {n: v[d] for n, v in u.items()}, steps)
            if net.arch.weight_decay:
                change += _decay_change(net, {n: v[d] for n, v in u.items()}, steps)
            values[d], trunc[d] = richardson(change, steps)
            trunc[d] += changes_rounding(change, s[d])
            crossed[d] = kinked.any(axis=0)
        self.values, self.steps, self._trunc, self._crossed = values, s, trunc, crossed
        self._net, self._rel_step, self._chunk_bytes = net, rel_step, chunk_bytes
        self._full: np.ndarray | None = None

    def errors(self, full: bool = True) -> np.ndarray:
        """(k,) absolute error estimates, inf where +-s crossed a kink; full=False: the lower bound."""
        if full and self._full is None:
            # Every z_m is recomputed: S is the widest scale, that of a perturbation of the first layer.
            scale = _Scales(self._net, _fd_run(self._net, self._rel_step, self._chunk_bytes)).above[0].sum()
            self._full = self._estimate(scale)
        return self._full if full else self._estimate(_loss_base(self._net).sum())

    def _estimate(self, scale: float) -> np.ndarray:
        return np.where(self._crossed, np.inf, self._trunc + rounding_error(scale, self.steps))


def _decay_change(net: _Net, u: dict[str, np.ndarray], steps: np.ndarray) -> np.ndarray:
    """The change of the declared L2 term lambda/2 sum ||W||^2 along each direction: lambda (s <W, u> + s^2/2 ||u||^2)."""
    lam = net.arch.weight_decay
    dot = sum(np.tensordot(u[k], net.p[k], axes=net.p[k].ndim) for k in net.p if k.startswith("W"))
    sq = sum((u[k].reshape(len(u[k]), -1) ** 2).sum(axis=1) for k in net.p if k.startswith("W"))
    return lam * (steps * dot + 0.5 * steps * steps * sq)


def _along(net: _Net, u: dict[str, np.ndarray], steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L(theta + s u) - L(theta) for C directions u (name -> (C, *shape)) at the steps (4, C).

    Linear in each factor: (a + s u_a) @ (W + s U) = a @ W + s (u_a @ W + a @ U) + s^2 u_a @ U, so no
    perturbed copy of W is formed and the unperturbed product a @ W is reused where a is unmoved.
    Returns the changes (4, C) and whether +-s crossed a kink, (2, C).
    """
    s = steps[:, :, None, None]  # (4, C, 1, 1) against (4, C, B, n)
    crossed = np.zeros(steps[:2].shape, dtype=bool)
    a = net.x
    for m in range(1, net.L + 1):
        w, uw, ub = net.p[f"W{m}"], u[f"W{m}"], u[f"b{m}"][:, None, :]
        if m == 1:
            moved = np.matmul(net.x, uw) + ub  # (C, B, n_1)
            if "x" in u:
                moved = moved + u["x"] @ w
                z = net.z[0] + s * moved + s * s * np.matmul(u["x"], uw)
            else:
                z = net.z[0] + s * moved
        else:
            z = a @ w + net.p[f"b{m}"] + s * (np.matmul(a, uw) + ub)
        act = net.acts[m - 1]
        if act.kink:
            crossed |= (act.regions(z[:2]) != net.regions[m - 1]).any(axis=(2, 3))
        if m == net.L and net.rule.from_logits:
            break
        a = act.forward(z)
    out = z if net.rule.from_logits else a
    change, loss_crossed = net.finish(out.reshape(-1, *out.shape[2:]), None, np.zeros(2 * steps.shape[1], dtype=bool))
    return change.reshape(steps.shape), crossed | loss_crossed.reshape(2, -1)
