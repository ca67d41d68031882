"""The dense layer, affine and activation fused, as the seed essay writes it (and engine.py did for the MLP).

Forward: z = x @ W + b, a = act(z), caching (x, z, a). Backward from dL/da: dz = act'(z) * da (ops.rule's
backward), dW = x^T dz, db = sum over the batch of dz, dx = dz W^T. x is (N, n_in), W (n_in, n), b (n,).
The same operations in the same order as the MLP engine, so its numbers stay the same bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from .. import ops
from ..spec import ACTIVATIONS, SpecError
from .activation import (
    activation_name,
    activation_pattern,
    jax_activation,
    reference_activation,
    torch_activation,
    wrong_derivative_shapes,
)
from .base import Array, BugShape, Config, Layer, Params, Shape
from .registry import check_keys, register

MAX_DRAWN_WIDTH = 6


class Cache(NamedTuple):
    """Exactly what the backward reads: the layer's input, its pre-activation and its output."""

    x: Array
    z: Array
    a: Array


def check_config(config: Mapping[str, Any], in_shape: Shape) -> Config:
    check_keys("dense", config, ("n", "activation"))
    if len(in_shape) != 1:
        raise SpecError(f"dense: input of per-sample shape {tuple(in_shape)} is not 1-D: put a flatten before it")
    n = config.get("n")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise SpecError(f"dense: n={n!r} is not a positive int: give the layer's width, like {{'n': 8}}")
    return {"n": int(n), "activation": activation_name(config.get("activation", "identity"), "dense")}


def param_shapes(config: Config, in_shape: Shape) -> dict[str, Shape]:
    return {"W": (in_shape[0], config["n"]), "b": (config["n"],)}


def init(config: Config, in_shape: Shape, rng: np.random.Generator, dtype: Any) -> Params:
    """Xavier normal W, std sqrt(2 / (fan_in + fan_out)), and b = 0: what spec.init_params draws, in its order."""
    shapes = param_shapes(config, in_shape)
    fan_in, fan_out = shapes["W"]
    std = math.sqrt(2.0 / (fan_in + fan_out))
    return {"W": (rng.standard_normal(shapes["W"]) * std).astype(dtype), "b": np.zeros(shapes["b"], dtype=dtype)}


def forward(config: Config, params: Params, x: Array) -> tuple[Array, Cache]:
    z = x @ params["W"] + params["b"]
    a = ops.rule(config["activation"]).forward(z)
    return a, Cache(x, z, a)


def backward_with(params: Params, cache: Cache, dz: Array) -> tuple[Array, Params]:
    """The affine part of the backward, from dL/dz: (dx, {W: dW, b: db})."""
    return dz @ params["W"].T, {"W": cache.x.T @ dz, "b": dz.sum(axis=0)}


def backward(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    dz = ops.rule(config["activation"]).backward(cache.z, cache.a, dy)
    return backward_with(params, cache, dz)


def reference(config: Config, params: Params, x: Array) -> Array:
    """The forward by einsum over an optional leading axis of K copies: x (K, N, n_in), W (K, n_in, n), b (K, n)."""
    z = np.einsum("...ni,...io->...no", x, params["W"]) + params["b"][..., None, :]
    return reference_activation(config["activation"], z)


def pattern(config: Config, params: Params, x: Array) -> Array | None:
    if not ops.rule(config["activation"]).kink:
        return None
    return activation_pattern(config["activation"], np.matmul(x, params["W"]) + params["b"][..., None, :])


def draw_config(rng: np.random.Generator, in_shape: Shape) -> Config | None:
    if len(in_shape) != 1:
        return None
    act = str(ACTIVATIONS[int(rng.integers(len(ACTIVATIONS)))])
    if act == "leaky_relu" and rng.random() < 0.5:
        act = "leaky_relu:0.2"
    return {"n": int(rng.integers(1, MAX_DRAWN_WIDTH + 1)), "activation": act}


def _square(config: Config, in_shape: Shape) -> bool:
    return in_shape[0] == config["n"]


def _dz(config: Config, cache: Cache, dy: Array) -> Array:
    return ops.rule(config["activation"]).backward(cache.z, cache.a, dy)


def _dw_transposed(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    dz = _dz(config, cache, dy)
    return dz @ params["W"].T, {"W": dz.T @ cache.x, "b": dz.sum(axis=0)}


def _db_mean(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    dz = _dz(config, cache, dy)
    return dz @ params["W"].T, {"W": cache.x.T @ dz, "b": dz.mean(axis=0)}


def _dx_uses_w(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    dz = _dz(config, cache, dy)
    return dz @ params["W"], {"W": cache.x.T @ dz, "b": dz.sum(axis=0)}


def _derivative_dropped(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    return backward_with(params, cache, dy)


BUG_SHAPES = (
    BugShape("dW_transposed", "dW of dense as dz^T x, the transpose of x^T dz (same shape only where n_in = n)",
             _dw_transposed, _square),
    BugShape("db_mean", "db of dense as the batch mean of dz instead of its sum (right only for batch 1)", _db_mean),
    BugShape("dx_uses_W", "dx of dense as dz W instead of dz W^T (same shape only where n_in = n)", _dx_uses_w, _square),
    BugShape("derivative_dropped", "dense passes dL/da through as dL/dz, the activation's derivative dropped",
             _derivative_dropped, lambda config, in_shape: config["activation"] != "identity"),
    *wrong_derivative_shapes("activation", "dense", backward_with),
)

DENSE = register(Layer(
    kind="dense",
    check_config=check_config,
    param_shapes=param_shapes,
    out_shape=lambda config, in_shape: (config["n"],),
    init=init,
    forward=forward,
    backward=backward,
    torch=lambda config, params, x, torch: torch_activation(config["activation"], x @ params["W"] + params["b"], torch),
    jax=lambda config, params, x, jax: jax_activation(config["activation"], x @ params["W"] + params["b"], jax),
    draw_config=draw_config,
    reference=reference,
    pattern=pattern,
    bug_shapes=BUG_SHAPES,
))
