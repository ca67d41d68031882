"""Layer normalisation: each sample normalised over all its own dims, as torch's F.layer_norm(x, x.shape[1:]).

Forward per sample: xhat = (x - mean) / sqrt(var + eps) (biased variance over the sample's dims), then
y = gamma xhat + beta, gamma and beta of the per-sample shape. Backward: batchnorm's formula with the means
over each sample's dims instead of the batch (bpcheck.layers.batchnorm.normalize_backward); dgamma and dbeta
sum over the batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .base import Array, BugShape, Config, Layer, Params, Shape
from .batchnorm import DRAWN_EPS, Cache, check_eps, normalize, normalize_backward, sample_rank
from .registry import register


def _axes(x: Array) -> tuple[int, ...]:
    return tuple(range(1, x.ndim))


def check_config(config: Mapping[str, Any], in_shape: Shape) -> Config:
    return {"eps": check_eps("layernorm", config, in_shape)}


def param_shapes(config: Config, in_shape: Shape) -> dict[str, Shape]:
    return {"gamma": tuple(in_shape), "beta": tuple(in_shape)}


def init(config: Config, in_shape: Shape, rng: np.random.Generator, dtype: Any) -> Params:
    """gamma = 1, beta = 0, as torch initialises them."""
    return {"gamma": np.ones(in_shape, dtype=dtype), "beta": np.zeros(in_shape, dtype=dtype)}


def forward(config: Config, params: Params, x: Array) -> tuple[Array, Cache]:
    xhat, inv = normalize(x, _axes(x), config["eps"])
    return params["gamma"] * xhat + params["beta"], Cache(xhat, inv, _axes(x))


def backward(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    return normalize_backward(params["gamma"] * dy, cache), {"gamma": (dy * cache.xhat).sum(axis=0), "beta": dy.sum(axis=0)}


def reference(config: Config, params: Params, x: Array) -> Array:
    """Each sample flattened, by np.var and a division; over an optional leading axis of K copies."""
    lead, rank = sample_rank(x)
    flat = x.reshape(x.shape[: lead + 1] + (-1,))
    xhat = (flat - flat.mean(axis=-1, keepdims=True)) / np.sqrt(flat.var(axis=-1, keepdims=True) + config["eps"])
    gamma, beta = params["gamma"], params["beta"]
    if gamma.ndim > rank:  # the copies' axis: (K, *sample) -> (K, 1, *sample), against x (K, N, *sample)
        gamma, beta = gamma[:, None], beta[:, None]
    return gamma * xhat.reshape(x.shape) + beta


def torch_form(config: Config, params: Params, x: Any, torch: Any) -> Any:
    return torch.nn.functional.layer_norm(x, tuple(x.shape[1:]), params["gamma"], params["beta"], eps=config["eps"])


def jax_form(config: Config, params: Params, x: Any, jax: Any) -> Any:
    jnp, axes = jax.numpy, _axes(x)
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.var(x, axis=axes, keepdims=True)
    return params["gamma"] * (x - mean) / jnp.sqrt(var + config["eps"]) + params["beta"]


def draw_config(rng: np.random.Generator, in_shape: Shape) -> Config | None:
    if len(in_shape) not in (1, 3):
        return None
    return {"eps": DRAWN_EPS[int(rng.integers(len(DRAWN_EPS)))]}


# --- the backwards people write by mistake ------------------------------------------------------------------------

def _param_grads(cache: Cache, dy: Array) -> Params:
    return {"gamma": (dy * cache.xhat).sum(axis=0), "beta": dy.sum(axis=0)}


def _ones_cotangent(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    # mean(dy gamma xhat) written as mean(dy) mean(gamma xhat): equal where dy is constant along the sample
    # (a ones cotangent, loss.sum()), wrong for any other dy.
    axes, xhat = cache.axes, cache.xhat
    dxhat = params["gamma"] * dy
    term = dy.mean(axis=axes, keepdims=True) * (params["gamma"] * xhat).mean(axis=axes, keepdims=True)
    return cache.inv * (dxhat - dxhat.mean(axis=axes, keepdims=True) - xhat * term), _param_grads(cache, dy)


def _batch_axis(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    # batchnorm's backward pasted in: the mean terms over the batch axis instead of each sample's dims.
    return normalize_backward(params["gamma"] * dy, cache._replace(axes=(0,))), _param_grads(cache, dy)


def _no_mean_terms(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    return cache.inv * params["gamma"] * dy, _param_grads(cache, dy)


BUG_SHAPES = (
    BugShape("ones_cotangent", "dx of layernorm right only for a cotangent constant along each sample (a ones dout, "
             "loss.sum()): mean(dy gamma xhat) taken as mean(dy) mean(gamma xhat)", _ones_cotangent),
    BugShape("batch_axis", "dx of layernorm with its mean terms over the batch axis instead of each sample's dims "
             "(batchnorm's formula)", _batch_axis),
    BugShape("no_mean_terms", "dx of layernorm as gamma dy / sqrt(var + eps): both mean terms dropped (mean and var "
             "treated as constants)", _no_mean_terms),
)

LAYERNORM = register(Layer(
    kind="layernorm",
    check_config=check_config,
    param_shapes=param_shapes,
    out_shape=lambda config, in_shape: tuple(in_shape),
    init=init,
    forward=forward,
    backward=backward,
    torch=torch_form,
    jax=jax_form,
    draw_config=draw_config,
    reference=reference,
    bug_shapes=BUG_SHAPES,
))
