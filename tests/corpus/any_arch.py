"""A general engine over random architectures: grads(arch, params, x, y), activations looked up by name.

A table of (forward, derivative-from-z) pairs; the loss's gradient with respect to the output's
activation for mse and huber (through the output activation's derivative), and the fused deltas
(a - y) / N for sigmoid + bce and (softmax(z) - y) / batch for softmax + cross-entropy (exact for
one-hot and probability targets).
"""

# ruff: noqa: E741  (l for the layer index, as the styles this copies write it)

import numpy as np

ENGINE = dict(
    style="grads(arch, params, x, y): a dict of activation rules, fused bce/CE deltas, vectorised rows",
    grads="grads", loss="loss", layout="row", takes_arch=True,
    activations=("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus"),
    losses=("mse", "bce", "cross_entropy", "huber"), targets=("onehot", "probs"),
    archs=(("3-4-2", "elu,softplus", "huber"), ("2-3-3-4", "relu,tanh,softmax", "cross_entropy")),
    random_archs=dict(max_depth=4, max_width=6), dtypes=None, weight_decay=None, loss_convention="declared",
)


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


RULES = {
    "identity": (lambda z: z, lambda z: np.ones_like(z)),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1 - _sigmoid(z))),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype)),
    "leaky_relu": (lambda z: np.where(z > 0, z, 0.01 * z), lambda z: np.where(z > 0, 1.0, 0.01)),
    "elu": (lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))), lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0)))),
    "softplus": (lambda z: np.logaddexp(0, z), _sigmoid),
}


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward(arch, params, x):
    zs, acts = [], [x]
    for l, name in enumerate(arch.activations, start=1):
        z = acts[-1] @ params[f"W{l}"] + params[f"b{l}"]
        zs.append(z)
        acts.append(_softmax(z) if name == "softmax" else RULES[name][0](z))
    return zs, acts


def loss(arch, params, x, y):
    zs, acts = forward(arch, params, x)
    a, z = acts[-1], zs[-1]
    if arch.loss == "mse":
        return np.mean((a - y) ** 2)
    if arch.loss == "huber":
        r = np.abs(a - y)
        return np.mean(np.where(r < 1, 0.5 * r ** 2, r - 0.5))
    if arch.loss == "bce":
        # log(sigmoid(z)) = -logaddexp(0, -z), log(1 - sigmoid(z)) = -logaddexp(0, z)
        return np.mean(y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z))
    m = z.max(axis=1, keepdims=True)
    log_p = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return -np.mean(np.sum(y * log_p, axis=1))


def grads(arch, params, x, y):
    zs, acts = forward(arch, params, x)
    a, L = acts[-1], len(zs)
    if arch.loss == "bce":
        dz = (a - y) / y.size
    elif arch.loss == "cross_entropy":
        dz = (a - y) / y.shape[0]
    else:
        r = a - y
        da = 2 * r / y.size if arch.loss == "mse" else np.clip(r, -1, 1) / y.size
        dz = da * RULES[arch.activations[-1]][1](zs[-1])
    g = {}
    for l in range(L, 0, -1):
        g[f"W{l}"] = acts[l - 1].T @ dz
        g[f"b{l}"] = dz.sum(axis=0)
        if l > 1:
            dz = (dz @ params[f"W{l}"].T) * RULES[arch.activations[l - 2]][1](zs[l - 2])
    return g
