"""An engine that works in float32 throughout (as GPU code does): params and data are cast on entry.

tanh hidden layers and a sigmoid output with the mean squared error. Checked on float32 cases only,
the precision it computes in.
"""

import numpy as np

ENGINE = dict(
    style="float32 internals: everything cast to np.float32, float32 gradients returned",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("tanh", "sigmoid"), losses=("mse",), targets=None,
    archs=(("4-6-2", "tanh,sigmoid", "mse"), ("3-4-4-1", "tanh,tanh,sigmoid", "mse")),
    random_archs=None, dtypes=("float32",), weight_decay=None, loss_convention="declared",
)

f32 = np.float32


def _prep(params, x, y):
    n = len(params) // 2
    W = [params[f"W{i}"].astype(f32) for i in range(1, n + 1)]
    b = [params[f"b{i}"].astype(f32) for i in range(1, n + 1)]
    return W, b, x.astype(f32), y.astype(f32)


def _forward(W, b, x):
    acts = [x]
    for i in range(len(W)):
        z = acts[-1] @ W[i] + b[i]
        if i == len(W) - 1:
            acts.append(f32(1) / (f32(1) + np.exp(-z)))
        else:
            acts.append(np.tanh(z))
    return acts


def loss(params, x, y):
    W, b, x, y = _prep(params, x, y)
    return float(np.mean((_forward(W, b, x)[-1] - y) ** 2))


def grads(params, x, y):
    W, b, x, y = _prep(params, x, y)
    acts = _forward(W, b, x)
    a = acts[-1]
    dz = f32(2) * (a - y) / f32(y.size) * a * (f32(1) - a)
    out = {}
    for i in range(len(W) - 1, -1, -1):
        out[f"W{i + 1}"] = acts[i].T @ dz
        out[f"b{i + 1}"] = dz.sum(axis=0)
        if i > 0:
            dz = (dz @ W[i].T) * (f32(1) - acts[i] * acts[i])
    return out
