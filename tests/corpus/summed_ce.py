"""Softmax regression / MLP with cross-entropy summed over the batch (no 1/N): delta = p - y.

The loss as many from-scratch repositories write it, -sum(y * log(p)), with a sigmoid hidden layer.
Exact for one-hot and probability target rows (the only ones its author feeds it).
"""

import numpy as np

ENGINE = dict(
    style="from-scratch repo: summed cross-entropy, delta = probs - y, sigmoid hidden layers",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("sigmoid", "softmax"), losses=("cross_entropy",), targets=("onehot", "probs"),
    archs=(("4-5-3", "sigmoid,softmax", "cross_entropy"), ("3-2", "softmax", "cross_entropy"),
           ("2-4-4-2", "sigmoid,sigmoid,softmax", "cross_entropy")),
    random_archs=None, dtypes=None, weight_decay=None,
    loss_convention="cross-entropy summed over the batch (batch x cross_entropy)",
)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def forward(params, x):
    n = len(params) // 2
    outs = [x]
    for i in range(1, n + 1):
        z = outs[-1] @ params[f"W{i}"] + params[f"b{i}"]
        outs.append(softmax(z) if i == n else sigmoid(z))
    return outs


def loss(params, x, y):
    n = len(params) // 2
    h = forward(params, x)[-2]
    z = h @ params[f"W{n}"] + params[f"b{n}"]
    m = z.max(axis=1, keepdims=True)
    log_p = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return -np.sum(y * log_p)


def grads(params, x, y):
    outs = forward(params, x)
    n = len(outs) - 1
    d = outs[-1] - y
    g = {}
    for i in range(n, 0, -1):
        g[f"W{i}"] = outs[i - 1].T @ d
        g[f"b{i}"] = d.sum(0)
        if i > 1:
            d = (d @ params[f"W{i}"].T) * outs[i - 1] * (1 - outs[i - 1])
    return g
