"""Vectorised course-style MLP with L2 weight decay in the loss: mse + lambda/2 * sum of every W**2.

Gradient dW += lambda * W, biases not decayed. Sigmoid hidden layers, identity output.
"""

# ruff: noqa: E741  (l for the layer index, as the styles this copies write it)

import numpy as np

LAMBDA = 0.01

ENGINE = dict(
    style="vectorised course MLP, loss mse + lambda/2 * sum(W**2) (biases not decayed)",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("sigmoid", "identity"), losses=("mse",), targets=None,
    archs=(("3-5-2", "sigmoid,identity", "mse"), ("2-4-4-1", "sigmoid,sigmoid,identity", "mse")),
    random_archs=None, dtypes=None, weight_decay=LAMBDA,
    loss_convention="mse + lambda/2 * sum(W**2), lambda = 0.01",
)


def _forward(params, x):
    L = len(params) // 2
    cache = {"A0": x}
    A = x
    for l in range(1, L + 1):
        Z = A @ params[f"W{l}"] + params[f"b{l}"]
        A = Z if l == L else 1.0 / (1.0 + np.exp(-Z))
        cache[f"A{l}"] = A
    return A, cache


def loss(params, x, y):
    out, _ = _forward(params, x)
    L = len(params) // 2
    penalty = sum(np.sum(params[f"W{l}"] ** 2) for l in range(1, L + 1))
    return np.mean((out - y) ** 2) + LAMBDA / 2 * penalty


def grads(params, x, y):
    out, cache = _forward(params, x)
    L = len(params) // 2
    dA = 2 * (out - y) / out.size
    g = {}
    for l in range(L, 0, -1):
        A = cache[f"A{l}"]
        dZ = dA if l == L else dA * A * (1 - A)
        g[f"W{l}"] = cache[f"A{l - 1}"].T @ dZ + LAMBDA * params[f"W{l}"]
        g[f"b{l}"] = dZ.sum(axis=0)
        dA = dZ @ params[f"W{l}"].T
    return g
