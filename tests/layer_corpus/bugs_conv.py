"""Planted bugs in conv2d and maxpool2d: each a copy of a correct layer with one edit, marked `# BUG`.

manifest.BUGS says which gradient each gets wrong and on which inputs it shows.
"""

import numpy as np

from .layers_vectorised import _im2col_indices


def _naive_conv_backward(dout, cache, crop, flip=False, stride_used=True):
    """conv_backward_naive with one of three edits switched on (shared so each bug stays a one-line change)."""
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
                    hs, ws = (i * stride, j * stride) if stride_used else (i, j)
                    window = x_pad[n, :, hs:hs + HH, ws:ws + WW]
                    dx_pad[n, :, hs:hs + HH, ws:ws + WW] += w[f] * dout[n, f, i, j]
                    dw[f] += (window[:, ::-1, ::-1] if flip else window) * dout[n, f, i, j]
                    db[f] += dout[n, f, i, j]
    return crop(dx_pad, pad, H, W), dw, db


def conv_backward_kernel_flipped(dout, cache):
    # BUG: dw accumulated with the window flipped (a convolution where the forward is a cross-correlation)
    return _naive_conv_backward(dout, cache, lambda d, pad, H, W: d[:, :, pad:pad + H, pad:pad + W], flip=True)


def conv_backward_crop_top_left(dout, cache):
    # BUG: dx cropped from the top-left corner, not from pad: off by `pad` rows and columns
    return _naive_conv_backward(dout, cache, lambda d, pad, H, W: d[:, :, :H, :W])


def conv_backward_crop_negative_pad(dout, cache):
    # BUG: pad:-pad is right for pad >= 1 and empty for pad == 0
    return _naive_conv_backward(dout, cache, lambda d, pad, H, W: d[:, :, pad:-pad, pad:-pad])


def conv_backward_ignores_stride(dout, cache):
    # BUG: the backward walks windows at (i, j), not (i * stride, j * stride): right for stride 1 only
    return _naive_conv_backward(dout, cache, lambda d, pad, H, W: d[:, :, pad:pad + H, pad:pad + W], stride_used=False)


def conv_backward_im2col_db_axes(dout, cache):
    x, w, b, conv_param, cols = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    k, i, j, _, _ = _im2col_indices(C, H, W, HH, WW, pad, stride)
    dout_flat = dout.reshape(N, F, -1)
    db = np.sum(dout, axis=(0, 1, 2))            # BUG: summed over (N, F, H_out): shape (W_out,), fits only F == W_out
    dw = np.einsum("nfl,nkl->fk", dout_flat, cols).reshape(w.shape)
    dcols = np.matmul(w.reshape(F, -1).T, dout_flat)
    dx_pad = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=dcols.dtype)
    np.add.at(dx_pad, (slice(None), k, i, j), dcols)
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


def conv_backward_im2col_fancy_add(dout, cache):
    x, w, b, conv_param, cols = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    k, i, j, _, _ = _im2col_indices(C, H, W, HH, WW, pad, stride)
    dout_flat = dout.reshape(N, F, -1)
    db = np.sum(dout, axis=(0, 2, 3))
    dw = np.einsum("nfl,nkl->fk", dout_flat, cols).reshape(w.shape)
    dcols = np.matmul(w.reshape(F, -1).T, dout_flat)
    dx_pad = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=dcols.dtype)
    dx_pad[:, k, i, j] += dcols                  # BUG: fancy-index += keeps one write per pixel: overlaps are lost
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


def _naive_pool_backward(dout, cache, route):
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    route(dx, x, dout, n, c, i, j, ph, pw, stride)
    return dx


def max_pool_backward_all_ties(dout, cache):
    def route(dx, x, dout, n, c, i, j, ph, pw, s):
        window = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
        mask = window == np.max(window)          # BUG: every tied maximum gets the whole gradient
        dx[n, c, i * s:i * s + ph, j * s:j * s + pw] += mask * dout[n, c, i, j]
    return _naive_pool_backward(dout, cache, route)


def max_pool_backward_first_element(dout, cache):
    def route(dx, x, dout, n, c, i, j, ph, pw, s):
        dx[n, c, i * s, j * s] += dout[n, c, i, j]  # BUG: always the window's top-left element, never the argmax
    return _naive_pool_backward(dout, cache, route)


def max_pool_backward_pool_as_stride(dout, cache):
    def route(dx, x, dout, n, c, i, j, ph, pw, s):
        hs, ws = i * ph, j * pw                  # BUG: windows stepped by the pool size, not the stride
        window = x[n, c, hs:hs + ph, ws:ws + pw]
        a, b = np.unravel_index(np.argmax(window), window.shape)
        dx[n, c, hs + a, ws + b] += dout[n, c, i, j]
    return _naive_pool_backward(dout, cache, route)


def max_pool_backward_overwrite(dout, cache):
    def route(dx, x, dout, n, c, i, j, ph, pw, s):
        window = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
        a, b = np.unravel_index(np.argmax(window), window.shape)
        dx[n, c, i * s + a, j * s + b] = dout[n, c, i, j]  # BUG: = not +=: a max shared by overlapping windows keeps one
    return _naive_pool_backward(dout, cache, route)


def max_pool_forward_reshape(x, pool_param):
    ph, pw = pool_param["pool_height"], pool_param["pool_width"]
    N, C, H, W = x.shape
    x_reshaped = x.reshape(N, C, H // ph, ph, W // pw, pw)
    out = x_reshaped.max(axis=3).max(axis=4)
    return out, (x, x_reshaped, out)


def max_pool_backward_reshape_split_ties(dout, cache):
    x, x_reshaped, out = cache
    dx_reshaped = np.zeros_like(x_reshaped)
    out_newaxis = out[:, :, :, np.newaxis, :, np.newaxis]
    mask = x_reshaped == out_newaxis
    dout_newaxis = dout[:, :, :, np.newaxis, :, np.newaxis]
    dout_broadcast, _ = np.broadcast_arrays(dout_newaxis, dx_reshaped)
    dx_reshaped[mask] = dout_broadcast[mask]
    dx_reshaped /= np.sum(mask, axis=(3, 5), keepdims=True)  # CONVENTION: tied maxima share the gradient equally
    return dx_reshaped.reshape(x.shape)
