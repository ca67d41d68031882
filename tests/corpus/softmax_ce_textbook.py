"""Softmax + cross-entropy with the textbook delta (softmax(z) - y) / N, tanh hidden layers.

The loss is the batch mean of -sum(y * log softmax(z)); the delta is exact for one-hot and probability
target rows, the only targets its author ever feeds.
"""

# ruff: noqa: E741  (l for the layer index, as the styles this copies write it)

import numpy as np

ENGINE = dict(
    style="textbook softmax + cross-entropy delta (softmax(z) - y) / N, tanh hidden, lists",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("tanh", "softmax"), losses=("cross_entropy",), targets=("onehot", "probs"),
    archs=(("4-8-3", "tanh,softmax", "cross_entropy"), ("2-3-3-5", "tanh,tanh,softmax", "cross_entropy"),
           ("3-2", "softmax", "cross_entropy")),
    random_archs=None, dtypes=None, weight_decay=None, loss_convention="declared",
)


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def logits_and_hidden(params, x):
    L = len(params) // 2
    hidden = [x]
    for l in range(1, L):
        hidden.append(np.tanh(hidden[-1] @ params[f"W{l}"] + params[f"b{l}"]))
    return hidden[-1] @ params[f"W{L}"] + params[f"b{L}"], hidden


def loss(params, x, y):
    z, _ = logits_and_hidden(params, x)
    return -np.mean(np.sum(y * log_softmax(z), axis=1))


def grads(params, x, y):
    L = len(params) // 2
    z, hidden = logits_and_hidden(params, x)
    delta = (np.exp(log_softmax(z)) - y) / x.shape[0]
    g = {}
    for l in range(L, 0, -1):
        g[f"W{l}"] = hidden[l - 1].T @ delta
        g[f"b{l}"] = delta.sum(axis=0)
        if l > 1:
            delta = (delta @ params[f"W{l}"].T) * (1 - hidden[l - 1] ** 2)
    return g
