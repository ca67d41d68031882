"""The MLP-aware finite-difference reference: every coordinate of dL/dW, dL/db, dL/dx and dL/dz_l.

Each family of coordinates (each layer's W and b, x, each z_l, the output) runs through
finite_diff.family_difference; the perturbed evaluations are fd_mlp_pass.Net's (a small net's families
all at once: fd_dense).

Rounding scale S of one evaluation (see finite_diff), in units of the total loss, per sample:
|l_b| / B, plus sum over the recomputed z_m of |dL/dz_m| * ((|a_{m-1}| + |z_{m-1}|) @ |W_m| + |b_m|),
plus, for a loss taken from logits, sum_j (|z_L| + 1)(|y| + 1) / B (its internal terms, which cancel
when the net is confident), else |dL/da_L| (|a_L| + |z_L|). dL/dz and dL/da_L are this module's own
FD values: no hand-written derivative is trusted, not even for the error estimate.
"""

from __future__ import annotations

import time

import numpy as np

from ..ops import weight_decay
from ..spec import Case, Gradients
from . import fd_dense
from .fd_mlp_pass import ROW_COUPLED, _replace_column
from .fd_mlp_pass import Net as _Net
from .finite_diff import (
    CHUNK_BYTES,
    PASS_ARRAYS,
    REL_STEP,
    family_difference,
    relative_steps,
    rounding_error,
)


def _float64(case: Case) -> Case:
    """The case in float64; a float64 case as is (astype would validate and copy every array again)."""
    return case if case.dtype is np.float64 else case.astype(np.float64)


