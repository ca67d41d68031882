"""GELU in its exact erf form (torch's default), GELU'(z) = Phi(z) + z phi(z), with math.erf vectorised.

GELU hidden layers, an identity output, torch's MSE.
"""

# ruff: noqa: E741  (l for the layer index, as the styles this copies write it)

import math

import numpy as np

ENGINE = dict(
    style="exact-erf GELU via np.vectorize(math.erf), Phi(z) + z phi(z) derivative",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("gelu", "identity"), losses=("mse",), targets=None,
    archs=(("3-4-2", "gelu,identity", "mse"), ("2-5-5-1", "gelu,gelu,identity", "mse")),
    random_archs=None, dtypes=None, weight_decay=None, loss_convention="declared",
)

erf = np.vectorize(math.erf, otypes=[float])


def Phi(z):
    return 0.5 * (1.0 + erf(z / math.sqrt(2.0)))


def phi(z):
    return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def net(params, x):
    L = len(params) // 2
    zs, hs = [], [x]
    for l in range(1, L + 1):
        z = hs[-1] @ params[f"W{l}"] + params[f"b{l}"]
        zs.append(z)
        hs.append(z if l == L else z * Phi(z))
    return zs, hs


def loss(params, x, y):
    return np.mean((net(params, x)[1][-1] - y) ** 2)


def grads(params, x, y):
    zs, hs = net(params, x)
    L = len(zs)
    d = 2 * (hs[-1] - y) / y.size
    g = {}
    for l in range(L, 0, -1):
        if l < L:
            z = zs[l - 1]
            d = d * (Phi(z) + z * phi(z))
        g[f"W{l}"] = hs[l - 1].T @ d
        g[f"b{l}"] = d.sum(0)
        d = d @ params[f"W{l}"].T
    return g
