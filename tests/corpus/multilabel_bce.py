"""Multi-label classifier: several sigmoid outputs with binary cross-entropy averaged over every element.

The loss computed stably from the logits (log(1 + exp(-|z|)) form); the delta (sigmoid(z) - y) / (N * K).
relu hidden layers, biases kept as (1, n) inside and flattened on return.
"""

# ruff: noqa: E741  (l for the layer index, as the styles this copies write it)

import numpy as np

ENGINE = dict(
    style="multi-label bce from logits, stable log1p(exp(-|z|)) loss, (1, n) biases inside",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("relu", "sigmoid"), losses=("bce",), targets=None,
    archs=(("4-6-3", "relu,sigmoid", "bce"), ("3-4-4-5", "relu,relu,sigmoid", "bce"), ("5-2", "sigmoid", "bce")),
    random_archs=None, dtypes=None, weight_decay=None, loss_convention="declared",
)


def logits(params, x):
    L = len(params) // 2
    hs = [x]
    for l in range(1, L):
        hs.append(np.maximum(hs[-1] @ params[f"W{l}"] + params[f"b{l}"].reshape(1, -1), 0))
    return hs[-1] @ params[f"W{L}"] + params[f"b{L}"].reshape(1, -1), hs


def loss(params, x, y):
    z, _ = logits(params, x)
    per = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return per.mean()


def grads(params, x, y):
    z, hs = logits(params, x)
    L = len(hs)
    p = np.exp(-np.logaddexp(0, -z))
    delta = (p - y) / p.size
    out = {}
    for l in range(L, 0, -1):
        out[f"W{l}"] = hs[l - 1].T @ delta
        out[f"b{l}"] = delta.sum(axis=0, keepdims=True).ravel()
        if l > 1:
            delta = (delta @ params[f"W{l}"].T) * (hs[l - 1] > 0)
    return out
