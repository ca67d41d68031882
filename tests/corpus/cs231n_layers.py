"""CS231n assignment style: layer functions returning (out, cache), backward functions taking (dout, cache).

affine_forward / relu_forward / sigmoid_forward and their backwards, a softmax_loss on integer class
labels (the assignment's y), batch-mean cross-entropy. bpcheck's targets are one-hot rows: this net
reads the labels with y.argmax(axis=1), so it is exact for one-hot targets only.
"""

import numpy as np

ENGINE = dict(
    style="CS231n layers.py: (out, cache) forward functions, backward(dout, cache), softmax_loss on labels",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("relu", "softmax"), losses=("cross_entropy",), targets=("onehot",),
    archs=(("4-6-3", "relu,softmax", "cross_entropy"), ("3-5-5-4", "relu,relu,softmax", "cross_entropy")),
    random_archs=None, dtypes=None, weight_decay=None, loss_convention="declared",
)


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1).dot(w) + b
    cache = (x, w, b)
    return out, cache


def affine_backward(dout, cache):
    x, w, b = cache
    dx = dout.dot(w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T.dot(dout)
    db = np.sum(dout, axis=0)
    return dx, dw, db


def relu_forward(x):
    out = np.maximum(0, x)
    cache = x
    return out, cache


def relu_backward(dout, cache):
    x = cache
    dx = dout * (x > 0)
    return dx


def softmax_loss(x, y):
    shifted_logits = x - np.max(x, axis=1, keepdims=True)
    Z = np.sum(np.exp(shifted_logits), axis=1, keepdims=True)
    log_probs = shifted_logits - np.log(Z)
    probs = np.exp(log_probs)
    N = x.shape[0]
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = probs.copy()
    dx[np.arange(N), y] -= 1
    dx /= N
    return loss, dx


def _forward(params, X):
    n = len(params) // 2
    caches = []
    out = X
    for i in range(1, n + 1):
        out, fc = affine_forward(out, params[f"W{i}"], params[f"b{i}"])
        rc = None
        if i < n:
            out, rc = relu_forward(out)
        caches.append((fc, rc))
    return out, caches


def grads(params, X, y):
    labels = np.argmax(y, axis=1)
    scores, caches = _forward(params, X)
    _, dout = softmax_loss(scores, labels)
    out = {}
    for i in range(len(caches), 0, -1):
        fc, rc = caches[i - 1]
        if rc is not None:
            dout = relu_backward(dout, rc)
        dout, out[f"W{i}"], out[f"b{i}"] = affine_backward(dout, fc)
    return out


def loss(params, X, y):
    scores, _ = _forward(params, X)
    return softmax_loss(scores, np.argmax(y, axis=1))[0]
