"""A small CNN's backprop written by hand, as a course assignment writes it: conv -> relu -> max-pool -> dense -> softmax.

    python -m bpcheck check examples/cnn_kernel_flip.py:grads --arch-json examples/cnn.json

grads pairs each kernel tap with the flipped window in dW (a true convolution's formula, while the forward computes a
cross-correlation); grads_fixed is the same code with that one line right. Params: W1 (F, C, 3, 3), b1 (F,) of the
conv (padding 1), W5 (F*H/2*W/2, K), b5 (K,) of the dense layer; x (N, C, H, W); y one-hot rows (N, K).
"""

import numpy as np


def _forward(params, x):
    w, b = params["W1"], params["b1"]
    n, _, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    z = np.zeros((n, w.shape[0], h, wd))
    for i in range(h):
        for j in range(wd):
            z[:, :, i, j] = np.einsum("nchw,fchw->nf", xp[:, :, i:i + 3, j:j + 3], w) + b
    a = np.maximum(z, 0)
    pooled = a.reshape(n, a.shape[1], h // 2, 2, wd // 2, 2).max(axis=(3, 5))
    scores = pooled.reshape(n, -1) @ params["W5"] + params["b5"]
    return xp, z, a, pooled, scores


def _grads(params, x, y, flipped):
    xp, z, a, pooled, scores = _forward(params, x)
    n, f, h, wd = z.shape
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dscores = (p - y) / n
    out = {"W5": pooled.reshape(n, -1).T @ dscores, "b5": dscores.sum(axis=0)}
    dpooled = (dscores @ params["W5"].T).reshape(pooled.shape)
    da = np.zeros_like(a)
    for i in range(h // 2):
        for j in range(wd // 2):
            window = a[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].reshape(n, f, 4)
            first = window.argmax(axis=2)  # the gradient goes to the first maximum, as torch's
            for k in range(4):
                da[:, :, 2 * i + k // 2, 2 * j + k % 2] += (first == k) * dpooled[:, :, i, j]
    dz = da * (z > 0)
    dw = np.zeros_like(params["W1"])
    for i in range(h):
        for j in range(wd):
            window = xp[:, :, i:i + 3, j:j + 3]
            if flipped:
                window = window[:, :, ::-1, ::-1]  # BUG: the kernel flipped, as for a true convolution
            dw += np.einsum("nchw,nf->fchw", window, dz[:, :, i, j])
    out.update(W1=dw, b1=dz.sum(axis=(0, 2, 3)))
    return out


def grads(params, x, y):
    return _grads(params, x, y, flipped=True)


def grads_fixed(params, x, y):
    return _grads(params, x, y, flipped=False)
