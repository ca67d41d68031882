"""Batch normalisation in training mode: batch statistics, biased variance, as torch's F.batch_norm(training=True).

Input (N, D): statistics per feature over the batch; input (N, C, H, W): per channel over N, H and W.
Forward: mu = mean(x), var = mean((x - mu)^2) (biased), xhat = (x - mu) / sqrt(var + eps),
y = gamma xhat + beta, with gamma, beta of shape (D,) or (C,). Backward, with m the values per statistic and
dxhat = gamma dy: dx = (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) / sqrt(var + eps), dgamma = sum(dy xhat),
dbeta = sum(dy). The two mean terms are what var and mu owe x; layernorm (bpcheck.layers.layernorm) shares the
formula over the other axes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from ..spec import SpecError
from .base import Array, BugShape, Config, Layer, Params, Shape
from .registry import check_keys, register

DEFAULT_EPS = 1e-5
DRAWN_EPS = (1e-5, 1e-5, 1e-3, 0.1)


class Cache(NamedTuple):
    xhat: Array
    inv: Array  # 1 / sqrt(var + eps), shaped to broadcast against x
    axes: tuple[int, ...]  # the axes each statistic runs over


def check_eps(kind: str, config: Mapping[str, Any], in_shape: Shape, extra: tuple[str, ...] = ()) -> float:
    """The eps of a norm layer's config (default 1e-5), for a (D,) or (C, H, W) input; a SpecError otherwise."""
    check_keys(kind, config, ("eps", *extra))
    if len(in_shape) not in (1, 3):
        raise SpecError(f"{kind}: input of per-sample shape {tuple(in_shape)} is neither (D,) nor (C, H, W): "
                        f"give it a flat or an image input")
    eps = config.get("eps", DEFAULT_EPS)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < float("inf"):
        raise SpecError(f"{kind}: eps={eps!r} is not a finite number > 0: give e.g. {{'eps': 1e-5}}")
    return float(eps)


def sample_rank(x: Array) -> tuple[int, int]:
    """(lead, rank): whether x has a leading axis of K copies (1 or 0) and the rank of one sample.

    A sample is (D,) or (C, H, W) in every stack (check_eps enforces it), so x is 2-D or 4-D, or 3-D or 5-D
    with the copies' axis in front: the parity of x.ndim tells which.
    """
    lead = x.ndim % 2
    return lead, x.ndim - lead - 1


def normalize(x: Array, axes: tuple[int, ...], eps: float) -> tuple[Array, Array]:
    """(xhat, inv) with the statistics over axes, the variance biased."""
    mu = x.mean(axis=axes, keepdims=True)
    xc = x - mu
    inv = 1.0 / np.sqrt((xc * xc).mean(axis=axes, keepdims=True) + eps)
    return xc * inv, inv


def normalize_backward(dxhat: Array, cache: Cache) -> Array:
    """dL/dx from dL/dxhat: the full formula, both mean terms."""
    axes, xhat = cache.axes, cache.xhat
    return cache.inv * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                        - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))


def _axes(x: Array) -> tuple[int, ...]:
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _per_channel(v: Array, x: Array) -> Array:
    """gamma or beta (C,) shaped to broadcast against x: (C,) for (N, D), (C, 1, 1) for (N, C, H, W)."""
    return v if x.ndim == 2 else v[:, None, None]


def check_config(config: Mapping[str, Any], in_shape: Shape) -> Config:
    return {"eps": check_eps("batchnorm", config, in_shape)}


def param_shapes(config: Config, in_shape: Shape) -> dict[str, Shape]:
    return {"gamma": (in_shape[0],), "beta": (in_shape[0],)}


def init(config: Config, in_shape: Shape, rng: np.random.Generator, dtype: Any) -> Params:
    """gamma = 1, beta = 0, as torch initialises them."""
    return {"gamma": np.ones(in_shape[0], dtype=dtype), "beta": np.zeros(in_shape[0], dtype=dtype)}


def forward(config: Config, params: Params, x: Array) -> tuple[Array, Cache]:
    axes = _axes(x)
    xhat, inv = normalize(x, axes, config["eps"])
    return _per_channel(params["gamma"], x) * xhat + _per_channel(params["beta"], x), Cache(xhat, inv, axes)


