"""A hand-written backprop with a common slip: tanh' written 1 - a instead of 1 - a**2 in the hidden layer.

    python -m bpcheck check examples/tanh_prime_bug.py:grads --arch 3-4-2 --activations tanh,identity --loss mse

bpcheck localises it to layer 1 and names it in these words: "layer 1 computes tanh' as 1 - a (should be 1 - a²)".
"""

import numpy as np


def grads(params, x, y):
    h = np.tanh(x @ params["W1"] + params["b1"])
    out = h @ params["W2"] + params["b2"]
    d_out = 2.0 * (out - y) / out.size            # mse: the mean over every element
    dh_pre = (d_out @ params["W2"].T) * (1 - h)   # the bug: tanh'(z) = 1 - h**2
    return {"W1": x.T @ dh_pre, "b1": dh_pre.sum(0), "W2": h.T @ d_out, "b2": d_out.sum(0)}
