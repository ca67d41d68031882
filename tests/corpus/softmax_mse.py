"""A softmax output trained with the mean squared error: the full softmax Jacobian, per sample, via einsum.

J_i = diag(p_i) - p_i p_i^T for every row i; dz_i = J_i^T g_i. sigmoid hidden layers.
"""

# ruff: noqa: E741  (l for the layer index, as the styles this copies write it)

import numpy as np

ENGINE = dict(
    style="softmax output with MSE: per-row Jacobian diag(p) - p p^T built with einsum",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("sigmoid", "softmax"), losses=("mse",), targets=None,
    archs=(("3-4-3", "sigmoid,softmax", "mse"), ("2-2", "softmax", "mse"), ("4-3-3-4", "sigmoid,sigmoid,softmax", "mse")),
    random_archs=None, dtypes=None, weight_decay=None, loss_convention="declared",
)


def softmax(z):
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def run(params, x):
    L = len(params) // 2
    outs = [x]
    for l in range(1, L + 1):
        z = outs[-1] @ params[f"W{l}"] + params[f"b{l}"]
        outs.append(softmax(z) if l == L else 1 / (1 + np.exp(-z)))
    return outs


def loss(params, x, y):
    return np.mean((run(params, x)[-1] - y) ** 2)


def grads(params, x, y):
    outs = run(params, x)
    L = len(outs) - 1
    p = outs[-1]
    g = 2 * (p - y) / y.size
    k = p.shape[1]
    jac = np.einsum("ij,jk->ijk", p, np.eye(k)) - np.einsum("ij,ik->ijk", p, p)
    d = np.einsum("ijk,ij->ik", jac, g)
    out = {}
    for l in range(L, 0, -1):
        out[f"W{l}"] = outs[l - 1].T @ d
        out[f"b{l}"] = d.sum(axis=0)
        if l > 1:
            s = outs[l - 1]
            d = (d @ params[f"W{l}"].T) * s * (1 - s)
    return out
