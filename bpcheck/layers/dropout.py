"""Inverted dropout with a fixed mask: y = x mask / (1 - p), dx = dy mask / (1 - p).

The mask is a pure function of (seed, x.shape): np.random.default_rng(seed).random(x.shape) >= p, the same in
the engine, the reference and the torch and jax forms (computed here with numpy and handed to the framework as
a constant), so every producer differentiates the same function. x.shape includes the batch, so a row taken
alone gets another mask: per_sample is False.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..spec import SpecError
from .base import Array, BugShape, Config, Layer, Params, Shape
from .batchnorm import sample_rank
from .registry import check_keys, register

DRAWN_P = (0.0, 0.1, 0.25, 0.5, 0.8)


def mask(config: Config, shape: tuple[int, ...]) -> Array:
    """The kept entries (bool) for an input of this shape, batch axis included."""
    return np.random.default_rng(config["seed"]).random(shape) >= config["p"]


def scaled_mask(config: Config, shape: tuple[int, ...], dtype: Any) -> Array:
    return (mask(config, shape) * (1.0 / (1.0 - config["p"]))).astype(dtype)


def check_config(config: Mapping[str, Any], in_shape: Shape) -> Config:
    check_keys("dropout", config, ("p", "seed"))
    if len(in_shape) not in (1, 3):
        raise SpecError(f"dropout: input of per-sample shape {tuple(in_shape)} is neither (D,) nor (C, H, W): "
                        f"give it a flat or an image input")
    p, seed = config.get("p"), config.get("seed", 0)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise SpecError(f"dropout: p={p!r} is not a drop probability in [0, 1): give e.g. {{'p': 0.5, 'seed': 0}}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpecError(f"dropout: seed={seed!r} is not an int >= 0: give e.g. {{'p': 0.5, 'seed': 0}}")
    return {"p": float(p), "seed": int(seed)}


def forward(config: Config, params: Params, x: Array) -> tuple[Array, Array]:
    m = scaled_mask(config, x.shape, x.dtype)
    return x * m, m


def backward(config: Config, params: Params, cache: Array, dy: Array) -> tuple[Array, Params]:
    return dy * cache, {}


def reference(config: Config, params: Params, x: Array) -> Array:
    """Kept entries divided by 1 - p, the rest 0; each of K leading copies gets the one mask of its shape."""
    lead, _ = sample_rank(x)
    return np.where(mask(config, x.shape[lead:]), x / (1.0 - config["p"]), 0.0)


def torch_form(config: Config, params: Params, x: Any, torch: Any) -> Any:
    return x * torch.tensor(scaled_mask(config, tuple(x.shape), np.float64), dtype=x.dtype)


def jax_form(config: Config, params: Params, x: Any, jax: Any) -> Any:
    return x * jax.numpy.asarray(scaled_mask(config, tuple(x.shape), np.float64), dtype=x.dtype)


def draw_config(rng: np.random.Generator, in_shape: Shape) -> Config | None:
    if len(in_shape) not in (1, 3):
        return None
    return {"p": DRAWN_P[int(rng.integers(len(DRAWN_P)))], "seed": int(rng.integers(2**31))}


def _p_positive(config: Config, in_shape: Shape) -> bool:
    return config["p"] > 0


BUG_SHAPES = (
    BugShape("no_rescale", "dx of dropout as dy mask, the 1 / (1 - p) of inverted dropout missing",
             lambda config, params, cache, dy: (dy * (cache != 0), {}), _p_positive),
    BugShape("mask_not_applied", "dx of dropout as dy / (1 - p), the mask not applied in the backward",
             lambda config, params, cache, dy: (dy / (1.0 - config["p"]), {}), _p_positive),
)

DROPOUT = register(Layer(
    kind="dropout",
    check_config=check_config,
    param_shapes=lambda config, in_shape: {},
    out_shape=lambda config, in_shape: tuple(in_shape),
    init=lambda config, in_shape, rng, dtype: {},
    forward=forward,
    backward=backward,
    torch=torch_form,
    jax=jax_form,
    draw_config=draw_config,
    reference=reference,
    per_sample=False,
    bug_shapes=BUG_SHAPES,
))
