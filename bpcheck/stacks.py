"""Layered cases: one case description, read by a numpy Generator (the sweep) or by Hypothesis (shrinking).

    case = build_case(np.random.default_rng(seed), kinds=("conv2d", "maxpool2d"), regime="huge", dtype="float32")
    @given(stack_cases(kinds=("batchnorm",)))          # the same description, drawn and shrunk by Hypothesis
    def test_mine(case): ...

build_case asks its rng only for `integers(low, high)` (high exclusive), `random()` and
`uniform(low, high, size)`: exactly what the layers' own draw_config use, and what a numpy Generator
answers. HypothesisRng answers the same three calls with Hypothesis's draw, so the sweep needs no
Hypothesis internals to draw a case from (seed, index), and a failing case still shrinks: every
integer shrinks toward its low end, random() toward 0 and uniform toward 0, and build_case orders
its choices so that low means fewer, smaller layers (one body layer of the first kind that fits, a
1x1 image or one feature, batch 1, no hidden dense layer).

The stack: image input (C, H, W) -> body layers of the requested image kinds (conv, pools, norms,
dropout, activations) -> flatten -> hidden dense layers -> output dense with the loss's activation;
or 1-D input (D,) -> body layers of the requested 1-D kinds (norms, dropout, activations, dense) ->
output dense. The regimes act as in bpcheck.regimes, on the dense layers: near_kink puts chosen
pre-activations of kinked dense layers at 0 or a few ulps from it, saturating rescales sigmoid/tanh
dense layers to max |z| in SATURATION; tiny and huge scale params and data (SCALES).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .layers import LAYERS
from .regimes import KINKED, MAX_KINK_ULPS, REGIMES, SATURATING, SATURATION, SCALES
from .spec import ACTIVATIONS, LOSS_OUTPUT, LOSSES, Arch, Case, UsageError, suggest

# What the body of a stack is drawn from, per input rank (flatten and the output dense are glue, always added).
IMAGE_KINDS: tuple[str, ...] = ("conv2d", "maxpool2d", "avgpool2d", "batchnorm", "layernorm", "dropout", "activation")
VECTOR_KINDS: tuple[str, ...] = ("dense", "batchnorm", "layernorm", "dropout", "activation")
SPATIAL: frozenset[str] = frozenset({"conv2d", "maxpool2d", "avgpool2d"})
MAX_BODY = 3          # most body layers of a stack
MAX_HIDDEN = 1        # hidden dense layers after flatten
MAX_SIDE = 6          # largest H and W of a drawn image
MAX_CHANNELS = 3
MAX_BATCH = 4
HIDDEN_ACTIVATIONS = tuple(a for a in ACTIVATIONS if a != "softmax")  # see bpcheck.strategies on hidden softmax


def layer_kinds() -> tuple[str, ...]:
    """The kinds a layered sweep can draw: those registered on this bpcheck, in IMAGE_KINDS / VECTOR_KINDS order."""
    return tuple(k for k in dict.fromkeys(IMAGE_KINDS + VECTOR_KINDS) if k in LAYERS)


def parse_kinds(text: str, flag: str = "--layers") -> tuple[str, ...]:
    """'conv2d,maxpool2d' -> the kinds; an unknown one is a UsageError naming it and the choices."""
    choices = layer_kinds()
    parts = tuple(dict.fromkeys(p.strip() for p in str(text).split(",") if p.strip()))
    if parts == ("all",):
        return choices
    if not parts:
        raise UsageError(f"{flag} {text!r} names no layer kind: choose from {', '.join(choices)}")
    for p in parts:
        if p not in choices:
            raise UsageError(f"{flag} has unknown kind {p!r}{suggest(p, choices)}: choose from {', '.join(choices)}")
    return parts


def kinds_of(arch: Arch) -> tuple[str, ...]:
    """The distinct layer kinds of an arch, in stack order."""
    return tuple(dict.fromkeys(kind for kind, _ in arch.layers))


class HypothesisRng:
    """The Generator calls build_case makes, answered by a Hypothesis draw (so the choices shrink)."""

    def __init__(self, draw):
        self._draw = draw

    def integers(self, low: int, high: int | None = None) -> int:
        if high is None:
            low, high = 0, low
        return self._draw(st.integers(int(low), int(high) - 1))

    def span(self, fn):
        return self._draw(st.composite(lambda draw: fn(HypothesisRng(draw)))())

    def random(self) -> float:
        return self._draw(st.floats(0.0, 1.0, exclude_max=True))

    def uniform(self, low: float, high: float, size: tuple[int, ...]) -> np.ndarray:
        return self._draw(hnp.arrays(np.float64, tuple(size), elements=st.floats(low, high, allow_subnormal=False),
                                     fill=st.nothing()))


def _span(rng, fn):
    """fn(rng), as one Hypothesis span when rng is a HypothesisRng (so the shrinker can delete it whole)."""
    return rng.span(fn) if isinstance(rng, HypothesisRng) else fn(rng)


def _pick(rng, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _hidden_activations(regime: str) -> tuple[str, ...]:
    return {"near_kink": KINKED, "saturating": SATURATING}.get(regime, HIDDEN_ACTIVATIONS)


def _body_layer(rng, kinds: Sequence[str], shape: tuple[int, ...], regime: str, max_width: int):
    """(kind, config) for the next body layer: the first kind that fits when rng says 0, so it shrinks."""
    fitting = [k for k in kinds if _fits(k, shape)]
    if not fitting:
        return None
    kind = _pick(rng, fitting)
    if kind == "dense":
        return kind, {"n": int(rng.integers(1, max_width + 1)), "activation": _pick(rng, _hidden_activations(regime))}
    if kind == "activation" and regime in ("near_kink", "saturating"):
        return kind, {"fn": _pick(rng, _hidden_activations(regime))}
    config = LAYERS[kind].draw_config(rng, shape)
    return None if config is None else (kind, config)


def _fits(kind: str, shape: tuple[int, ...]) -> bool:
    if kind in SPATIAL or kind == "flatten":
        return len(shape) == 3
    return kind != "dense" or len(shape) == 1


def build_arch(rng, kinds: Sequence[str], regime: str = "ordinary", max_width: int = 4) -> Arch:
    """A valid stack whose body is drawn from kinds (see the module docstring); shrinks toward one body layer."""
    kinds = tuple(kinds)
    can_image = any(_fits(k, (1, 1, 1)) for k in kinds)
    can_vector = any(_fits(k, (1,)) for k in kinds)
    # When both ranks fit the kinds, the rank is a choice, 0 being the smaller (1-D).
    image = can_image and (not can_vector or bool(rng.integers(2)))
    if image:
        in_shape: tuple[int, ...] = (int(rng.integers(1, MAX_CHANNELS + 1)), int(rng.integers(1, MAX_SIDE + 1)),
                                     int(rng.integers(1, MAX_SIDE + 1)))
    else:
        in_shape = (int(rng.integers(1, max_width + 1)),)
    loss = _pick(rng, LOSSES)
    layers: list[tuple[str, dict]] = []
    shape = in_shape
    body = [k for k in kinds if k != "flatten"]
    for i in range(MAX_BODY):
        # One span per layer (with its "one more?" choice inside), so the shrinker can delete a whole layer;
        # the first is always there, so a --layers sweep has a named kind in every case.
        drawn = _span(rng, lambda r, i=i, shape=shape: _body_layer(r, body, shape, regime, max_width)
                      if i == 0 or r.integers(2) else False)
        if drawn is False:
            break
        if drawn is None:
            continue
        layers.append(drawn)
        shape = tuple(LAYERS[drawn[0]].out_shape(LAYERS[drawn[0]].check_config(drawn[1], shape), shape))
    if len(shape) == 3:
        layers.append(("flatten", {}))
        for _ in range(int(rng.integers(0, MAX_HIDDEN + 1))):
            layers.append(("dense", {"n": int(rng.integers(1, max_width + 1)),
                                     "activation": _pick(rng, _hidden_activations(regime))}))
    n_out = int(rng.integers(2 if loss == "cross_entropy" else 1, max(2, max_width) + 1))
    output = _pick(rng, ACTIVATIONS)  # drawn even when the loss fixes it: the same number of choices either way
    layers.append(("dense", {"n": n_out, "activation": LOSS_OUTPUT.get(loss, output)}))
    return Arch.stack(in_shape, layers, loss)


def build_case(rng, kinds: Sequence[str] | None = None, regime: str = "ordinary", dtype: str = "float64",
               max_width: int = 4, max_batch: int = MAX_BATCH) -> Case:
    """A layered Case drawn through rng (a numpy Generator or a HypothesisRng)."""
    kinds = layer_kinds() if kinds is None else tuple(kinds)
    if regime not in REGIMES:
        raise UsageError(f"regime {regime!r}{suggest(regime, REGIMES)} is unknown: choose from {', '.join(REGIMES)}")
    return case_for(rng, build_arch(rng, kinds, regime, max_width), regime, dtype, max_batch)


def case_for(rng, arch: Arch, regime: str = "ordinary", dtype: str = "float64", max_batch: int = MAX_BATCH) -> Case:
    """A Case on a given stack, drawn through rng as build_case draws its own (params, batch, x, y, regime moves)."""
    dt = np.dtype(dtype)
    p_scale, d_scale = SCALES[regime]
    params = {key: rng.uniform(-p_scale, p_scale, shape).astype(dt) for key, shape in arch.param_shapes().items()}
    batch = int(rng.integers(1, max_batch + 1))
    x = rng.uniform(-d_scale, d_scale, (batch, *arch.in_shape)).astype(dt)
    n_out = arch.shapes[-1][0]
    if arch.loss == "cross_entropy":
        y = np.array([int(rng.integers(n_out)) for _ in range(batch)], dtype=np.int64)
    elif arch.loss == "bce":
        y = rng.uniform(0.0, 1.0, (batch, n_out))
        y = (y >= 0.5 if rng.integers(2) else y).astype(dt)
    else:
        y = rng.uniform(-d_scale, d_scale, (batch, n_out)).astype(dt)
    if regime in ("near_kink", "saturating"):
        params = _move_dense(rng, arch, params, x, regime)
    return Case(arch, params, x, y, regime)


def _move_dense(rng, arch: Arch, params: dict, x: np.ndarray, regime: str) -> dict:
    """The near_kink and saturating moves of bpcheck.regimes, on every dense layer of a stack (in order, since
    each move changes every later layer's input)."""
    from .engine import plan

    params = dict(params)
    out = x
    for step in plan(arch):
        local = {name: params[key] for name, key in step.keys.items()}
        if step.kind == "dense":
            act = step.config["activation"]
            pre = out @ local["W"]
            if regime == "near_kink" and act.split(":")[0] in KINKED:
                b = local["b"].copy()
                for j in range(b.shape[0]):
                    if rng.integers(2):
                        continue
                    value = -pre[int(rng.integers(out.shape[0])), j]
                    ulps = int(rng.integers(-MAX_KINK_ULPS, MAX_KINK_ULPS + 1))
                    for _ in range(abs(ulps)):
                        value = np.nextafter(value, b.dtype.type(np.inf if ulps > 0 else -np.inf))
                    b[j] = value
                local["b"] = b
            elif regime == "saturating" and act in SATURATING:
                peak = float(np.max(np.abs(pre + local["b"])))
                if peak > 1e-2:  # an all but zero layer cannot saturate without absurd weights
                    factor = int(rng.integers(SATURATION[0], SATURATION[1] + 1)) / peak
                    local = {k: (v * factor).astype(v.dtype) for k, v in local.items()}
            params.update({step.keys[name]: value for name, value in local.items()})
        out, _ = step.layer.forward(step.config, local, out)
    return params


@st.composite
def _stack_cases(draw, kinds, regimes, dtypes, max_width, max_batch):
    rng = HypothesisRng(draw)
    regime = _pick(rng, regimes)
    dtype = _pick(rng, dtypes)
    return build_case(rng, kinds, regime, dtype, max_width, max_batch)


def stack_cases(*, kinds: Sequence[str] | None = None, regimes: Sequence[str] = REGIMES,
                dtypes: Sequence[str] = ("float64", "float32"), max_width: int = 4,
                max_batch: int = MAX_BATCH) -> st.SearchStrategy[Case]:
    """Layered Cases (build_case) drawn by Hypothesis: shrinks toward the fewest and smallest layers."""
    kinds = layer_kinds() if kinds is None else parse_kinds(",".join(kinds), "kinds")
    return _stack_cases(kinds, tuple(regimes), tuple(dtypes), max_width, max_batch)