class _FDRun:
    """The FD families of one case: the params of each layer, x, each z_l and the output a_L."""

    def __init__(self, net: _Net, rel_step: float, chunk_bytes: int) -> None:
        self.net, self.rel_step, self.chunk_bytes = net, rel_step, chunk_bytes
        self.evaluations = self.retried = 0

    def _family(self, values: np.ndarray, width: int, run, group: int = 0):
        h = relative_steps(values.ravel(), self.rel_step)
        size = max(1, int(self.chunk_bytes // (4 * width * 8 * PASS_ARRAYS)))  # coordinates per chunk
        g, t, k, used = family_difference(h, run, size, group)
        self.retried += int((used != h).sum())
        self.evaluations += 4 * (h.size + int((used != h).sum()))
        return tuple(v.reshape(values.shape) for v in (g, t, k, used))

    def _above(self, layer: int, samples: int) -> int:
        """Entries per perturbation of the widest (K, B', n) array a pass from z_layer builds."""
        sizes, coupled = self.net.arch.sizes, self.net.arch.activations[layer - 1] in ROW_COUPLED
        return samples * max(sizes[layer + 1:] + (sizes[layer] if coupled else 1,))

    def param_grad(self, layer: int, name: str):
        net, B = self.net, self.net.B
        theta = net.p[name]
        if name.startswith("b"):
            def run(idx, s, n_kink):
                return net.column_step(layer, idx, np.broadcast_to(s[:, None], (len(idx), B)), None, n_kink)

            return self._family(theta, self._above(layer, B), run)
        # W_l runs column by column (theta.T), so each chunk shares j and the samples that j moves.
        n_prev, a_prev = theta.shape[0], net.a[layer - 1]

        def run(idx, s, n_kink):
            return net.column_step(layer, idx // n_prev, s[:, None] * a_prev[:, idx % n_prev].T, None, n_kink)

        return tuple(v.T for v in self._family(theta.T, self._above(layer, B), run, group=n_prev))

    def x_grad(self):
        net, n_in = self.net, self.net.x.shape[1]
        w1 = net.p["W1"]

        def run(idx, s, n_kink):
            rows, i = (idx // n_in)[:, None], idx % n_in
            if (rows == rows[0]).all():  # the usual chunk: one sample, shared by every perturbation
                rows = rows[:1]
            z1 = net.full(net.z[0], rows) + (s[:, None] * w1[i])[:, None, :]  # sample b moves by s * W1[i, :]
            return net.climb(1, z1, rows, np.zeros(n_kink, dtype=bool))

        return self._family(net.x, max(net.arch.sizes[1:]), run, group=n_in)

    def z_grad(self, layer: int):
        net, n_l = self.net, self.net.z[layer - 1].shape[1]

        def run(idx, s, n_kink):
            return net.column_step(layer, idx % n_l, s[:, None], (idx // n_l)[:, None], n_kink)

        return self._family(net.z[layer - 1], self._above(layer, 1), run)

    def output_grad(self) -> np.ndarray:
        """dL/da_L by FD through the loss alone; only its size enters the rounding scale."""
        net, n_out = self.net, self.net.out.shape[1]

        def run(idx, s, n_kink):
            rows, j = (idx // n_out)[:, None], idx % n_out
            out = _replace_column(net.full(net.out, rows), j, net.column(net.out, j, rows) + s[:, None])
            return net.finish(out, rows, np.zeros(0, dtype=bool))[0], np.zeros(n_kink, dtype=bool)

        return self._family(net.out, n_out, run)[0]


def _fd_run(net: _Net, rel_step: float, chunk_bytes: int):
    """All families in one pass for a small net (fd_dense: Python overhead dominates there), else by family."""
    return fd_dense.DenseRun(net, rel_step) if fd_dense.fits(net, chunk_bytes) else _FDRun(net, rel_step, chunk_bytes)


class _Scales:
    """dL/dz_l by FD and from it the rounding scale S (module docstring) of each kind of perturbation.

    above[l] (B,): per sample, the loss terms + the z_m terms of every layer m > l (module docstring);
    own[l-1] (B, n_l): |dL/dz_l| |z_l|, the rounding of the perturbed entry itself.
    """

    def __init__(self, net: _Net, fd: _FDRun) -> None:
        fds = [fd.z_grad(layer) for layer in range(1, net.L + 1)]
        self.dz = tuple(f[0] for f in fds)
        self.dz_kink = tuple(f[2] for f in fds)
        # What one rounding of a_m costs: eps (|a_m| + |z_m|), since gelu's 1 + erf (or tanh) loses eps |z|, not eps |a|.
        amag = [np.abs(net.x)] + [np.abs(a) + np.abs(z) for a, z in zip(net.a[1:], net.z)]
        mags = [amag[m - 1] @ np.abs(net.p[f"W{m}"]) + np.abs(net.p[f"b{m}"]) for m in range(1, net.L + 1)]
        row_terms = [(np.abs(g) * mag).sum(axis=1) for g, mag in zip(self.dz, mags)]
        base = _loss_base(net)
        if not net.rule.from_logits:
            base = base + (np.abs(fd.output_grad()) * amag[-1]).sum(axis=1)
        self.above = [base + sum(row_terms[m:], np.zeros(net.B)) for m in range(net.L + 1)]
        self.own = [np.abs(g) * np.abs(z) for g, z in zip(self.dz, net.z)]
        self.dz_error = tuple(t + rounding_error(self.above[layer][:, None] + self.own[layer - 1], h)
                              for layer, (_, t, _, h) in enumerate(fds, start=1))


def _loss_base(net: _Net) -> np.ndarray:
    """(B,) the loss's own terms of the rounding scale S, per sample: |l_b| / B, and for a loss taken
    from logits its internal terms (the part of S that needs no FD)."""
    base = np.abs(net.sample_loss) / net.B
    if net.rule.from_logits:
        # A loss fused with its output activation sums terms the size of the logits (and the 1 inside
        # log-sum-exp or log1p), which cancel when the net is confident: l_b can be far below them.
        base = base + ((np.abs(net.out) + 1) * (np.abs(net.y) + 1)).sum(axis=1) / net.B
    return base


def mlp_gradients(case: Case, *, rel_step: float = REL_STEP, chunk_bytes: int = CHUNK_BYTES) -> Gradients:
    """Every coordinate of dL/dtheta, dL/dx and dL/dz_l by Richardson central differences in float64.

    Returns Gradients(source="fd") with error (absolute error estimate, keys of grads plus "x") and
    kink (True where even the retried step moved a kinked pre-activation or the huber residual to
    another region, or off an exact boundary). meta: dz_error and dz_kink per layer, rel_step, the
    number of perturbed evaluations, the coordinates (of every family, dz included) redone with a
    smaller step, and the seconds taken.
    """
    start = time.perf_counter()
    net = _Net(_float64(case))
    fd = _fd_run(net, rel_step, chunk_bytes)
    sc = _Scales(net, fd)
    grads, error, kink = {}, {}, {}
    for layer in range(1, net.L + 1):
        column_scale = sc.above[layer].sum() + sc.own[layer - 1].sum(axis=0)  # (n_l,): W_l[:, j] and b_l[j]
        for name in (f"W{layer}", f"b{layer}"):
            grads[name], t, kink[name], h = fd.param_grad(layer, name)
            error[name] = t + rounding_error(column_scale, h)
    dx, t, kink["x"], h = fd.x_grad()
    error["x"] = t + rounding_error((sc.above[1] + sc.own[0].sum(axis=1))[:, None], h)  # x[b, :] moves z_1[b, :]
    loss = net.loss
    if net.arch.weight_decay:
        # The declared L2 term lambda/2 ||W||^2 is separable and quadratic in each coordinate, so its central
        # difference ((w + h)^2 - (w - h)^2) lambda / 4h = lambda w is exact for every h: added in that form.
        value, decay = weight_decay(net.arch.weight_decay, net.p)
        loss += value
        grads.update({k: grads[k] + g for k, g in decay.items()})
    meta = {"rel_step": rel_step, "richardson": True, "evaluations": fd.evaluations, "retried": fd.retried,
            "dz_error": sc.dz_error, "dz_kink": sc.dz_kink, "seconds": time.perf_counter() - start}
    return Gradients(loss, grads, dx, dz=sc.dz, da=None, error=error, kink=kink, source="fd", meta=meta)
