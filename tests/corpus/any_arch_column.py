"""Column-layout engine over random architectures: grads(arch, params, X, Y) with samples as columns.

W_l is (n_l, n_{l-1}), b_l is (n_l, 1). sigmoid / tanh / relu / identity layers, mse or bce
(sigmoid output, the explicit-derivative route: dA = (A - Y) / (A (1 - A)) / N, then times sigma').
"""

# ruff: noqa: E741  (l for the layer index, as the styles this copies write it)

import numpy as np

ENGINE = dict(
    style="column layout over random archs: if/elif activation names, explicit dA then dZ for every loss",
    grads="grads", loss="loss", layout="column", takes_arch=True,
    activations=("sigmoid", "tanh", "relu", "identity"), losses=("mse", "bce"), targets=None,
    archs=(("2-3-1", "tanh,sigmoid", "bce"), ("3-3-3-2", "relu,sigmoid,identity", "mse")),
    random_archs=dict(max_depth=3, max_width=5), dtypes=("float64",), weight_decay=None, loss_convention="declared",
    # dA = (A - Y) / (A (1 - A)) is 0/0 once the sigmoid output rounds to 0 or 1 (|z| > 37 in float64,
    # > 17 in float32): checked where it is sound, as its author would use it.
    regimes=("ordinary", "near_kink", "saturating", "tiny"),
)


def activate(name, Z):
    if name == "sigmoid":
        return 1 / (1 + np.exp(-Z))
    elif name == "tanh":
        return np.tanh(Z)
    elif name == "relu":
        return np.maximum(0, Z)
    return Z


def derivative(name, Z, A):
    if name == "sigmoid":
        return A * (1 - A)
    elif name == "tanh":
        return 1 - A ** 2
    elif name == "relu":
        return (Z > 0) * 1.0
    return np.ones_like(Z)


def forward(arch, params, X):
    A, cache = X, []
    for l, name in enumerate(arch.activations, start=1):
        Z = params[f"W{l}"] @ A + params[f"b{l}"]
        cache.append((A, Z))
        A = activate(name, Z)
    return A, cache


def loss(arch, params, X, Y):
    A, _ = forward(arch, params, X)
    if arch.loss == "mse":
        return np.mean((A - Y) ** 2)
    return -np.mean(Y * np.log(A) + (1 - Y) * np.log(1 - A))


def grads(arch, params, X, Y):
    A, cache = forward(arch, params, X)
    N = Y.size
    if arch.loss == "mse":
        dA = 2 * (A - Y) / N
    else:
        dA = (A - Y) / (A * (1 - A)) / N
    out = {}
    for l in range(len(cache), 0, -1):
        A_prev, Z = cache[l - 1]
        dZ = dA * derivative(arch.activations[l - 1], Z, activate(arch.activations[l - 1], Z))
        out[f"W{l}"] = dZ @ A_prev.T
        out[f"b{l}"] = np.sum(dZ, axis=1, keepdims=True)
        dA = params[f"W{l}"].T @ dZ
    return out
