"""Benign variants: correct layers written another way (different cache, different formula, float32 inside).

Every one is right; a checker that fails one of them raises a false alarm.
"""

import numpy as np

from . import layers_vectorised as lv


def relu_forward_out(x):
    out = np.maximum(0, x)
    cache = out                                  # keeps the output, not the input
    return out, cache


def relu_backward_from_out(dout, cache):
    out = cache
    return dout * (out > 0)                      # out > 0 exactly where x > 0


def relu_forward_inplace_mask(x):
    mask = x > 0
    return x * mask, mask


def relu_backward_mask(dout, cache):
    dx = dout.copy()
    dx[~cache] = 0
    return dx


def affine_forward_flat(x, w, b):
    x_rows = x.reshape(x.shape[0], -1)
    out = x_rows @ w + b
    cache = (x_rows, x.shape, w)                 # the flattened x and the shape to restore
    return out, cache


def affine_backward_flat(dout, cache):
    x_rows, x_shape, w = cache
    return (dout @ w.T).reshape(x_shape), x_rows.T @ dout, dout.sum(0)


def affine_forward_f32(x, w, b):
    """Computes in float32 (for speed), hands back the caller's dtype."""
    x32, w32, b32 = (a.astype(np.float32) for a in (x, w, b))
    out = x32.reshape(x.shape[0], -1) @ w32 + b32
    return out.astype(x.dtype), (x32, w32, x.dtype)


def affine_backward_f32(dout, cache):
    x32, w32, dtype = cache
    d32 = dout.astype(np.float32)
    dx = (d32 @ w32.T).reshape(x32.shape)
    dw = x32.reshape(x32.shape[0], -1).T @ d32
    db = d32.sum(axis=0)
    return dx.astype(dtype), dw.astype(dtype), db.astype(dtype)


def conv_forward_f32(x, w, b, conv_param):
    out, cache = lv.conv_forward_im2col(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), conv_param)
    return out.astype(x.dtype), (cache, x.dtype)


def conv_backward_f32(dout, cache):
    inner, dtype = cache
    return tuple(g.astype(dtype) for g in lv.conv_backward_im2col(dout.astype(np.float32), inner))


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """(N, C, H, W): per-channel statistics, by reusing the (N, D) batchnorm on (N*H*W, C)."""
    N, C, H, W = x.shape
    x_flat = x.transpose(0, 2, 3, 1).reshape(-1, C)
    out_flat, cache = lv.batchnorm_forward(x_flat, gamma, beta, bn_param)
    out = out_flat.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    return out, cache


def spatial_batchnorm_backward(dout, cache):
    N, C, H, W = dout.shape
    dout_flat = dout.transpose(0, 2, 3, 1).reshape(-1, C)
    dx_flat, dgamma, dbeta = lv.batchnorm_backward_alt(dout_flat, cache)
    dx = dx_flat.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    return dx, dgamma, dbeta


def layernorm_forward_transposed(x, gamma, beta, ln_param):
    """Layer norm as batch norm of x.T (the hint courses give): statistics over features, gamma per feature."""
    eps = ln_param.get("eps", 1e-5)
    xt = x.T                                     # (D, N): a "batch" of D values for each sample
    mu = xt.mean(axis=0)
    xmu = xt - mu
    var = (xmu ** 2).mean(axis=0)
    ivar = 1.0 / np.sqrt(var + eps)
    xhat_t = xmu * ivar
    out = gamma * xhat_t.T + beta
    cache = (xhat_t, gamma, ivar)
    return out, cache


def layernorm_backward_transposed(dout, cache):
    xhat_t, gamma, ivar = cache
    D = xhat_t.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xhat_t.T, axis=0)
    dxhat_t = dout.T * gamma[:, None]
    dx_t = ivar / D * (D * dxhat_t - dxhat_t.sum(axis=0) - xhat_t * np.sum(dxhat_t * xhat_t, axis=0))
    return dx_t.T, dgamma, dbeta


def layernorm_forward_any(x, gamma, beta, ln_param):
    """Normalises each sample over all its axes: x (N, ...), gamma and beta of the per-sample shape."""
    eps = ln_param.get("eps", 1e-5)
    axes = tuple(range(1, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    ivar = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * ivar
    return gamma * xhat + beta, (xhat, gamma, ivar, axes)


def layernorm_backward_any(dout, cache):
    xhat, gamma, ivar, axes = cache
    dxhat = dout * gamma
    dx = ivar * (dxhat - dxhat.mean(axis=axes, keepdims=True) - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def dropout_forward_bool(x, dropout_param):
    """Keeps a boolean mask and p, and scales in both passes."""
    p = dropout_param["p"]
    np.random.seed(dropout_param["seed"])
    keep = np.random.rand(*x.shape) < p
    out = x * keep / p
    return out, (keep, p)


def dropout_backward_bool(dout, cache):
    keep, p = cache
    return dout * keep / p


def softmax_loss_unshifted(x, y):
    """No max subtraction: correct, and safe for logits of moderate size."""
    N = x.shape[0]
    e = np.exp(x)
    probs = e / e.sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(probs[np.arange(N), y]))
    onehot = np.zeros_like(x)
    onehot[np.arange(N), y] = 1
    dx = (probs - onehot) / N
    return loss, dx
