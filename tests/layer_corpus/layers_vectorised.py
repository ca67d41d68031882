"""Course-style layers, vectorised (as an assignment's layers.py and fast_layers.py write them).

Contract: `out, cache = forward(*arrays[, config])`, `grads = backward(dout, cache)` in the forward's argument
order (a bare array when there is one). Written from the maths, not from bpcheck.
"""

import numpy as np

from . import layers_loops


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


def _im2col_indices(C, H, W, HH, WW, pad, stride):
    """Row k of the column matrix is (channel, kernel row, kernel col); column l is the output position."""
    H_out = (H + 2 * pad - HH) // stride + 1
    W_out = (W + 2 * pad - WW) // stride + 1
    i0 = np.tile(np.repeat(np.arange(HH), WW), C)
    i1 = stride * np.repeat(np.arange(H_out), W_out)
    j0 = np.tile(np.arange(WW), HH * C)
    j1 = stride * np.tile(np.arange(W_out), H_out)
    i = i0.reshape(-1, 1) + i1.reshape(1, -1)
    j = j0.reshape(-1, 1) + j1.reshape(1, -1)
    k = np.repeat(np.arange(C), HH * WW).reshape(-1, 1)
    return k, i, j, H_out, W_out


def conv_forward_im2col(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    k, i, j, H_out, W_out = _im2col_indices(C, H, W, HH, WW, pad, stride)
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    cols = x_pad[:, k, i, j]                                  # (N, C*HH*WW, H_out*W_out)
    out = np.matmul(w.reshape(F, -1), cols) + b.reshape(1, F, 1)
    out = out.reshape(N, F, H_out, W_out)
    cache = (x, w, b, conv_param, cols)
    return out, cache


def conv_backward_im2col(dout, cache):
    x, w, b, conv_param, cols = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    k, i, j, _, _ = _im2col_indices(C, H, W, HH, WW, pad, stride)
    dout_flat = dout.reshape(N, F, -1)
    db = np.sum(dout, axis=(0, 2, 3))
    dw = np.einsum("nfl,nkl->fk", dout_flat, cols).reshape(w.shape)
    dcols = np.matmul(w.reshape(F, -1).T, dout_flat)         # (N, C*HH*WW, H_out*W_out)
    dx_pad = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=dcols.dtype)
    np.add.at(dx_pad, (slice(None), k, i, j), dcols)         # overlapping windows: accumulate, never assign
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


def max_pool_forward_fast(x, pool_param):
    """Non-overlapping square windows that tile the input: the reshape trick; anything else: the naive loops."""
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    if not (ph == pw == stride and H % ph == 0 and W % pw == 0):
        out, cache = layers_loops.max_pool_forward_naive(x, pool_param)
        return out, ("naive", cache)
    x_reshaped = x.reshape(N, C, H // ph, ph, W // pw, pw)
    out = x_reshaped.max(axis=3).max(axis=4)
    cache = (x, x_reshaped, out)
    return out, ("reshape", cache)


def max_pool_backward_fast(dout, cache):
    method, real_cache = cache
    if method == "naive":
        return layers_loops.max_pool_backward_naive(dout, real_cache)
    x, x_reshaped, out = real_cache
    N, C, H_out, ph, W_out, pw = x_reshaped.shape
    windows = x_reshaped.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, H_out, W_out, ph * pw)
    first_max = np.argmax(windows, axis=-1)[..., None]       # ties: the first maximum in row-major order
    dwindows = np.zeros_like(windows, dtype=dout.dtype)
    np.put_along_axis(dwindows, first_max, dout[..., None], axis=-1)
    dx = dwindows.reshape(N, C, H_out, W_out, ph, pw).transpose(0, 1, 2, 4, 3, 5).reshape(x.shape)
    return dx


def batchnorm_forward(x, gamma, beta, bn_param):
    mode = bn_param["mode"]
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    N, D = x.shape
    running_mean = bn_param.get("running_mean", np.zeros(D, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(D, dtype=x.dtype))

    out, cache = None, None
    if mode == "train":
        # one node of the computational graph per line, as the step-by-step backward walks it
        mu = np.mean(x, axis=0)
        xmu = x - mu
        sq = xmu ** 2
        var = np.mean(sq, axis=0)
        sqrtvar = np.sqrt(var + eps)
        ivar = 1.0 / sqrtvar
        xhat = xmu * ivar
        out = gamma * xhat + beta
        running_mean = momentum * running_mean + (1 - momentum) * mu
        running_var = momentum * running_var + (1 - momentum) * var
        cache = (xhat, gamma, xmu, ivar, sqrtvar, var, eps)
    elif mode == "test":
        xhat = (x - running_mean) / np.sqrt(running_var + eps)
        out = gamma * xhat + beta
    else:
        raise ValueError(f'Invalid forward batchnorm mode "{mode}"')

    bn_param["running_mean"] = running_mean
    bn_param["running_var"] = running_var
    return out, cache


def batchnorm_backward(dout, cache):
    """The computational graph, node by node, from the output back to x."""
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N, D = dout.shape
    dbeta = np.sum(dout, axis=0)
    dgammax = dout
    dgamma = np.sum(dgammax * xhat, axis=0)
    dxhat = dgammax * gamma
    divar = np.sum(dxhat * xmu, axis=0)
    dxmu1 = dxhat * ivar
    dsqrtvar = -1.0 / (sqrtvar ** 2) * divar
    dvar = 0.5 * 1.0 / np.sqrt(var + eps) * dsqrtvar
    dsq = 1.0 / N * np.ones((N, D)) * dvar
    dxmu2 = 2 * xmu * dsq
    dx1 = dxmu1 + dxmu2
    dmu = -1 * np.sum(dxmu1 + dxmu2, axis=0)
    dx2 = 1.0 / N * np.ones((N, D)) * dmu
    dx = dx1 + dx2
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    """The same gradient simplified on paper to one line."""
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    dx = ivar / N * (N * dxhat - dxhat.sum(axis=0) - xhat * np.sum(dxhat * xhat, axis=0))
    return dx, dgamma, dbeta


def layernorm_forward(x, gamma, beta, ln_param):
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    ivar = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * ivar
    out = gamma * xhat + beta
    cache = (xhat, gamma, ivar)
    return out, cache


def layernorm_backward(dout, cache):
    xhat, gamma, ivar = cache
    D = dout.shape[1]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    dx = ivar / D * (D * dxhat - dxhat.sum(axis=1, keepdims=True)
                     - xhat * np.sum(dxhat * xhat, axis=1, keepdims=True))
    return dx, dgamma, dbeta


def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    if "seed" in dropout_param:
        np.random.seed(dropout_param["seed"])
    mask = None
    if mode == "train":
        mask = (np.random.rand(*x.shape) < p) / p
        out = x * mask
    elif mode == "test":
        out = x
    out = out.astype(x.dtype, copy=False)
    cache = (dropout_param, mask)
    return out, cache


def dropout_backward(dout, cache):
    dropout_param, mask = cache
    mode = dropout_param["mode"]
    dx = None
    if mode == "train":
        dx = dout * mask
    elif mode == "test":
        dx = dout
    return dx


def softmax_loss(x, y):
    shifted = x - np.max(x, axis=1, keepdims=True)
    Z = np.sum(np.exp(shifted), axis=1, keepdims=True)
    log_probs = shifted - np.log(Z)
    probs = np.exp(log_probs)
    N = x.shape[0]
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = probs.copy()
    dx[np.arange(N), y] -= 1
    dx /= N
    return loss, dx
