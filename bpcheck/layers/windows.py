"""What conv2d, maxpool2d and avgpool2d share: their config checks and the windows they slide over an image.

A window layer reads, for each output pixel (h, w), the kh x kw patch of its input whose top-left corner is at
(h * sh, w * sw). `windows` hands those patches out as a strided view (no copy); `add_windows` is the way back:
it adds each patch's gradient onto the input positions the patch was read from, so positions read by several
overlapping windows collect every contribution. Only the engine's forward and backward use this module: the
layers' `reference` forwards slide their windows another way (sliding_window_view), so a bug here is not shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..spec import SpecError
from .registry import check_keys

Pair = tuple[int, int]


def check_int(kind: str, name: str, value: Any, low: int) -> int:
    """An integer setting >= low (out_channels, and each entry of a pair)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise SpecError(f"{kind}: {name} {value!r} is not an integer >= {low}: give one, e.g. {name} {max(low, 1)}")
    return int(value)


def check_pair(kind: str, name: str, value: Any, low: int) -> int | list[int]:
    """An int or [rows, cols] setting, each >= low, in its JSON form (what the config keeps)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise SpecError(f"{kind}: {name} {list(value)!r} does not have 2 entries: give an int or [rows, cols]")
        return [check_int(kind, name, v, low) for v in value]
    return check_int(kind, name, value, low)


def pair(value: int | list[int]) -> Pair:
    """(rows, cols) of a checked int-or-pair setting."""
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def image_shape(kind: str, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(in_shape) != 3:
        raise SpecError(f"{kind}: needs an image input (C, H, W) per sample, got shape {tuple(in_shape)}: "
                        f"put it where the input is an image (before any flatten or dense layer)")
    c, h, w = (int(n) for n in in_shape)
    return c, h, w


def out_size(kind: str, size: Pair, kernel: Pair, stride: Pair, padding: Pair = (0, 0)) -> Pair:
    """Output rows and cols, torch's floor((size + 2 pad - kernel) / stride) + 1; a kernel that does not fit is a SpecError."""
    out = []
    for axis, n, k, s, p in zip(("height", "width"), size, kernel, stride, padding):
        if k > n + 2 * p:
            pad = f" padded by {p} on each side to {n + 2 * p}" if p else ""
            raise SpecError(f"{kind}: kernel {k} is larger than the input {axis} {n}{pad}: "
                            f"use a kernel of at most {n + 2 * p}" + ("" if p else " or add padding"))
        out.append((n + 2 * p - k) // s + 1)
    return out[0], out[1]


def windows(x: np.ndarray, kernel: Pair, stride: Pair) -> np.ndarray:
    """The (N, C, OH, OW, kh, kw) view of x (N, C, H, W): [n, c, h, w] is the patch under output pixel (h, w)."""
    (kh, kw), (sh, sw) = kernel, stride
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    s0, s1, s2, s3 = x.strides
    return np.lib.stride_tricks.as_strided(x, (n, c, oh, ow, kh, kw), (s0, s1, s2 * sh, s3 * sw, s2, s3), writeable=False)


def add_windows(dpatches: np.ndarray, shape: tuple[int, ...], stride: Pair) -> np.ndarray:
    """The input gradient (shape) from each patch's gradient dpatches (N, C, OH, OW, kh, kw).

    Kernel tap (i, j) of output pixel (h, w) read input (h * sh + i, w * sw + j), so it adds its gradient there:
    one strided slice per tap, a loop of kh * kw steps (never over the batch or the pixels). `+=` on a slice
    accumulates where windows overlap (stride < kernel), as the chain rule's sum over every reader requires.
    """
    _, _, oh, ow, kh, kw = dpatches.shape
    sh, sw = stride
    dx = np.zeros(shape, dtype=dpatches.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += dpatches[:, :, :, :, i, j]
    return dx


def draw_pair(rng: np.random.Generator, square: bool, highs: Pair, low: int = 1) -> int | list[int]:
    """A random int-or-[rows, cols] setting in low..highs (per axis): one int when square, else a pair (an int
    when both draws agree), so drawn configs cover both JSON forms."""
    if square:
        return int(rng.integers(low, min(highs) + 1))
    rows, cols = (int(rng.integers(low, high + 1)) for high in highs)
    return rows if rows == cols else [rows, cols]


def overwrite_windows(dpatches: np.ndarray, shape: tuple[int, ...], stride: Pair) -> np.ndarray:
    """add_windows written the way a bug writes it: each output pixel's window gradient is ASSIGNED to its input
    window (a loop over the pixels, as hand-written pools do), so where windows overlap the later one wins."""
    _, _, oh, ow, kh, kw = dpatches.shape
    sh, sw = stride
    dx = np.zeros(shape, dtype=dpatches.dtype)
    for h in range(oh):
        for w in range(ow):
            dx[:, :, h * sh:h * sh + kh, w * sw:w * sw + kw] = dpatches[:, :, h, w]
    return dx


# --- what the two pools share: config {"kernel", "stride" (default: the kernel)}, no params -------------------

def check_pool_config(kind: str, config: Mapping[str, Any], in_shape: tuple[int, ...]) -> dict[str, Any]:
    check_keys(kind, config, ("kernel", "stride"), required=("kernel",))
    kernel = check_pair(kind, "kernel", config["kernel"], 1)
    checked = {"kernel": kernel, "stride": check_pair(kind, "stride", config.get("stride", kernel), 1)}
    pool_out_shape(kind, checked, in_shape)  # a kernel larger than the input is a SpecError
    return checked


def pool_out_shape(kind: str, config: Mapping[str, Any], in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    c, h, w = image_shape(kind, in_shape)
    return (c, *out_size(kind, (h, w), pair(config["kernel"]), pair(config["stride"])))


def draw_pool_config(kind: str, rng: np.random.Generator, in_shape: tuple[int, ...]) -> dict[str, Any] | None:
    """Kernels up to 3 that fit the input; the stride left to its default (the kernel) half the time, else 1..3
    (stride < kernel: overlapping windows)."""
    if len(in_shape) != 3:
        return None
    square = rng.random() < 0.6
    config = {"kernel": draw_pair(rng, square, (min(in_shape[1], 3), min(in_shape[2], 3)))}
    if rng.random() < 0.5:
        config["stride"] = draw_pair(rng, square, (3, 3))
    return check_pool_config(kind, config, in_shape)


def overlaps(config: Mapping[str, Any], in_shape: tuple[int, ...]) -> bool:
    """Some input pixel lies in two windows: stride < kernel along an axis with two or more windows on it."""
    out = out_size("pool", tuple(in_shape[1:]), pair(config["kernel"]), pair(config["stride"]),
                   pair(config.get("padding", 0)))
    return any(s < k and o > 1 for s, k, o in zip(pair(config["stride"]), pair(config["kernel"]), out))


def no_params(config: Mapping[str, Any], in_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    return {}


def init_nothing(config: Mapping[str, Any], in_shape: tuple[int, ...], rng: np.random.Generator, dtype: Any) -> dict:
    return {}
