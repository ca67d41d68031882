"""leaky_relu with slope 0.2 (tf.nn.leaky_relu's default; Keras' LeakyReLU uses 0.3), tanh output, MSE.

bpcheck's leaky_relu is fixed at slope 0.01 today; the arch names the slope as 'leaky_relu:0.2'.
"""

# ruff: noqa: E741  (l for the layer index, as the styles this copies write it)

import numpy as np

SLOPE = 0.2

ENGINE = dict(
    style="leaky_relu with tf's slope 0.2, np.maximum(z, 0.2 z)",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("leaky_relu:0.2", "tanh"), losses=("mse",), targets=None,
    archs=(("3-4-2", "leaky_relu:0.2,tanh", "mse"), ("2-5-5-1", "leaky_relu:0.2,leaky_relu:0.2,tanh", "mse")),
    random_archs=None, dtypes=None, weight_decay=None, loss_convention="declared",
)


def forward(params, x):
    L = len(params) // 2
    zs, hs = [], [x]
    for l in range(1, L + 1):
        z = hs[-1] @ params[f"W{l}"] + params[f"b{l}"]
        zs.append(z)
        hs.append(np.tanh(z) if l == L else np.maximum(z, SLOPE * z))
    return zs, hs


def loss(params, x, y):
    return np.mean((forward(params, x)[1][-1] - y) ** 2)


def grads(params, x, y):
    zs, hs = forward(params, x)
    L = len(zs)
    d = 2 * (hs[-1] - y) / y.size * (1 - hs[-1] ** 2)
    g = {}
    for l in range(L, 0, -1):
        g[f"W{l}"] = hs[l - 1].T @ d
        g[f"b{l}"] = d.sum(0)
        if l > 1:
            d = (d @ params[f"W{l}"].T) * np.where(zs[l - 2] > 0, 1.0, SLOPE)
    return g
