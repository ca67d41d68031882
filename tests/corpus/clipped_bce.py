"""Binary cross-entropy with the logs clipped, np.clip(a, 1e-12, 1 - 1e-12), and the fused delta (a - y) / N.

leaky_relu hidden layers (slope 0.01), a sigmoid output, mean over every element (torch's bce).
The clip only keeps the loss finite; the gradient is the exact fused one.
"""

# ruff: noqa: E741  (l for the layer index, as the styles this copies write it)

import numpy as np

EPS = 1e-12

ENGINE = dict(
    style="bce loss with np.clip(a, 1e-12, 1 - 1e-12) in the logs, fused delta (a - y) / N, leaky_relu",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("leaky_relu", "sigmoid"), losses=("bce",), targets=None,
    archs=(("3-4-1", "leaky_relu,sigmoid", "bce"), ("2-5-5-3", "leaky_relu,leaky_relu,sigmoid", "bce")),
    random_archs=None, dtypes=None, weight_decay=None, loss_convention="declared",
)


def leaky(z):
    return np.where(z > 0, z, 0.01 * z)


def leaky_grad(z):
    return np.where(z > 0, 1.0, 0.01)


def sigmoid(z):
    # Split by sign so that exp never overflows.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _forward(params, x):
    L = len(params) // 2
    zs, acts = [], [x]
    for l in range(1, L + 1):
        z = acts[-1] @ params[f"W{l}"] + params[f"b{l}"]
        zs.append(z)
        acts.append(sigmoid(z) if l == L else leaky(z))
    return zs, acts


def loss(params, x, y):
    a = np.clip(_forward(params, x)[1][-1], EPS, 1 - EPS)
    return float(-np.mean(y * np.log(a) + (1 - y) * np.log(1 - a)))


def grads(params, x, y):
    L = len(params) // 2
    zs, acts = _forward(params, x)
    delta = (acts[-1] - y) / y.size
    g = {}
    for l in range(L, 0, -1):
        g[f"W{l}"] = acts[l - 1].T @ delta
        g[f"b{l}"] = delta.sum(axis=0)
        if l > 1:
            delta = (delta @ params[f"W{l}"].T) * leaky_grad(zs[l - 2])
    return g
