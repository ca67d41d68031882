"""The data a layer is run on: a Case (shapes, config, how x and dout are drawn) and the arrays it draws.

A Case is plain data: `shapes` maps each forward array (and `y` for a loss layer) to its shape; `config` is the
config dict the forward takes (None for affine, relu and softmax_loss); `inputs` says how x is drawn: "normal",
"ties" (small integers, so max-pool windows hold tied maxima) or "zeros" (a third of x exactly 0, relu's kink);
`dout` is "random" (standard normal) or "ones".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# the forward's arrays, in the order forward takes them and backward returns their gradients
ARGS = {
    "affine": ("x", "w", "b"), "relu": ("x",), "conv2d": ("x", "w", "b"), "maxpool2d": ("x",),
    "batchnorm": ("x", "gamma", "beta"), "layernorm": ("x", "gamma", "beta"), "dropout": ("x",),
    "softmax_loss": ("x",), "tanh": ("x",),
}


@dataclass(frozen=True)
class Case:
    shapes: dict
    config: dict | None = None
    inputs: str = "normal"
    dout: str = "random"
    note: str = field(default="", compare=False)


def affine(N, d, M):
    """x of shape (N, *d), w (prod(d), M), b (M,)."""
    d = tuple(d) if isinstance(d, (tuple, list)) else (d,)
    return Case({"x": (N, *d), "w": (int(np.prod(d)), M), "b": (M,)})


def relu(shape, inputs="normal"):
    return Case({"x": tuple(shape)}, inputs=inputs)


def tanh(shape):
    return Case({"x": tuple(shape)})


def conv(N, C, H, W, F, HH, WW, stride=1, pad=0):
    return Case({"x": (N, C, H, W), "w": (F, C, HH, WW), "b": (F,)}, {"stride": stride, "pad": pad})


def pool(N, C, H, W, ph, pw, stride, inputs="normal"):
    return Case({"x": (N, C, H, W)}, {"pool_height": ph, "pool_width": pw, "stride": stride}, inputs=inputs)


def batchnorm(x_shape, eps=1e-5, dout="random"):
    C = x_shape[1]
    return Case({"x": tuple(x_shape), "gamma": (C,), "beta": (C,)}, {"mode": "train", "eps": eps}, dout=dout)


def layernorm(x_shape, eps=1e-5, dout="random"):
    per_sample = tuple(x_shape[1:])
    return Case({"x": tuple(x_shape), "gamma": per_sample, "beta": per_sample}, {"eps": eps}, dout=dout)


def dropout(shape, p=0.6, seed=0):
    return Case({"x": tuple(shape)}, {"p": p, "mode": "train", "seed": seed})


def softmax(N, C):
    return Case({"x": (N, C), "y": (N,)})


def draw(case: Case, seed: int) -> dict:
    """The arrays of `case`, float64, from `seed` (and integer labels `y` for a loss layer)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in case.shapes.items():
        if name == "y":
            arrays[name] = rng.integers(0, case.shapes["x"][1], size=shape)
        elif name == "x" and case.inputs == "ties":
            arrays[name] = rng.integers(-2, 3, size=shape).astype(np.float64)
        else:
            arrays[name] = rng.standard_normal(shape)
    if case.inputs == "zeros":
        x = arrays["x"]
        x[rng.random(x.shape) < 1 / 3] = 0.0
    return arrays


def cotangent(case: Case, out_shape, seed: int) -> np.ndarray:
    if case.dout == "ones":
        return np.ones(out_shape)
    return np.random.default_rng(seed + 7919).standard_normal(out_shape)
