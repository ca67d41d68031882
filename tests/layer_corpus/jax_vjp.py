"""jax.custom_vjp functions with hand-written rules: two right, two wrong.

`affine(x, w, b)` with x (N, D), w (D, M), b (M,); `tanh(x)`. jax is imported at module level: only tests that
need jax import this file.
"""

import jax
import jax.numpy as jnp


@jax.custom_vjp
def affine(x, w, b):
    return x @ w + b


def _affine_fwd(x, w, b):
    return x @ w + b, (x, w)


def _affine_bwd(res, g):
    x, w = res
    return g @ w.T, x.T @ g, g.sum(axis=0)


affine.defvjp(_affine_fwd, _affine_bwd)


@jax.custom_vjp
def affine_dw_mean(x, w, b):
    return x @ w + b


def _affine_dw_mean_bwd(res, g):
    x, w = res
    return g @ w.T, x.T @ g / x.shape[0], g.sum(axis=0)  # BUG: dw averaged over the batch


affine_dw_mean.defvjp(_affine_fwd, _affine_dw_mean_bwd)


@jax.custom_vjp
def tanh(x):
    return jnp.tanh(x)


def _tanh_fwd(x):
    y = jnp.tanh(x)
    return y, y


def _tanh_bwd(y, g):
    return (g * (1 - y ** 2),)


tanh.defvjp(_tanh_fwd, _tanh_bwd)


@jax.custom_vjp
def tanh_ignores_g(x):
    return jnp.tanh(x)


def _tanh_ignores_g_bwd(y, g):
    return (1 - y ** 2,)  # BUG: the cotangent g never used


tanh_ignores_g.defvjp(_tanh_fwd, _tanh_ignores_g_bwd)
