"""maxpool2d: the largest value of each kh x kw window, NCHW, no padding, as torch's max_pool2d computes it.

Config: {"kernel": k or [kh, kw], "stride": s or [sh, sw] (default: the kernel, windows side by side)}; no params.

    y[n, c, h, w] = max over i, j of x[n, c, h*sh + i, w*sw + j]

Only the window's maximum reaches the output, so only it gets a gradient: dy[n, c, h, w] goes to the one input the
max came from, and nothing to the others (moving them a little does not change y). An input that is the maximum
of several overlapping windows (stride < kernel) collects the gradient of each.

Ties, the declared convention: when several entries of a window are equal maxima, the gradient goes to exactly one
of them, the FIRST in row-major window order (smallest i, then smallest j). That is torch's rule on CPU (its kernel
scans the window row by row and replaces the maximum only on a strictly larger value), measured, not assumed:
tests/test_layers_cnn.py::test_maxpool2d_ties_follow_torch plants ties and compares with torch autograd. jax's
reduce_window max (what `jax` below uses) gives its gradient to the same entry, measured the same way (the same
test checks jax.vjp on planted ties). Another valid choice (any other tied maximum) is a CONVENTION, not a bug;
sending the gradient to every tied maximum is a bug (`every_tie` below).
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

KIND = "maxpool2d"


def check_config(config: Mapping[str, Any], in_shape: Shape) -> Config:
    return check_pool_config(KIND, config, in_shape)


def out_shape(config: Config, in_shape: Shape) -> Shape:
    return pool_out_shape(KIND, config, in_shape)


def forward(config: Config, params: Params, x: np.ndarray) -> tuple[np.ndarray, Any]:
    patches = windows(x, pair(config["kernel"]), pair(config["stride"]))  # (N, C, OH, OW, kh, kw)
    flat = patches.reshape(*patches.shape[:4], -1)  # each window as one row, in row-major window order
    first_max = flat.argmax(axis=-1)  # numpy's argmax returns the first maximum: torch's tie rule
    y = np.take_along_axis(flat, first_max[..., None], axis=-1)[..., 0]
    return y, (x.shape, flat, first_max)


def _backward_to(chosen: np.ndarray, config: Config, cache: Any, dy: np.ndarray) -> np.ndarray:
    """dx when each window's gradient dy goes to the entries `chosen` marks (N, C, OH, OW, kh*kw), added back."""
    x_shape, flat, _ = cache
    kh, kw = pair(config["kernel"])
    dpatches = (chosen * dy[..., None]).reshape(*flat.shape[:4], kh, kw)
    return add_windows(dpatches, x_shape, pair(config["stride"]))


def backward(config: Config, params: Params, cache: Any, dy: np.ndarray) -> tuple[np.ndarray, Params]:
    _, flat, first_max = cache
    chosen = np.arange(flat.shape[-1]) == first_max[..., None]  # one-hot: the window's (first) maximum
    return _backward_to(chosen, config, cache, dy), {}


def _sliding(config: Config, x: np.ndarray) -> np.ndarray:
    """(..., OH, OW, kh, kw) windows over the last two axes of x, by numpy's sliding_window_view (any leading axes)."""
    (kh, kw), (sh, sw) = pair(config["kernel"]), pair(config["stride"])
    return np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(-2, -1))[..., ::sh, ::sw, :, :]


def reference(config: Config, params: Params, x: np.ndarray) -> np.ndarray:
    """The max over each window of sliding_window_view; x may carry a leading axis of K copies."""
    return _sliding(config, x).max(axis=(-2, -1))


def pattern(config: Config, params: Params, x: np.ndarray) -> np.ndarray:
    """Which entry of each window is the maximum (row-major index, the first one on a tie): a change is a kink."""
    win = _sliding(config, x)
    return win.reshape(*win.shape[:-2], -1).argmax(axis=-1)


def torch_form(config: Config, params: Any, x: Any, torch: Any) -> Any:
    return torch.nn.functional.max_pool2d(x, pair(config["kernel"]), pair(config["stride"]))


def jax_form(config: Config, params: Any, x: Any, jax: Any) -> Any:
    (kh, kw), (sh, sw) = pair(config["kernel"]), pair(config["stride"])
    # A plain -inf (not an array) lets jax see the (max, -inf) monoid and use its differentiable max-pool primitive.
    return jax.lax.reduce_window(x, -np.inf, jax.lax.max, (1, 1, kh, kw), (1, 1, sh, sw), "VALID")


def draw_config(rng: np.random.Generator, in_shape: Shape) -> Config | None:
    return draw_pool_config(KIND, rng, in_shape)


# --- the bug shapes ---

def _every_tie(config, params, cache, dy):
    _, flat, _ = cache
    return _backward_to(flat == flat.max(axis=-1, keepdims=True), config, cache, dy), {}


def _first_element(config, params, cache, dy):
    _, flat, _ = cache
    return _backward_to(np.arange(flat.shape[-1]) == 0, config, cache, dy), {}


def _overwrite(config, params, cache, dy):
    x_shape, flat, first_max = cache
    kh, kw = pair(config["kernel"])
    chosen = np.arange(flat.shape[-1]) == first_max[..., None]
    dpatches = (chosen * dy[..., None]).reshape(*flat.shape[:4], kh, kw)
    return overwrite_windows(dpatches, x_shape, pair(config["stride"])), {}


def _window_larger_than_one(config: Config, in_shape: Shape) -> bool:
    return pair(config["kernel"]) != (1, 1)


BUG_SHAPES = (
    BugShape("every_tie",
             "maxpool2d's backward sends a window's gradient to every tied maximum, so a tie counts it several times: "
             "it must go to exactly one of them (torch's rule: the first in row-major order)",
             _every_tie, _window_larger_than_one),
    BugShape("first_element",
             "maxpool2d's backward sends each window's gradient to the window's first (top-left) element instead of to "
             "the element that was the maximum",
             _first_element, _window_larger_than_one),
    BugShape("overwrite",
             "maxpool2d's backward writes each window's gradient over the one before instead of adding to it, so where "
             "windows overlap (stride smaller than the kernel) earlier windows' gradients are lost",
             _overwrite, overlaps),
)

MAXPOOL2D = register(Layer(KIND, check_config, no_params, out_shape, init_nothing, forward, backward, torch_form, jax_form,
                           draw_config, reference, pattern=pattern, bug_shapes=BUG_SHAPES))
