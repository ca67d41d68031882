"""A deep tanh net written with 0-based Python lists and an explicit loop over the layers, as a numpy
beginner writes it: W[0] is the first layer; the output tanh too; mean squared error over every element.
"""

import numpy as np

ENGINE = dict(
    style="0-based lists W[0..L-1], explicit for-loops over layers, deep tanh nets",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("tanh",), losses=("mse",), targets=None,
    archs=(("3-4-4-4-4-2", "tanh,tanh,tanh,tanh,tanh", "mse"), ("2-3-3-3-1", "tanh,tanh,tanh,tanh", "mse")),
    random_archs=None, dtypes=None, weight_decay=None, loss_convention="declared",
)


def to_lists(params):
    W, B = [], []
    i = 1
    while f"W{i}" in params:
        W.append(params[f"W{i}"])
        B.append(params[f"b{i}"])
        i += 1
    return W, B


def loss(params, x, y):
    W, B = to_lists(params)
    h = x
    for i in range(len(W)):
        h = np.tanh(np.dot(h, W[i]) + B[i])
    return np.mean(np.square(h - y))


def grads(params, x, y):
    W, B = to_lists(params)
    H = [x]
    for i in range(len(W)):
        H.append(np.tanh(np.dot(H[i], W[i]) + B[i]))
    dH = 2.0 * (H[-1] - y) / (y.shape[0] * y.shape[1])
    dW = [None] * len(W)
    dB = [None] * len(W)
    for i in range(len(W) - 1, -1, -1):
        dZ = dH * (1.0 - np.square(H[i + 1]))
        dW[i] = np.dot(H[i].T, dZ)
        dB[i] = np.sum(dZ, axis=0)
        dH = np.dot(dZ, W[i].T)
    out = {}
    for i in range(len(W)):
        out["W" + str(i + 1)] = dW[i]
        out["b" + str(i + 1)] = dB[i]
    return out
