"""A ReLU MLP whose derivative takes relu'(0) = 1 (np.where(z >= 0, 1, 0)), as several tutorials do.

Identity output, torch's MSE. At exact zeros of a pre-activation this is another valid subgradient.
"""

# ruff: noqa: E741  (l for the layer index, as the styles this copies write it)

import numpy as np

ENGINE = dict(
    style="tutorial ReLU net with relu'(0) = 1 (z >= 0), dictionary of caches",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("relu", "identity"), losses=("mse",), targets=None,
    archs=(("3-5-2", "relu,identity", "mse"), ("2-4-4-2", "relu,relu,identity", "mse")),
    random_archs=None, dtypes=None, weight_decay=None, loss_convention="declared",
)


def relu(z):
    return np.maximum(z, 0)


def relu_derivative(z):
    return np.where(z >= 0, 1.0, 0.0)


def forward(params, x):
    L = len(params) // 2
    cache = {"a0": x}
    for l in range(1, L + 1):
        z = cache[f"a{l - 1}"] @ params[f"W{l}"] + params[f"b{l}"]
        cache[f"z{l}"] = z
        cache[f"a{l}"] = z if l == L else relu(z)
    return cache


def loss(params, x, y):
    L = len(params) // 2
    return np.mean((forward(params, x)[f"a{L}"] - y) ** 2)


def grads(params, x, y):
    L = len(params) // 2
    cache = forward(params, x)
    grad_a = 2.0 * (cache[f"a{L}"] - y) / y.size
    out = {}
    for l in reversed(range(1, L + 1)):
        grad_z = grad_a if l == L else grad_a * relu_derivative(cache[f"z{l}"])
        out[f"W{l}"] = cache[f"a{l - 1}"].T @ grad_z
        out[f"b{l}"] = grad_z.sum(axis=0)
        grad_a = grad_z @ params[f"W{l}"].T
    return out
