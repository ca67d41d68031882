"""The perturbed layer of fd_stack: K copies of one layer's output whose param moved at one coordinate each.

A dense weight W[i, j] (bias b[j]) moves column j of z by s a[:, i] (by s); a conv weight W[f, c, u, v] (bias
b[f]) moves output channel f by s times the slice of the padded input that weight multiplies (by s): exact,
so the perturbed layer costs one slice per copy, and the change leaves cut to that channel (fd_stack_model.Moved).
Any other param runs the layer's reference on K perturbed copies of its params.
"""

from __future__ import annotations

import numpy as np

from .fd_stack_model import ROW_COUPLED_FNS, Moved, Stack, differs


def perturb(st: Stack, i: int, name: str, idx: np.ndarray, s: np.ndarray, crossed: np.ndarray) -> Moved:
    """Layer i's output for K copies whose param `name` moved at flat index idx[k] by s[k]."""
    kind = st.kinds[i]
    if kind == "dense" and name in ("W", "b") and st.configs[i].get("activation") not in ROW_COUPLED_FNS:
        return _dense(st, i, name, idx, s, crossed)
    if kind == "conv2d" and name in ("W", "b") and st.layers[i].pattern is None:
        return _conv(st, i, name, idx, s)
    theta = st.p[i][name]
    moved = np.array(np.broadcast_to(theta.ravel(), (len(idx), theta.size)))
    moved[np.arange(len(idx)), idx] += s
    params = {**st.shared(i, len(idx)), name: moved.reshape(len(idx), *theta.shape)}
    x = np.broadcast_to(st.acts[i], (len(idx), *st.acts[i].shape))
    n = len(crossed)
    if n and st.layers[i].pattern is not None:
        crossed |= differs(st.pattern(i, {k: v[:n] for k, v in params.items()}, x[:n]), st.home_pattern(i))
    return Moved(st.reference(i, params, x))

def _dense(st: Stack, i: int, name: str, idx: np.ndarray, s: np.ndarray, crossed: np.ndarray) -> Moved:
    """z = a @ W + b moves in column j only; the activation runs on that column (the activation kind's
    reference and pattern, elementwise)."""
    z = st.cached(("z", i), lambda: st.reference_as(i, {"activation": "identity"}))[0]
    n_out = z.shape[1]
    j = idx % n_out if name == "W" else idx
    z_col = z[:, j].T + (s[:, None] * st.acts[i][:, idx // n_out].T if name == "W" else s[:, None])
    home = z[:, j].T[:, :, None]
    return Moved(st.activate(st.configs[i]["activation"], z_col[:, :, None], home, crossed), None, j)

def _conv(st: Stack, i: int, name: str, idx: np.ndarray, s: np.ndarray) -> Moved:
    """Output channel f moves by s times the input slice that weight (f, c, u, v) multiplies (by s for b[f])."""
    out = st.acts[i + 1]
    f_count, c_count, kh, kw = st.p[i]["W"].shape
    f = idx // (c_count * kh * kw) if name == "W" else idx
    base = np.moveaxis(out[:, f], 1, 0)  # (K, B, Ho, Wo)
    if name == "b":
        return Moved((base + s[:, None, None, None])[:, :, None], None, f)
    stride, pad = _pair(st.configs[i].get("stride", 1)), _pair(st.configs[i].get("padding", 0))
    xp = st.cached(("pad", i), lambda: np.pad(st.acts[i], ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2)))
    c, u, v = np.unravel_index(idx % (c_count * kh * kw), (c_count, kh, kw))
    rows = u[:, None] + stride[0] * np.arange(out.shape[2])  # (K, Ho)
    cols = v[:, None] + stride[1] * np.arange(out.shape[3])  # (K, Wo)
    patch = xp[:, c[:, None, None], rows[:, :, None], cols[:, None, :]]  # (B, K, Ho, Wo)
    return Moved((base + s[:, None, None, None] * np.moveaxis(patch, 1, 0))[:, :, None], None, f)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))
