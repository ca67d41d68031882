"""Planted bugs in batchnorm and layernorm: each a copy of a correct layer with one edit, marked `# BUG`.

The batchnorm ones take the cache of layers_vectorised.batchnorm_forward, the layernorm ones that of the forward
named next to them in manifest.BUGS.
"""

import numpy as np


def batchnorm_backward_no_mean_term(dout, cache):
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    dx = ivar / N * (N * dxhat - xhat * np.sum(dxhat * xhat, axis=0))  # BUG: the - sum(dxhat) (mean) term is gone
    return dx, dgamma, dbeta


def batchnorm_backward_unbiased_var(dout, cache):
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    var_unbiased = np.sum(xmu ** 2, axis=0) / (N - 1)  # BUG: the forward normalised with the biased variance
    ivar = 1.0 / np.sqrt(var_unbiased + eps)
    dx = ivar / N * (N * dxhat - dxhat.sum(axis=0) - xmu * ivar * np.sum(dxhat * xmu * ivar, axis=0))
    return dx, dgamma, dbeta


def batchnorm_backward_dgamma_no_xhat(dout, cache):
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout, axis=0)                # BUG: d(gamma * xhat)/d gamma is xhat, not 1
    dxhat = dout * gamma
    dx = ivar / N * (N * dxhat - dxhat.sum(axis=0) - xhat * np.sum(dxhat * xhat, axis=0))
    return dx, dgamma, dbeta


def batchnorm_backward_square_factor(dout, cache):
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    N, D = dout.shape
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    divar = np.sum(dxhat * xmu, axis=0)
    dxmu1 = dxhat * ivar
    dsqrtvar = -1.0 / (sqrtvar ** 2) * divar
    dvar = 0.5 * 1.0 / np.sqrt(var + eps) * dsqrtvar
    dsq = 1.0 / N * np.ones((N, D)) * dvar
    dxmu2 = xmu * dsq                            # BUG: d(xmu**2) = 2 * xmu, the 2 dropped
    dx1 = dxmu1 + dxmu2
    dmu = -1 * np.sum(dxmu1 + dxmu2, axis=0)
    dx2 = 1.0 / N * np.ones((N, D)) * dmu
    dx = dx1 + dx2
    return dx, dgamma, dbeta


def layernorm_backward_transposed_reshape(dout, cache):
    """Cache of variants.layernorm_forward_transposed."""
    xhat_t, gamma, ivar = cache
    D, N = xhat_t.shape
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xhat_t.T, axis=0)
    dxhat_t = dout.reshape(D, N) * gamma[:, None]  # BUG: reshape is not a transpose (equal only for a constant dout)
    dx_t = ivar / D * (D * dxhat_t - dxhat_t.sum(axis=0) - xhat_t * np.sum(dxhat_t * xhat_t, axis=0))
    return dx_t.T, dgamma, dbeta


def layernorm_backward_batch_axis(dout, cache):
    """Cache of layers_vectorised.layernorm_forward."""
    xhat, gamma, ivar = cache
    D = dout.shape[1]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    dx = ivar / D * (D * dxhat - dxhat.sum(axis=0)   # BUG: batchnorm's axis 0 kept; layer norm sums over axis 1
                     - xhat * np.sum(dxhat * xhat, axis=0))
    return dx, dgamma, dbeta


def layernorm_backward_loops_first_row(dout, cache):
    """Cache of layers_loops.layernorm_forward_loops."""
    xhat, gamma, inv_std = cache
    N, D = dout.shape
    dx = np.zeros_like(dout)
    dgamma = np.zeros_like(gamma)
    dbeta = np.zeros_like(gamma)
    for n in range(N):
        dbeta += dout[n]
        dgamma += dout[n] * xhat[0]              # BUG: xhat[0] where xhat[n] was meant
        g = dout[n] * gamma
        dx[n] = inv_std[n] * (g - np.mean(g) - xhat[n] * np.mean(g * xhat[n]))
    return dx, dgamma, dbeta


def layernorm_backward_scales_dout(dout, cache):
    """Cache of layers_vectorised.layernorm_forward."""
    xhat, gamma, ivar = cache
    D = dout.shape[1]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dout *= gamma                                # BUG (side effect): the caller's dout scaled in place
    dx = ivar / D * (D * dout - dout.sum(axis=1, keepdims=True) - xhat * np.sum(dout * xhat, axis=1, keepdims=True))
    return dx, dgamma, dbeta