def backward(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    dx = normalize_backward(_per_channel(params["gamma"], dy) * dy, cache)
    return dx, {"gamma": (dy * cache.xhat).sum(axis=cache.axes), "beta": dy.sum(axis=cache.axes)}


def reference(config: Config, params: Params, x: Array) -> Array:
    """By np.var and a division, over an optional leading axis of K copies (x (K, N, ...), gamma (K, C))."""
    lead, rank = sample_rank(x)
    axes = (lead,) + tuple(range(lead + 2, lead + 1 + rank))
    xhat = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(np.var(x, axis=axes, keepdims=True) + config["eps"])

    def shaped(v: Array) -> Array:  # (..., C) -> (..., 1, C, 1, 1) or (..., 1, C)
        return v.reshape(v.shape[:-1] + (1, v.shape[-1]) + (1,) * (rank - 1))

    return shaped(params["gamma"]) * xhat + shaped(params["beta"])


def torch_form(config: Config, params: Params, x: Any, torch: Any) -> Any:
    if x.numel() // x.shape[1] > 1:
        return torch.nn.functional.batch_norm(x, None, None, params["gamma"], params["beta"], training=True,
                                              eps=config["eps"])
    # torch refuses one value per channel in training mode; the formula still holds: xhat = 0, y = beta
    dims = list(_axes(x))
    var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
    return _per_channel(params["gamma"], x) * (x - mean) / torch.sqrt(var + config["eps"]) + _per_channel(params["beta"], x)


def jax_form(config: Config, params: Params, x: Any, jax: Any) -> Any:
    jnp, axes = jax.numpy, _axes(x)
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.var(x, axis=axes, keepdims=True)
    return _per_channel(params["gamma"], x) * (x - mean) / jnp.sqrt(var + config["eps"]) + _per_channel(params["beta"], x)


def draw_config(rng: np.random.Generator, in_shape: Shape) -> Config | None:
    if len(in_shape) not in (1, 3):
        return None
    return {"eps": DRAWN_EPS[int(rng.integers(len(DRAWN_EPS)))]}


# --- the backwards people write by mistake ------------------------------------------------------------------------

def _param_grads(cache: Cache, dy: Array) -> Params:
    return {"gamma": (dy * cache.xhat).sum(axis=cache.axes), "beta": dy.sum(axis=cache.axes)}


def _no_mean_terms(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    return cache.inv * _per_channel(params["gamma"], dy) * dy, _param_grads(cache, dy)


def _no_variance_term(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    dxhat = _per_channel(params["gamma"], dy) * dy
    return cache.inv * (dxhat - dxhat.mean(axis=cache.axes, keepdims=True)), _param_grads(cache, dy)


def _no_mean_term(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    dxhat = _per_channel(params["gamma"], dy) * dy
    term = (dxhat * cache.xhat).mean(axis=cache.axes, keepdims=True)
    return cache.inv * (dxhat - cache.xhat * term), _param_grads(cache, dy)


def _unbiased(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    # d var / dx taken as 2 (x - mu) / (m - 1): the variance term's mean over m - 1 values instead of m.
    # With one value per statistic xhat is 0 and the term vanishes however it is divided.
    m = cache.xhat.size // cache.inv.size
    dxhat = _per_channel(params["gamma"], dy) * dy
    term = (dxhat * cache.xhat).sum(axis=cache.axes, keepdims=True) / max(m - 1, 1)
    return cache.inv * (dxhat - dxhat.mean(axis=cache.axes, keepdims=True) - cache.xhat * term), _param_grads(cache, dy)


def _dgamma_no_xhat(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    dx, grads = backward(config, params, cache, dy)
    return dx, grads | {"gamma": dy.sum(axis=cache.axes)}


BUG_SHAPES = (
    BugShape("no_mean_terms", "dx of batchnorm as gamma dy / sqrt(var + eps): both mean terms dropped (mu and var "
             "treated as constants)", _no_mean_terms),
    BugShape("no_variance_term", "dx of batchnorm without the - xhat mean(dxhat xhat) term (var treated as a constant)",
             _no_variance_term),
    BugShape("no_mean_term", "dx of batchnorm without the - mean(dxhat) term (mu treated as a constant: the path "
             "through the mean dropped)", _no_mean_term),
    BugShape("unbiased_variance", "dx of batchnorm with the variance's derivative over m - 1 values (the unbiased "
             "variance) instead of m", _unbiased),
    BugShape("dgamma_no_xhat", "dgamma of batchnorm as sum(dy), not multiplied by xhat", _dgamma_no_xhat),
)

BATCHNORM = register(Layer(
    kind="batchnorm",
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
    per_sample=False,
    bug_shapes=BUG_SHAPES,
))
