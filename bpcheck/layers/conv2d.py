"""conv2d: a 2-D convolution as torch computes it (a cross-correlation), NCHW, weight (F, C, kh, kw), bias (F,).

Config: {"out_channels": F, "kernel": k or [kh, kw], "stride": s or [sh, sw] (default 1), "padding": p or [ph, pw]
(default 0, zeros on every side)}; dilation 1, no groups.

The forward, the way the dense layer's z = w . a + b reads, once per output pixel:

    y[n, f, h, w] = b[f] + sum over c, i, j of  W[f, c, i, j] * xp[n, c, h*sh + i, w*sw + j]

where xp is x with the padding added. Each output pixel is a dense neuron whose inputs are one window of xp, and
every window shares the same weights. So the backward is the dense layer's, summed over the pixels that share them:

    db[f]          = sum over n, h, w of dy[n, f, h, w]                    (every pixel adds b[f] once)
    dW[f, c, i, j] = sum over n, h, w of dy[n, f, h, w] * xp[n, c, h*sh + i, w*sw + j]
    dxp[n, c, h*sh + i, w*sw + j] += sum over f of dy[n, f, h, w] * W[f, c, i, j]   (for every pixel and tap)

and dx is dxp with the padded border dropped (padding is a constant: it has no gradient to pass on).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .base import BugShape, Config, Layer, Params, Shape
from .registry import check_keys, register
from .windows import add_windows, check_int, check_pair, draw_pair, image_shape, out_size, pair, windows

KIND = "conv2d"


def check_config(config: Mapping[str, Any], in_shape: Shape) -> Config:
    check_keys(KIND, config, ("out_channels", "kernel", "stride", "padding"), required=("out_channels", "kernel"))
    checked = {"out_channels": check_int(KIND, "out_channels", config["out_channels"], 1),
               "kernel": check_pair(KIND, "kernel", config["kernel"], 1),
               "stride": check_pair(KIND, "stride", config.get("stride", 1), 1),
               "padding": check_pair(KIND, "padding", config.get("padding", 0), 0)}
    out_shape(checked, in_shape)  # a kernel larger than the padded input is a SpecError
    return checked


def _geometry(config: Config) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    return pair(config["kernel"]), pair(config["stride"]), pair(config["padding"])


def param_shapes(config: Config, in_shape: Shape) -> dict[str, Shape]:
    c = image_shape(KIND, in_shape)[0]
    kh, kw = pair(config["kernel"])
    return {"W": (config["out_channels"], c, kh, kw), "b": (config["out_channels"],)}


def out_shape(config: Config, in_shape: Shape) -> Shape:
    _, h, w = image_shape(KIND, in_shape)
    return (config["out_channels"], *out_size(KIND, (h, w), *_geometry(config)))


def init(config: Config, in_shape: Shape, rng: np.random.Generator, dtype: Any = np.float64) -> Params:
    """He normal W (std sqrt(2 / fan_in), fan_in = C kh kw, the inputs one output pixel reads), zero b."""
    shapes = param_shapes(config, in_shape)
    fan_in = int(np.prod(shapes["W"][1:]))
    return {"W": (rng.standard_normal(shapes["W"]) * np.sqrt(2.0 / fan_in)).astype(dtype),
            "b": np.zeros(shapes["b"], dtype=dtype)}


def _pad(x: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x


def forward(config: Config, params: Params, x: np.ndarray) -> tuple[np.ndarray, Any]:
    kernel, stride, padding = _geometry(config)
    xp = _pad(x, padding)
    patches = windows(xp, kernel, stride)  # (N, C, OH, OW, kh, kw): patches[n, :, h, w] is what pixel (h, w) reads
    n, _, oh, ow = patches.shape[:4]
    # im2col: one row per output pixel, holding the window it reads; then every row times every filter at once.
    cols = patches.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, -1)
    # The filters as a contiguous (C kh kw, F) matrix: with a transposed view instead, OpenBLAS sent this small
    # product to its threaded gemm: one forward+backward took 25 ms instead of 0.44 ms on the loaded 2-core machine
    # (python -m benchmarks.bench_cnn_layers, conv2d 8x8x8).
    filters = np.ascontiguousarray(params["W"].reshape(params["W"].shape[0], -1).T)
    y = (cols @ filters).reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)
    y = np.ascontiguousarray(y) + params["b"][:, None, None]
    return y, (x.shape, xp.shape, patches)


def _patch_grads(params: Params, dy: np.ndarray) -> np.ndarray:
    """dL/d(each window), (N, C, OH, OW, kh, kw): pixel (h, w) sends dy[n, :, h, w] back through every filter."""
    return np.tensordot(dy, params["W"], axes=([1], [0])).transpose(0, 3, 1, 2, 4, 5)


def _crop(dxp: np.ndarray, x_shape: Shape, padding: tuple[int, int]) -> np.ndarray:
    (ph, pw), (h, w) = padding, x_shape[2:]
    return dxp[:, :, ph:ph + h, pw:pw + w]


def backward(config: Config, params: Params, cache: Any, dy: np.ndarray) -> tuple[np.ndarray, Params]:
    x_shape, xp_shape, patches = cache
    _, stride, padding = _geometry(config)
    db = dy.sum(axis=(0, 2, 3))
    dW = np.tensordot(dy, patches, axes=([0, 2, 3], [0, 2, 3]))  # (F, C, kh, kw)
    dxp = add_windows(_patch_grads(params, dy), xp_shape, stride)
    return _crop(dxp, x_shape, padding), {"W": dW, "b": db}


def reference(config: Config, params: Params, x: np.ndarray) -> np.ndarray:
    """The definition read literally: each output pixel's window (numpy's sliding_window_view) contracted with the
    filters by einsum. x may be (K, N, C, H, W) and each param may carry a leading K axis of perturbed copies."""
    (kh, kw), (sh, sw), (ph, pw) = (pair(config[k]) for k in ("kernel", "stride", "padding"))
    w_, b_ = params["W"], params["b"]
    copies = x.ndim == 5 or w_.ndim == 5 or b_.ndim == 2
    x5 = x if x.ndim == 5 else x[None]
    xp = np.pad(x5, ((0, 0), (0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(3, 4))[:, :, :, ::sh, ::sw]
    w5 = w_ if w_.ndim == 5 else w_[None]
    y = np.einsum("...nchwij,...fcij->...nfhw", win, w5, optimize=True)
    y = y + (b_ if b_.ndim == 2 else b_[None])[:, None, :, None, None]
    return y if copies else y[0]


def torch_form(config: Config, params: Any, x: Any, torch: Any) -> Any:
    kernel, stride, padding = _geometry(config)
    return torch.nn.functional.conv2d(x, params["W"], params["b"], stride=stride, padding=padding)


def jax_form(config: Config, params: Any, x: Any, jax: Any) -> Any:
    kernel, stride, (ph, pw) = _geometry(config)
    y = jax.lax.conv_general_dilated(x, params["W"], window_strides=stride, padding=((ph, ph), (pw, pw)),
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"), precision=jax.lax.Precision.HIGHEST)
    return y + params["b"][:, None, None]


def draw_config(rng: np.random.Generator, in_shape: Shape) -> Config | None:
    """A random valid config for in_shape (kernels up to 5, strides up to 3, padding up to 2, up to 4 filters)."""
    if len(in_shape) != 3:
        return None
    square = rng.random() < 0.6
    padding = draw_pair(rng, square, (2, 2), low=0)
    ph, pw = pair(padding)
    kernel = draw_pair(rng, square, (min(in_shape[1] + 2 * ph, 5), min(in_shape[2] + 2 * pw, 5)))
    return check_config({"out_channels": int(rng.integers(1, 5)), "kernel": kernel,
                         "stride": draw_pair(rng, square, (3, 3)), "padding": padding}, in_shape)


# --- the bug shapes: backwards people write by mistake, each computing what the mistake computes ---

def _kernel_flipped(config, params, cache, dy):
    dx, grads = backward(config, params, cache, dy)
    return dx, {**grads, "W": grads["W"][:, :, ::-1, ::-1]}


def _padding_offset(config, params, cache, dy):
    x_shape, xp_shape, _ = cache
    _, grads = backward(config, params, cache, dy)
    dxp = add_windows(_patch_grads(params, dy), xp_shape, pair(config["stride"]))
    return _crop(dxp, x_shape, (0, 0)), grads  # cut at the top-left corner: the border is dropped on one side only


def _stride_ignored(config, params, cache, dy):
    x_shape, xp_shape, _ = cache
    _, grads = backward(config, params, cache, dy)
    dxp = add_windows(_patch_grads(params, dy), xp_shape, (1, 1))
    return _crop(dxp, x_shape, pair(config["padding"])), grads


def _db_channels_last(config, params, cache, dy):
    dx, grads = backward(config, params, cache, dy)
    return dx, {**grads, "b": dy.reshape(-1, dy.shape[1]).sum(axis=0)}


def _strided(config: Config, in_shape: Shape) -> bool:
    """A stride > 1 along an axis with two or more output pixels (with one, the stride never moves a window)."""
    return any(s > 1 and n > 1 for s, n in zip(pair(config["stride"]), out_shape(config, in_shape)[1:]))


def _several_channels_and_pixels(config: Config, in_shape: Shape) -> bool:
    """Reshaping dy to rows of F only mixes things up with F > 1 and more than one output pixel."""
    return config["out_channels"] > 1 and np.prod(out_shape(config, in_shape)[1:]) > 1


BUG_SHAPES = (
    BugShape("kernel_flipped",
             "conv2d's dW has the kernel flipped (rows and columns reversed), as for a true convolution, while the "
             "layer computes a cross-correlation: dW[f, c, i, j] must pair tap (i, j) with the inputs it multiplied",
             _kernel_flipped, lambda config, in_shape: pair(config["kernel"]) != (1, 1)),
    BugShape("padding_offset",
             "conv2d's dx is cut from the padded input's gradient at its top-left corner, so it is shifted by the "
             "padding: drop the padded border on every side (rows p..p+H, cols p..p+W)",
             _padding_offset, lambda config, in_shape: pair(config["padding"]) != (0, 0)),
    BugShape("stride_ignored",
             "conv2d's dx ignores the stride: each window's gradient is added back as if the windows were one pixel "
             "apart, so it lands on the wrong input pixels; output pixel (h, w) read rows from h*stride",
             _stride_ignored, _strided),
    BugShape("db_channels_last",
             "conv2d's db sums dy over the wrong axes: dy (N, F, OH, OW) is reshaped to rows of F values as if the "
             "channels came last; db[f] must sum channel f over the batch and every output position",
             _db_channels_last, _several_channels_and_pixels),
)

CONV2D = register(Layer(KIND, check_config, param_shapes, out_shape, init, forward, backward, torch_form, jax_form,
                       draw_config, reference, pattern=None, bug_shapes=BUG_SHAPES))
