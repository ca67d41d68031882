"""The cases a layer is checked on: shapes and config from the kind's draw_config, values per regime.

    strategy = case_strategy(kind, user_config=None, shapes=None, regime="ordinary")
    cases = draw_cases(kind, n, seed)        # case i from (seed, i) alone, the regimes in turn

Hypothesis draws what should shrink (the regime, the batch, each per-sample dim, and one integer seed);
the rest (draw_config, the values, the cotangent) comes from numpy seeded by that integer, so that a
failing case shrinks toward batch 1, the smallest shapes, and seed 0. The cotangent dout is random,
never all ones (a layernorm backward can be right for ones and wrong otherwise).

Regimes: ordinary (x in [-2, 2], params in [-1, 1]), near_kink (values on a grid of 0.5, so that relu
inputs are exactly 0 and max-pool windows hold ties), tiny (1e-4 scale), huge (params 10, x 1e3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from ..spec import SpecError, UsageError
from .course import CourseKind, course_config

REGIMES: tuple[str, ...] = ("ordinary", "near_kink", "tiny", "huge")
SCALES: dict[str, tuple[float, float]] = {  # (params, x and dout)
    "ordinary": (1.0, 2.0), "near_kink": (1.0, 2.0), "tiny": (1e-4, 1e-4), "huge": (10.0, 1e3)}
# Logits of a loss layer in the huge regime: large enough that a softmax without the max shift is tested near its
# limit, not past it (exp overflows float64 at 709; course code may leave the shift out for moderate logits).
HUGE_LOGITS = 50.0
MAX_BATCH = 4
MAX_SIDE = 7          # largest H, W of a drawn image
MAX_WIDTH = 5         # largest other per-sample dim
CONFIG_TRIES = 30     # draw_config draws per case until the config fits the course's exact-fit convention
REDRAWS = 20          # draws of a case before giving up on a config that fits no drawn shape


@dataclass
class LayerCase:
    """One case: the forward's arrays (course names, in order), its config, the cotangent, the regime.

    registry: (registry config, per-sample input shape as the registry sees it), None for no registry kind.
    y: integer labels of a loss layer.
    """

    kind: str
    arrays: dict[str, np.ndarray]
    config: dict | None
    dout: np.ndarray | None
    regime: str
    registry: tuple[dict, tuple[int, ...]] | None = None
    y: np.ndarray | None = None
    seed: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return int(self.arrays["x"].shape[0]) if "x" in self.arrays and self.arrays["x"].ndim else 0

    def describe(self) -> str:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in self.arrays.items())
        config = f", {self.config}" if self.config else ""
        return f"{self.regime}, {shapes}{config}"

    def copy(self) -> LayerCase:
        return LayerCase(self.kind, {k: v.copy() for k, v in self.arrays.items()},
                         None if self.config is None else dict(self.config),
                         None if self.dout is None else self.dout.copy(), self.regime, self.registry,
                         None if self.y is None else self.y.copy(), self.seed, dict(self.meta))


def _values(rng: np.random.Generator, shape: tuple[int, ...], scale: float, regime: str) -> np.ndarray:
    v = rng.uniform(-scale, scale, size=shape)
    if regime == "near_kink":
        v = np.round(v * 2) / 2  # exact zeros and ties, the kinks of relu and max-pool
    return v


def _fits(kind: CourseKind, reg: dict, in_shape: tuple[int, ...]) -> bool:
    """Course code (CS231n's) takes one stride and one pad for both axes, and assumes the windows tile the padded
    input exactly."""
    if not kind.spatial or "kernel" not in reg:
        return True
    kh, kw = _two(reg["kernel"])
    (sh, sw), (ph, pw) = _two(reg.get("stride") or [kh, kw]), _two(reg.get("padding", 0))
    _, h, w = in_shape
    return sh == sw and ph == pw and h + 2 * ph >= kh and w + 2 * pw >= kw and \
        (h + 2 * ph - kh) % sh == 0 and (w + 2 * pw - kw) % sw == 0


def _two(value) -> tuple[int, int]:
    return (int(value), int(value)) if not isinstance(value, (list, tuple)) else (int(value[0]), int(value[1]))


def _registry_config(kind: CourseKind, rng: np.random.Generator, in_shape: tuple[int, ...], user: dict | None,
                     forced: dict):
    """A registry config that fits in_shape (and the user's fixed course keys); None when none is found."""
    from ..layers import LAYERS

    layer = LAYERS[kind.registry]
    for _ in range(CONFIG_TRIES):
        reg = layer.draw_config(rng, in_shape)
        if reg is None:
            return None
        reg = dict(reg, **kind.overrides)
        if user:
            reg = dict(reg, **_fixed(kind, reg, user), **forced)
        if not _valid(layer, reg, in_shape):
            continue
        reg = layer.check_config(reg, in_shape)
        if _fits(kind, reg, in_shape):
            return reg
    return None


def _fixed(kind: CourseKind, reg: dict, user: dict) -> dict:
    """The registry keys the user's course config fixes (strides, pads, pool sizes); the rest stays drawn."""
    if kind.name == "conv2d":
        return {k: int(user[c]) for c, k in (("stride", "stride"), ("pad", "padding")) if c in user}
    if kind.name in ("maxpool2d", "avgpool2d"):
        kh, kw = _kernel(reg)
        out = {"kernel": [int(user.get("pool_height", kh)), int(user.get("pool_width", kw))]}
        out["stride"] = int(user.get("stride", reg.get("stride") or out["kernel"][0]))
        return out
    if kind.name in ("batchnorm", "spatial_batchnorm", "layernorm") and "eps" in user:
        return {"eps": float(user["eps"])}
    if kind.name == "dropout" and "p" in user:
        return {"p": 1.0 - float(user["p"])}
    return {}


def _kernel(reg: dict) -> list[int]:
    k = reg.get("kernel", 1)
    return [int(k), int(k)] if not isinstance(k, (list, tuple)) else [int(k[0]), int(k[1])]


def _valid(layer, reg: dict, in_shape: tuple[int, ...]) -> bool:
    try:
        layer.check_config(dict(reg), in_shape)
    except SpecError:
        return False
    return True


def _side(draw, kind: CourseKind, user: dict, axis: int) -> int:
    """(side, window): a side the user's fixed window tiles exactly, k - 2 pad + stride * steps >= 1."""
    stride = int(user.get("stride", 1))
    if kind.name == "conv2d":
        window, pad = draw(st.integers(1, 3)), int(user.get("pad", 0))
    else:
        window, pad = int(user.get("pool_height" if axis == 0 else "pool_width", 2)), 0
    low = max(0, -((window - 2 * pad - 1) // stride))  # steps making the side >= 1
    return window - 2 * pad + stride * draw(st.integers(low, low + 3)), window


@st.composite
def _known(draw, kind: CourseKind, user: dict | None, regime: str) -> LayerCase:
    from ..layers import LAYERS

    batch = draw(st.integers(kind.min_batch, MAX_BATCH))
    ndim = draw(st.sampled_from(kind.dims))
    forced: dict = {}
    if kind.spatial and user and any(k in user for k in kind.fixed):
        (h, kh), (w, kw) = (_side(draw, kind, user, axis) for axis in (0, 1))
        dims = (draw(st.integers(1, 3)), h, w)
        if kind.name == "conv2d":
            forced["kernel"] = [kh, kw]
    elif kind.spatial:
        dims = (draw(st.integers(1, 3)), draw(st.integers(1, MAX_SIDE)), draw(st.integers(1, MAX_SIDE)))
    else:
        dims = tuple(draw(st.integers(2 if kind.name in ("layernorm", "softmax_loss") else 1, MAX_WIDTH))
                     for _ in range(ndim))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    p_scale, x_scale = SCALES[regime]
    if kind.loss and regime == "huge":
        x_scale = HUGE_LOGITS
    x = _values(rng, (batch, *dims), x_scale, regime)
    if kind.loss:
        y = rng.integers(0, dims[0], size=batch)
        return LayerCase(kind.name, {"x": x}, None, None, regime, None, y, seed)
    in_shape = (int(np.prod(dims)),) if kind.name == "affine" else dims
    reg = _registry_config(kind, rng, in_shape, user, forced)
    if reg is None:
        from hypothesis import reject

        reject()
    layer = LAYERS[kind.registry]
    arrays = {"x": x}
    shapes = layer.param_shapes(reg, in_shape)
    for name, local in kind.params.items():
        arrays[name] = _values(rng, shapes[local], p_scale, regime)
    if "gamma" in arrays:
        arrays["gamma"] = arrays["gamma"] + np.sign(arrays["gamma"]) * p_scale  # away from 0: a live scale
    out_shape = (batch, *layer.out_shape(reg, in_shape))
    dout = rng.standard_normal(out_shape) * x_scale
    config = course_config(kind, reg, user, seed % 2**31)
    return LayerCase(kind.name, arrays, config, dout, regime, (reg, in_shape), None, seed)


@st.composite
def _free(draw, shapes: dict[str, tuple[int, ...]], user: dict | None, regime: str) -> LayerCase:
    """--layer none: fixed shapes, values per regime; the output's shape is learnt from the user's forward."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    p_scale, x_scale = SCALES[regime]
    arrays = {name: _values(rng, shape, x_scale if i == 0 else p_scale, regime)
              for i, (name, shape) in enumerate(shapes.items())}
    return LayerCase("none", arrays, None if user is None else dict(user), None, regime, None, None, seed)


def case_strategy(kind: CourseKind, user: dict | None = None, shapes: dict | None = None,
                  regime: str = "ordinary") -> st.SearchStrategy[LayerCase]:
    if kind.name == "none":
        if not shapes:
            raise UsageError("--layer none needs --shapes: give the forward's arrays, e.g. "
                             "--shapes '{\"x\": [4, 3], \"w\": [3, 5]}'")
        return _free(shapes, user, regime)
    return _known(kind, user, regime)


def draw_cases(kind: CourseKind, n: int, seed: int, user: dict | None = None, shapes: dict | None = None,
               regimes: tuple[str, ...] = REGIMES) -> list[LayerCase]:
    """n cases, case i a pure function of (seed, i); regimes in turn."""
    from hypothesis.errors import UnsatisfiedAssumption

    from ..draw import draw

    out = []
    for i in range(n):
        strategy = case_strategy(kind, user, shapes, regimes[i % len(regimes)])
        for attempt in range(REDRAWS):
            try:  # a draw whose shapes no config fits is redrawn from the next sub-seed
                case = draw(strategy, (seed, i, attempt) if attempt else (seed, i))
                break
            except UnsatisfiedAssumption:
                continue
        else:
            raise UsageError(f"no {kind.name} case fits the config {user} in {REDRAWS} draws: relax --config")
        case.meta["index"] = i
        out.append(case)
    return out
