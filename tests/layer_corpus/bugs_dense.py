"""Planted bugs in affine, relu, dropout and softmax_loss: each a copy of a correct layer with one edit, marked `# BUG`.

manifest.BUGS says which gradient each gets wrong and on which inputs it shows.
"""

import numpy as np


def relu_backward_ignores_dout(dout, cache):
    x = cache
    dx = (x > 0).astype(x.dtype)                 # BUG: the local derivative alone, as if dout were all ones
    return dx


def relu_backward_ge(dout, cache):
    x = cache
    dx = dout * (x >= 0)                         # CONVENTION: gradient 1 at x == 0 (torch, and the course, use 0)
    return dx


def affine_backward_row0(dout, cache):
    x, w, b = cache
    N = x.shape[0]
    x_rows = x.reshape(N, -1)
    dx_rows = np.zeros_like(x_rows)
    dw = np.zeros_like(w)
    db = np.zeros_like(b)
    for n in range(N):
        dx_rows[0] += w.dot(dout[n])             # BUG: every sample's gradient lands in row 0
        dw += np.outer(x_rows[n], dout[n])
        db += dout[n]
    dx = dx_rows.reshape(x.shape)
    return dx, dw, db


def affine_backward_dw_mean(dout, cache):
    x, w, b = cache
    N = x.shape[0]
    dx = dout.dot(w.T).reshape(x.shape)
    dw = x.reshape(N, -1).T.dot(dout) / N        # BUG: averaged over the batch (the loss already did that)
    db = np.sum(dout, axis=0)
    return dx, dw, db


def affine_backward_dw_transposed(dout, cache):
    x, w, b = cache
    dx = dout.dot(w.T).reshape(x.shape)
    dw = dout.T.dot(x.reshape(x.shape[0], -1))   # BUG: (M, D), the transpose; the shape only fits when D == M
    db = np.sum(dout, axis=0)
    return dx, dw, db


def affine_backward_dw_first_sample(dout, cache):
    x, w, b = cache
    N = x.shape[0]
    x_rows = x.reshape(N, -1)
    dx_rows = np.zeros_like(x_rows)
    dw = np.zeros_like(w)
    db = np.zeros_like(b)
    for n in range(N):
        dx_rows[n] = w.dot(dout[n])
        dw += np.outer(x_rows[0], dout[n])       # BUG: x[0] where x[n] was meant
        db += dout[n]
    return dx_rows.reshape(x.shape), dw, db


def dropout_forward_keep(x, dropout_param):
    p = dropout_param["p"]
    np.random.seed(dropout_param["seed"])
    keep = np.random.rand(*x.shape) < p
    out = x * keep / p
    return out, keep


def dropout_backward_no_scale(dout, cache):
    keep = cache
    dx = dout * keep                             # BUG: the forward scaled by 1/p, the backward forgets it
    return dx


def dropout_backward_new_mask(dout, cache):
    dropout_param, mask = cache
    p = dropout_param["p"]
    mask = (np.random.rand(*dout.shape) < p) / p  # BUG: a fresh mask, not the forward's
    return dout * mask


def softmax_loss_not_averaged(x, y):
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    probs = np.exp(log_probs)
    N = x.shape[0]
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = probs.copy()
    dx[np.arange(N), y] -= 1                     # BUG: the loss is a batch mean, dx is never divided by N
    return loss, dx


def softmax_loss_label_columns(x, y):
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    probs = np.exp(log_probs)
    N = x.shape[0]
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = probs.copy()
    dx[:, y] -= 1                                # BUG: every row loses 1 in every labelled column, not its own
    dx /= N
    return loss, dx


def relu_backward_inplace(dout, cache):
    x = cache
    dx = dout                                    # BUG (side effect): dx is dout itself, zeroed in place
    dx[x <= 0] = 0
    return dx


def dropout_backward_into_mask(dout, cache):
    dropout_param, mask = cache
    mask *= dout                                 # BUG (side effect): the cached mask becomes dx; a 2nd call is wrong
    return mask
