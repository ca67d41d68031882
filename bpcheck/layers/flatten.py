"""flatten: each sample's (C, H, W) image as one row of C*H*W features, in row-major (C, then H, then W) order,
as torch.flatten(x, 1) and numpy's reshape lay them out. Config {}; no params.

It only moves numbers, so the backward moves each gradient back to where its number came from: the same reshape,
undone. Getting that order wrong (unflattening as channels-last, or column-major) puts every gradient on another
pixel or channel, silently: the shapes still fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .base import BugShape, Config, Layer, Params, Shape
from .registry import check_keys, register
from .windows import image_shape, init_nothing, no_params

KIND = "flatten"


def check_config(config: Mapping[str, Any], in_shape: Shape) -> Config:
    check_keys(KIND, config, ())
    image_shape(KIND, in_shape)  # flatten takes (C, H, W): on a 1-D input it would do nothing
    return {}


def out_shape(config: Config, in_shape: Shape) -> Shape:
    c, h, w = image_shape(KIND, in_shape)
    return (c * h * w,)


def forward(config: Config, params: Params, x: np.ndarray) -> tuple[np.ndarray, Any]:
    return x.reshape(x.shape[0], -1), x.shape


def backward(config: Config, params: Params, cache: Any, dy: np.ndarray) -> tuple[np.ndarray, Params]:
    return dy.reshape(cache), {}


def reference(config: Config, params: Params, x: np.ndarray) -> np.ndarray:
    """The last three axes (C, H, W) merged, whatever leads them ((N,) or (K, N) with K perturbed copies)."""
    return x.reshape(*x.shape[:-3], x.shape[-3] * x.shape[-2] * x.shape[-1])


def torch_form(config: Config, params: Any, x: Any, torch: Any) -> Any:
    return torch.flatten(x, 1)


def jax_form(config: Config, params: Any, x: Any, jax: Any) -> Any:
    return jax.numpy.reshape(x, (x.shape[0], -1))


def draw_config(rng: np.random.Generator, in_shape: Shape) -> Config | None:
    return {} if len(in_shape) == 3 else None


# --- the bug shapes ---

def _channels_last(config, params, cache, dy):
    n, c, h, w = cache
    return dy.reshape(n, h, w, c).transpose(0, 3, 1, 2), {}


def _column_major(config, params, cache, dy):
    n, c, h, w = cache
    return dy.reshape(n, w, h, c).transpose(0, 3, 2, 1), {}  # sample by sample: (C, H, W) filled C fastest


BUG_SHAPES = (
    BugShape("channels_last",
             "flatten's backward unflattens dy as if the features were stored channels last (H, W, C) and then moves "
             "the channels first, so gradients land on other pixels and channels than the forward read them from",
             _channels_last, lambda config, in_shape: in_shape[0] > 1 and in_shape[1] * in_shape[2] > 1),
    BugShape("column_major",
             "flatten's backward unflattens dy in column-major (Fortran) order while the forward flattened in row-major "
             "order, so each gradient lands on another position of the (C, H, W) image",
             _column_major, lambda config, in_shape: sum(n > 1 for n in in_shape) >= 2),
)

FLATTEN = register(Layer(KIND, check_config, no_params, out_shape, init_nothing, forward, backward, torch_form, jax_form,
                         draw_config, reference, pattern=None, bug_shapes=BUG_SHAPES))
