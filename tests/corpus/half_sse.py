"""Vectorised row-layout backprop for the half sum of squared errors, L = 0.5 * sum((a - y)**2).

No mean at all (summed over the batch and the outputs): the loss many lecture notes start from,
so the output delta is just (a - y) * f'(z). tanh hidden layers, an identity output.
"""

import numpy as np

ENGINE = dict(
    style="vectorised lecture-notes backprop, half SSE summed over everything, lists of W and b",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("tanh", "identity"), losses=("mse",), targets=None,
    archs=(("3-4-2", "tanh,identity", "mse"), ("2-6-6-1", "tanh,tanh,identity", "mse"), ("3-3", "identity", "mse")),
    random_archs=None, dtypes=None, weight_decay=None,
    loss_convention="half the sum of squared errors over batch and outputs (batch * n_out / 2 x mse)",
)


def loss(params, x, y):
    a = x
    n = len(params) // 2
    for i in range(1, n + 1):
        z = a @ params[f"W{i}"] + params[f"b{i}"]
        a = z if i == n else np.tanh(z)
    return 0.5 * np.sum((a - y) ** 2)


def grads(params, x, y):
    n = len(params) // 2
    Ws = [params[f"W{i}"] for i in range(1, n + 1)]
    bs = [params[f"b{i}"] for i in range(1, n + 1)]
    hs = [x]
    for i, (W, b) in enumerate(zip(Ws, bs)):
        z = hs[-1] @ W + b
        hs.append(z if i == n - 1 else np.tanh(z))
    delta = hs[-1] - y
    dWs, dbs = [], []
    for i in reversed(range(n)):
        if i < n - 1:
            delta = delta * (1 - hs[i + 1] ** 2)
        dWs.insert(0, hs[i].T @ delta)
        dbs.insert(0, delta.sum(axis=0))
        delta = delta @ Ws[i].T
    out = {}
    for i in range(n):
        out[f"W{i + 1}"], out[f"b{i + 1}"] = dWs[i], dbs[i]
    return out
