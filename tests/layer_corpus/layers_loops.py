"""Course-style layers written with explicit loops (the "naive" versions an assignment asks for first).

Same contract as layers_vectorised: `out, cache = forward(*arrays[, config])`, `backward(dout, cache)`.
"""

import numpy as np


def affine_forward_loops(x, w, b):
    N = x.shape[0]
    x_rows = x.reshape(N, -1)
    out = np.zeros((N, w.shape[1]))
    for n in range(N):
        out[n] = x_rows[n].dot(w) + b
    cache = (x, w, b)
    return out, cache


def affine_backward_loops(dout, cache):
    x, w, b = cache
    N = x.shape[0]
    x_rows = x.reshape(N, -1)
    dx_rows = np.zeros_like(x_rows)
    dw = np.zeros_like(w)
    db = np.zeros_like(b)
    for n in range(N):
        dx_rows[n] = w.dot(dout[n])
        dw += np.outer(x_rows[n], dout[n])
        db += dout[n]
    dx = dx_rows.reshape(x.shape)
    return dx, dw, db


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    out = np.zeros((N, F, H_out, W_out))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    window = x_pad[n, :, hs:hs + HH, ws:ws + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.zeros_like(b)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    dx_pad[n, :, hs:hs + HH, ws:ws + WW] += w[f] * dout[n, f, i, j]
                    dw[f] += x_pad[n, :, hs:hs + HH, ws:ws + WW] * dout[n, f, i, j]
                    db[f] += dout[n, f, i, j]
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


def max_pool_forward_naive(x, pool_param):
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    H_out = 1 + (H - ph) // stride
    W_out = 1 + (W - pw) // stride
    out = np.zeros((N, C, H_out, W_out))
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    out[n, c, i, j] = np.max(x[n, c, hs:hs + ph, ws:ws + pw])
    cache = (x, pool_param)
    return out, cache


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    window = x[n, c, hs:hs + ph, ws:ws + pw]
                    a, b = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, hs + a, ws + b] += dout[n, c, i, j]
    return dx


def layernorm_forward_loops(x, gamma, beta, ln_param):
    eps = ln_param.get("eps", 1e-5)
    N, D = x.shape
    out = np.zeros_like(x)
    xhat = np.zeros_like(x)
    inv_std = np.zeros(N)
    for n in range(N):
        mu = np.sum(x[n]) / D
        var = np.sum((x[n] - mu) ** 2) / D
        inv_std[n] = 1.0 / np.sqrt(var + eps)
        xhat[n] = (x[n] - mu) * inv_std[n]
        out[n] = gamma * xhat[n] + beta
    cache = (xhat, gamma, inv_std)
    return out, cache


def layernorm_backward_loops(dout, cache):
    xhat, gamma, inv_std = cache
    N, D = dout.shape
    dx = np.zeros_like(dout)
    dgamma = np.zeros_like(gamma)
    dbeta = np.zeros_like(gamma)
    for n in range(N):
        dbeta += dout[n]
        dgamma += dout[n] * xhat[n]
        g = dout[n] * gamma                      # d loss / d xhat for this row
        dx[n] = inv_std[n] * (g - np.mean(g) - xhat[n] * np.mean(g * xhat[n]))
    return dx, dgamma, dbeta


def softmax_loss_loops(x, y):
    N, C = x.shape
    loss = 0.0
    dx = np.zeros_like(x)
    for n in range(N):
        scores = x[n] - np.max(x[n])
        probs = np.exp(scores) / np.sum(np.exp(scores))
        loss += -np.log(probs[y[n]])
        for c in range(C):
            dx[n, c] = probs[c] - (c == y[n])
    loss /= N
    dx /= N
    return loss, dx
