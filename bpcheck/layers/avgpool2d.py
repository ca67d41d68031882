"""avgpool2d: the mean of each kh x kw window, NCHW, no padding, as torch's avg_pool2d computes it.

Config: {"kernel": k or [kh, kw], "stride": s or [sh, sw] (default: the kernel, windows side by side)}; no params.

    y[n, c, h, w] = (1 / (kh kw)) * sum over i, j of x[n, c, h*sh + i, w*sw + j]

Every entry of a window weighs 1 / (kh kw) in its mean, so each gets dy[n, c, h, w] / (kh kw); an input in several
overlapping windows (stride < kernel) adds up the share of each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .base import BugShape, Config, Layer, Params, Shape
from .registry import register
from .windows import (
    add_windows,
    check_pool_config,
    draw_pool_config,
    init_nothing,
    no_params,
    overlaps,
    overwrite_windows,
    pair,
    pool_out_shape,
    windows,
)

KIND = "avgpool2d"


def check_config(config: Mapping[str, Any], in_shape: Shape) -> Config:
    return check_pool_config(KIND, config, in_shape)


def out_shape(config: Config, in_shape: Shape) -> Shape:
    return pool_out_shape(KIND, config, in_shape)


def forward(config: Config, params: Params, x: np.ndarray) -> tuple[np.ndarray, Any]:
    patches = windows(x, pair(config["kernel"]), pair(config["stride"]))  # (N, C, OH, OW, kh, kw)
    return patches.mean(axis=(4, 5)), x.shape


def _shares(config: Config, dy: np.ndarray, size: int) -> np.ndarray:
    """Each window's gradient as (N, C, OH, OW, kh, kw): dy / size on every entry of the window."""
    return np.broadcast_to((dy / size)[..., None, None], (*dy.shape, *pair(config["kernel"])))


def backward(config: Config, params: Params, cache: Any, dy: np.ndarray) -> tuple[np.ndarray, Params]:
    kh, kw = pair(config["kernel"])
    return add_windows(_shares(config, dy, kh * kw), cache, pair(config["stride"])), {}


def reference(config: Config, params: Params, x: np.ndarray) -> np.ndarray:
    """Each window of sliding_window_view summed and divided by its size; x may carry a leading axis of K copies."""
    (kh, kw), (sh, sw) = pair(config["kernel"]), pair(config["stride"])
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(-2, -1))[..., ::sh, ::sw, :, :]
    return win.sum(axis=(-2, -1)) / (kh * kw)


def torch_form(config: Config, params: Any, x: Any, torch: Any) -> Any:
    return torch.nn.functional.avg_pool2d(x, pair(config["kernel"]), pair(config["stride"]))


def jax_form(config: Config, params: Any, x: Any, jax: Any) -> Any:
    (kh, kw), (sh, sw) = pair(config["kernel"]), pair(config["stride"])
    return jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 1, kh, kw), (1, 1, sh, sw), "VALID") / (kh * kw)


def draw_config(rng: np.random.Generator, in_shape: Shape) -> Config | None:
    return draw_pool_config(KIND, rng, in_shape)


# --- the bug shapes ---

def _no_divide(config, params, cache, dy):
    return add_windows(_shares(config, dy, 1), cache, pair(config["stride"])), {}


def _overwrite(config, params, cache, dy):
    kh, kw = pair(config["kernel"])
    return overwrite_windows(_shares(config, dy, kh * kw), cache, pair(config["stride"])), {}


BUG_SHAPES = (
    BugShape("no_divide",
             "avgpool2d's backward forgets the 1 / (kh kw) of the mean: each input gets the window's whole gradient "
             "instead of its share dy / (kh kw)",
             _no_divide, lambda config, in_shape: pair(config["kernel"]) != (1, 1)),
    BugShape("overwrite",
             "avgpool2d's backward writes each window's gradient over the one before instead of adding to it, so where "
             "windows overlap (stride smaller than the kernel) an input keeps only its last window's share",
             _overwrite, overlaps),
)

AVGPOOL2D = register(Layer(KIND, check_config, no_params, out_shape, init_nothing, forward, backward, torch_form, jax_form,
                           draw_config, reference, pattern=None, bug_shapes=BUG_SHAPES))
