"""Shape buckets for jax's per-layer kernels: a layer padded with zeros into a shared shape, then cut back.

    fit = fit_unit(("conv2d", config, (3, 5, 5)), batch=3)   # Fit: the kernel's unit and the padding
    xk = fit.pad_x(x); pk = fit.pad_params(params)           # into the kernel's shapes
    y = fit.crop_y(yk); dx = fit.crop_x(dxk); dp = fit.crop_params(dpk)

One compile per layer signature still meets a new signature in most sweep cases (a new batch, width or
image size), and a compile costs far more than the tiny arrays' arithmetic. So, where padding is exact,
the kernel is keyed by a bucket instead (each size rounded up to a power of two with a floor), as jax's
MLP buckets do (jax_buckets), and the true values are the leading corner of the padded ones:
  * rows: a layer whose rows do not interact (Layer.per_sample) gets zero rows;
  * dense: zero input columns meet zero rows of W, extra outputs are cut;
  * conv2d, pools: zero channels (and zero slices of W), extra filters, zero rows and columns at the bottom
    and right of the image: an output the true layer has reads only true pixels or zeros either way (conv's
    own padding is zeros too), the others are cut, and their cotangent is zero;
  * an elementwise activation (not softmax) sees the whole array as one flat row;
  * batchnorm: zero features (1-D) or channels, each normalised on its own (eps > 0 keeps them finite).
The cut outputs get a zero cotangent, so they add exact zeros to every gradient. batchnorm (statistics over
the batch), dropout (the mask is a function of the shape), layernorm and flatten (over or in the order of
all per-sample dims) are padded only where that holds, or not at all; a kind not named here keeps
its exact signature. Results are bit-for-bit deterministic for a case (the bucket is a function of it)
and match the unpadded math to rounding (tests: <= 1e-12 against torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..spec import split_activation

MIN_ROWS, MIN_WIDTH, MIN_FLAT, MIN_CHANNELS, MIN_SIDE = 4, 8, 64, 4, 8
ROWS_ONLY = frozenset({"flatten", "layernorm"})
IMAGE = frozenset({"conv2d", "maxpool2d", "avgpool2d"})

Unit = tuple[str, dict, tuple]  # (kind, config, per-sample input shape)


def up(n: int, floor: int) -> int:
    """n rounded up to a power of two, at least floor."""
    return max(floor, 1 << (int(n) - 1).bit_length())


@dataclass(frozen=True)
class Fit:
    """A unit (true) and the kernel's unit it is padded into; rows is the kernel's batch, flat a 1-row view."""

    unit: Unit
    kernel: Unit
    batch: int
    rows: int
    flat: bool = False

    def shapes(self) -> tuple[tuple, tuple, tuple, tuple]:
        """(true x, kernel x, true y, kernel y) array shapes, batch first."""
        from ..layers import LAYERS

        (kind, config, shape), (_, kconfig, kshape) = self.unit, self.kernel
        out, kout = LAYERS[kind].out_shape(config, shape), LAYERS[kind].out_shape(kconfig, kshape)
        if self.flat:
            n = self.batch * math.prod(shape)
            return (1, n), (1, *kshape), (1, n), (1, *kout)
        return (self.batch, *shape), (self.rows, *kshape), (self.batch, *out), (self.rows, *kout)

    def pad_x(self, x: np.ndarray) -> np.ndarray:
        true, kernel, _, _ = self.shapes()
        return pad(x.reshape(true), kernel)

    def pad_y(self, dy: np.ndarray) -> np.ndarray:
        _, _, true, kernel = self.shapes()
        return pad(dy.reshape(true), kernel)

    def crop_x(self, dx: Any) -> np.ndarray:
        return self._crop(dx, self.shapes()[0], self.unit[2])

    def crop_y(self, y: Any) -> np.ndarray:
        from ..layers import LAYERS

        kind, config, shape = self.unit
        return self._crop(y, self.shapes()[2], LAYERS[kind].out_shape(config, shape))

    def _crop(self, a: Any, true: tuple, per_sample: tuple) -> np.ndarray:
        cut = np.array(np.asarray(a)[tuple(slice(0, n) for n in true)])  # a writable copy
        return cut.reshape(self.batch, *per_sample) if self.flat else cut

    def pad_params(self, params: dict) -> dict:
        shapes = self._param_shapes(self.kernel)
        return {name: pad(value, shapes[name]) for name, value in params.items()}

    def crop_params(self, grads: dict) -> dict:
        shapes = self._param_shapes(self.unit)
        return {name: np.array(np.asarray(g)[tuple(slice(0, n) for n in shapes[name])]) for name, g in grads.items()}

    @staticmethod
    def _param_shapes(unit: Unit) -> dict:
        from ..layers import LAYERS

        kind, config, shape = unit
        return LAYERS[kind].param_shapes(config, shape)


def pad(a: np.ndarray, shape: tuple) -> np.ndarray:
    """a in the leading corner of zeros of shape (a itself when it already has that shape)."""
    a = np.asarray(a, dtype=np.float64)
    if a.shape == tuple(shape):
        return a
    out = np.zeros(shape)
    out[tuple(slice(0, n) for n in a.shape)] = a
    return out


def fit_unit(unit: Unit, batch: int) -> Fit:
    """The bucket a unit is computed in (see the module docstring), or the unit itself where padding is not exact."""
    from ..layers import LAYERS

    kind, config, shape = unit
    if kind not in LAYERS:
        return Fit(unit, unit, batch, batch)
    rows = up(batch, MIN_ROWS) if LAYERS[kind].per_sample else batch
    if kind == "activation" and split_activation(config["fn"])[0] != "softmax":
        return Fit(unit, (kind, config, (up(batch * math.prod(shape), MIN_FLAT),)), batch, 1, flat=True)
    if kind == "dense":
        width = up(config["n"], MIN_WIDTH)
        return Fit(unit, (kind, {**config, "n": width}, (up(shape[0], MIN_WIDTH),)), batch, rows)
    if kind in IMAGE and LAYERS[kind].per_sample:
        c, h, w = shape
        padded = (up(c, MIN_CHANNELS), up(h, MIN_SIDE), up(w, MIN_SIDE))
        kconfig = {**config, "out_channels": up(config["out_channels"], MIN_CHANNELS)} if kind == "conv2d" else config
        return Fit(unit, (kind, kconfig, padded), batch, rows)
    if kind == "batchnorm":  # statistics per feature or channel: zero ones are independent, rows are not
        padded = (up(shape[0], MIN_WIDTH),) if len(shape) == 1 else (up(shape[0], MIN_CHANNELS), *shape[1:])
        return Fit(unit, (kind, config, padded), batch, batch)
    if kind in ROWS_ONLY or kind == "activation":
        return Fit(unit, unit, batch, rows)
    return Fit(unit, unit, batch, batch)
