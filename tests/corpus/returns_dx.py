"""A sigmoid MLP whose backward also returns dL/dx under the key "x" (useful for adversarial examples).

Row layout, torch's MSE, every layer sigmoid.
"""

# ruff: noqa: E741  (l for the layer index, as the styles this copies write it)

import numpy as np

ENGINE = dict(
    style="returns dL/dx as well, under the key 'x'",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("sigmoid",), losses=("mse",), targets=None,
    archs=(("3-4-2", "sigmoid,sigmoid", "mse"), ("2-2-2-2", "sigmoid,sigmoid,sigmoid", "mse")),
    random_archs=None, dtypes=None, weight_decay=None, loss_convention="declared", returns_dx=True,
)


def sig(z):
    return 1 / (1 + np.exp(-z))


def loss(params, x, y):
    a = x
    for l in range(1, len(params) // 2 + 1):
        a = sig(a @ params[f"W{l}"] + params[f"b{l}"])
    return np.mean((a - y) ** 2)


def grads(params, x, y):
    L = len(params) // 2
    acts = [x]
    for l in range(1, L + 1):
        acts.append(sig(acts[-1] @ params[f"W{l}"] + params[f"b{l}"]))
    grad = 2 * (acts[-1] - y) / y.size
    result = {}
    for l in range(L, 0, -1):
        grad = grad * acts[l] * (1 - acts[l])
        result[f"W{l}"] = acts[l - 1].T @ grad
        result[f"b{l}"] = grad.sum(axis=0)
        grad = grad @ params[f"W{l}"].T
    result["x"] = grad
    return result
