"""A lecture-notes ReLU net trained on half the sum of squared errors, L = 1/2 sum (y_hat - y)^2.

`grads` is correct for that loss (`loss`), which is not torch's mean-reduced MSE: bpcheck calls it CONVENTION
when given `--loss-fn examples/half_sse_relu.py:loss`. `grads_relu1_missing` has one real bug under the same
convention (layer 1's relu' is left out); bpcheck places it in layer 1 and names it.
"""

import numpy as np


def _forward(params, x):
    z1 = x @ params["W1"] + params["b1"]
    a1 = np.maximum(z1, 0)
    z2 = a1 @ params["W2"] + params["b2"]
    a2 = np.maximum(z2, 0)
    out = a2 @ params["W3"] + params["b3"]
    return z1, a1, z2, a2, out


def loss(params, x, y):
    out = _forward(params, x)[-1]
    return 0.5 * np.sum((out - y) ** 2)


def _backward(params, x, y, relu1=True):
    z1, a1, z2, a2, out = _forward(params, x)
    d3 = out - y                                   # d(1/2 sum (out - y)^2) / d out
    d2 = (d3 @ params["W3"].T) * (z2 > 0)
    d1 = d2 @ params["W2"].T
    if relu1:
        d1 = d1 * (z1 > 0)
    return {"W1": x.T @ d1, "b1": d1.sum(0), "W2": a1.T @ d2, "b2": d2.sum(0), "W3": a2.T @ d3, "b3": d3.sum(0)}


def grads(params, x, y):
    return _backward(params, x, y)


def grads_relu1_missing(params, x, y):
    return _backward(params, x, y, relu1=False)
