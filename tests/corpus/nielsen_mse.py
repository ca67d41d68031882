"""Nielsen-style per-sample backprop in the row layout, written for torch's MSE (mean over every element).

Each row of x is turned into a column vector, backpropagated alone, and the per-sample gradients are
summed; the 2/(batch * n_out) of the mean squared error is applied once, at the end. Hidden layers
tanh or sigmoid (by name), the output sigmoid or identity.
"""

import numpy as np

ENGINE = dict(
    style="per-sample loop on column vectors, row-layout params transposed inside, sum then scale",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("tanh", "sigmoid", "identity"), losses=("mse",), targets=None,
    archs=(("3-4-2", "tanh,sigmoid", "mse"), ("2-5-5-3", "sigmoid,tanh,identity", "mse"),
           ("4-1", "identity", "mse")),
    random_archs=None, dtypes=None, weight_decay=None, loss_convention="declared",
)

# The fixed archs above say which activation each layer has; the engine reads them from here.
ACTS = {(3, 4, 2): ("tanh", "sigmoid"), (2, 5, 5, 3): ("sigmoid", "tanh", "identity"), (4, 1): ("identity",)}


def act(name, z):
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    return z


def act_prime(name, z):
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-z))
        return s * (1 - s)
    return np.ones_like(z)


def layers(params, x):
    n = len(params) // 2
    sizes = (x.shape[1],) + tuple(params[f"b{i}"].shape[0] for i in range(1, n + 1))
    names = ACTS[sizes]
    return [(params[f"W{i}"].T, params[f"b{i}"].reshape(-1, 1), names[i - 1]) for i in range(1, n + 1)]


def one_sample(net, x, y):
    a, acts, zs = x, [x], []
    for w, b, name in net:
        z = w @ a + b
        zs.append(z)
        a = act(name, z)
        acts.append(a)
    delta = 2 * (a - y) * act_prime(net[-1][2], zs[-1])
    dws, dbs = [None] * len(net), [None] * len(net)
    for i in range(len(net) - 1, -1, -1):
        if i < len(net) - 1:
            delta = (net[i + 1][0].T @ delta) * act_prime(net[i][2], zs[i])
        dws[i] = delta @ acts[i].T
        dbs[i] = delta
    return dws, dbs


def grads(params, x, y):
    net = layers(params, x)
    sum_w = [np.zeros_like(w) for w, _, _ in net]
    sum_b = [np.zeros_like(b) for _, b, _ in net]
    for xi, yi in zip(x, y):
        dws, dbs = one_sample(net, xi.reshape(-1, 1), yi.reshape(-1, 1))
        for i in range(len(net)):
            sum_w[i] += dws[i]
            sum_b[i] += dbs[i]
    scale = 1.0 / y.size
    out = {}
    for i in range(len(net)):
        out[f"W{i + 1}"] = (sum_w[i] * scale).T
        out[f"b{i + 1}"] = (sum_b[i] * scale).ravel()
    return out


def loss(params, x, y):
    a = x.T
    for w, b, name in layers(params, x):
        a = act(name, w @ a + b)
    return float(np.mean((a - y.T) ** 2))
