"""Every FD family of a small net in one batched pass: the path fd_mlp takes when all perturbed copies fit.

fd_mlp's families (each layer's W and b, x, each z_l, the output) run one pass per chunk of each
family, which for a net of tens of params is a few dozen small numpy calls per family: Python, not
arithmetic, sets the cost. Here the coordinates of every family share one index space and one call of
finite_diff.family_difference (plus its kink retry), so a whole check is two passes.

A pass carries K perturbed copies as changes from the unperturbed forward: dz_l = da_{l-1} @ W_l plus
the perturbed coordinate's own term (W_l[i, j] by s adds s * a_{l-1}[:, i] to column j, b_l[j] adds s,
z_l[b, j] adds s at sample b), z_l = z_l(unperturbed) + dz_l. A copy that nothing moved keeps the
unperturbed z_l exactly, so it can never be flagged for a kink it did not cross. The result is the same
(R, truncation, kink, h) per coordinate, with the same steps, as the family-by-family path.
"""

from __future__ import annotations

import numpy as np

from .finite_diff import PASS_ARRAYS, family_difference, relative_steps


def fits(net, chunk_bytes: int) -> bool:
    """Do all 4N perturbed copies of net (N coordinates of every family) fit in one chunk?"""
    n = sum(v.size for v in _family_values(net).values())
    return 4 * n * net.B * max(net.arch.sizes) * 8 * PASS_ARRAYS <= chunk_bytes


def _family_values(net) -> dict[str, np.ndarray]:
    """Each family's current values, in the order of the shared index space."""
    values = {}
    for layer in range(1, net.L + 1):
        values[f"W{layer}"], values[f"b{layer}"] = net.p[f"W{layer}"], net.p[f"b{layer}"]
    values["x"] = net.x
    for layer in range(1, net.L + 1):
        values[f"z{layer}"] = net.z[layer - 1]
    if not net.rule.from_logits:
        values["out"] = net.out
    return values


def _families(net) -> tuple[dict[str, tuple[int, int, tuple[int, ...]]], np.ndarray]:
    """name -> (start, stop, shape) in the shared index space, and the values there (for the steps)."""
    values = _family_values(net)
    spans, start = {}, 0
    for name, v in values.items():
        spans[name] = (start, start + v.size, v.shape)
        start += v.size
    return spans, np.concatenate([np.ravel(v) for v in values.values()])


class DenseRun:
    """fd_mlp._FDRun's interface (param_grad, x_grad, z_grad, output_grad, evaluations, retried), all
    families computed at construction."""

    def __init__(self, net, rel_step: float) -> None:
        self.net = net
        self.spans, values = _families(net)
        h = relative_steps(values, rel_step)
        g, t, k, used = family_difference(h, self._run, len(h))
        self.retried = int((used != h).sum())
        self.evaluations = 4 * (h.size + self.retried)
        self._out = {name: tuple(v[a:b].reshape(shape) for v in (g, t, k, used))
                     for name, (a, b, shape) in self.spans.items()}

    def param_grad(self, layer: int, name: str):
        return self._out[name]

    def x_grad(self):
        return self._out["x"]

    def z_grad(self, layer: int):
        return self._out[f"z{layer}"]

    def output_grad(self) -> np.ndarray:
        return self._out["out"][0]

    def _picked(self, name: str, idx: np.ndarray):
        """(copies k whose coordinate lies in family name, that coordinate's flat index in the family)."""
        a, b, _ = self.spans[name]
        k = np.flatnonzero((idx >= a) & (idx < b))
        return k, idx[k] - a

    def _run(self, idx: np.ndarray, s: np.ndarray, n_kink: int) -> tuple[np.ndarray, np.ndarray]:
        """family_difference's callback: copy k perturbs coordinate idx[k] by s[k]."""
        net, K = self.net, len(idx)
        crossed = np.zeros(n_kink, dtype=bool)
        da = np.zeros((K, *net.x.shape))
        k, flat = self._picked("x", idx)
        da[k, flat // net.x.shape[1], flat % net.x.shape[1]] = s[k]
        for layer in range(1, net.L + 1):
            w, z_home, a_prev = net.p[f"W{layer}"], net.z[layer - 1], net.a[layer - 1]
            n_prev, n = w.shape
            dz = (da.reshape(-1, n_prev) @ w).reshape(K, net.B, n)
            k, flat = self._picked(f"W{layer}", idx)
            dz[k, :, flat % n] += s[k, None] * a_prev[:, flat // n].T
            k, j = self._picked(f"b{layer}", idx)
            dz[k, :, j] += s[k, None]
            k, flat = self._picked(f"z{layer}", idx)
            dz[k, flat // n, flat % n] += s[k]
            if layer == net.L and net.rule.from_logits:
                return net.finish(None, None, crossed, d=dz)  # the logits' change, exactly
            z = dz + z_home
            act = net.acts[layer - 1]
            if act.kink and n_kink:
                crossed |= (act.regions(z[:n_kink]) != net.regions[layer - 1]).reshape(n_kink, -1).any(axis=1)
            a = act.forward(z)
            da = a - net.a[layer]
            da[~dz.any(axis=2)] = 0.0  # an unmoved sample is unmoved exactly, whatever path the ufunc took
        k, flat = self._picked("out", idx)
        a[k, flat // a.shape[2], flat % a.shape[2]] += s[k]
        return net.finish(a, None, crossed)
