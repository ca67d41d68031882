"""Hypothesis strategies for networks, parameters, data and whole cases (public API).

Every strategy takes keyword-only arguments, checks them before anything is drawn and raises
hypothesis.errors.InvalidArgument naming the bad value and the fix, as hypothesis's own do.
Everything is drawn with integers(), sampled_from() and element-wise float arrays, so a failing
example shrinks toward depth 1, width 1, batch 1, the first loss and activation listed, and zeros.

    from bpcheck import strategies as bst
    @given(bst.cases(archs=bst.architectures(max_depth=2, max_width=3)))
    def test_mine(case): ...

Softmax in hidden layers: not drawn unless hidden_softmax=True. A hidden softmax couples a
layer's units (a non-elementwise Jacobian, still drawn as an output for mse and huber and
forced for cross_entropy), but at width 1 it is the constant 1, which zeroes every gradient
below it and makes the example vacuous; real networks rarely use it there.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

from .regimes import KINKED, MAX_KINK_ULPS, REGIMES, SATURATING, SATURATION, SCALES, near_kink, saturate
from .spec import ACTIVATIONS, LOSS_OUTPUT, LOSSES, Arch, Case, Params, UsageError
from .strategy_args import check_dtype, check_int, check_names, check_range, check_scale

DTYPE_NAMES: tuple[str, ...] = ("float64", "float32")
TARGET_KINDS: tuple[str, ...] = ("one_hot", "probabilities", "unnormalised")
# What users feed, by default: one-hot and probability rows (bce: {0, 1} and [0, 1]). The textbook
# cross-entropy delta softmax(z) - y is exact only on rows summing to 1, so nonnegative rows that do
# not are an opt-in (TARGET_CHOICES['any']).
DEFAULT_TARGET_KINDS: tuple[str, ...] = ("one_hot", "probabilities")
# The user-facing names (--targets, targets=): 'labels' draws one-hot rows, and a user's function is
# handed their integer class indices instead (bpcheck.byo).
TARGET_CHOICES: dict[str, tuple[str, ...]] = {
    "onehot": ("one_hot",), "probs": ("probabilities",), "labels": ("one_hot",), "any": TARGET_KINDS,
}
__all__ = [
    "DEFAULT_TARGET_KINDS", "DTYPE_NAMES", "KINKED", "MAX_KINK_ULPS", "REGIMES", "SATURATING", "SATURATION",
    "TARGET_CHOICES", "TARGET_KINDS", "target_kinds",
    "architectures", "cases", "inputs", "params", "targets",
]

# Strategies are built once per distinct argument set and reused: Hypothesis caches per-strategy
# analysis (emptiness, recursion), so rebuilding them on every draw doubled the cost of a draw.
@functools.cache
def _floats(dtype: np.dtype, low: float, high: float) -> st.SearchStrategy[float]:
    """Finite floats of dtype's width in [low, high]; subnormals left out (torch may flush them)."""
    width = dtype.itemsize * 8
    low, high = (float(dtype.type(v)) for v in (low, high))  # bounds must be representable at that width
    return st.floats(low, high, width=width, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@functools.cache
def _array(dtype: np.dtype, shape: tuple[int, ...], elements: st.SearchStrategy) -> st.SearchStrategy[np.ndarray]:
    # fill=nothing() draws every element: slower than a shared fill value, but a network whose
    # weights are mostly one value has symmetric units that hide index bugs.
    return hnp.arrays(dtype, shape, elements=elements, fill=st.nothing())


def _depth_budget(depth: int, first: int, min_width: int, n_out_min: int) -> int:
    """Fewest params of a depth-layer net: input first wide, hidden min_width, output n_out_min."""
    sizes = [first] + [min_width] * (depth - 1) + [n_out_min]
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def _out_min(loss: str, min_width: int, max_width: int) -> int:
    # A one-class softmax is the constant 1: cross_entropy gets two outputs when the widths allow.
    return max(min_width, min(2, max_width)) if loss == "cross_entropy" else min_width


@st.composite
def _architectures(draw, min_depth, max_depth, min_width, max_width, hidden, outputs, losses, max_params):
    loss = draw(st.sampled_from(losses))
    out_min = _out_min(loss, min_width, max_width)
    budget = math.inf if max_params is None else max_params
    top = max_depth
    while top > min_depth and _depth_budget(top, min_width, min_width, out_min) > budget:
        top -= 1
    depth = draw(st.integers(min_depth, top))
    mins = [min_width] * depth + [out_min]
    sizes: list[int] = []
    spent = 0
    for i in range(depth + 1):
        # Largest n_i such that this layer, the next at its minimum and the rest at theirs still fit.
        rest = sum((mins[j - 1] + 1) * mins[j] for j in range(i + 2, depth + 1))
        nxt = mins[i + 1] if i < depth else 0
        fixed = spent + nxt + rest
        per_unit = (sizes[-1] + 1 if i > 0 else 0) + nxt
        cap = max_width if per_unit == 0 or budget == math.inf else min(max_width, int((budget - fixed) // per_unit))
        n = draw(st.integers(mins[i], max(mins[i], cap)))
        if i > 0:
            spent += (sizes[-1] + 1) * n
        sizes.append(n)
    acts = [draw(st.sampled_from(hidden)) for _ in range(depth - 1)]
    # Drawn even when the loss fixes it: every arch then takes the same number of choices, so the
    # shrinker (which prefers fewer choices) reaches the first loss listed rather than bce.
    output = draw(st.sampled_from(outputs))
    acts.append(LOSS_OUTPUT.get(loss, output))
    return Arch(tuple(sizes), tuple(acts), loss)


def architectures(
    *,
    min_depth: int = 1,
    max_depth: int = 4,
    min_width: int = 1,
    max_width: int = 8,
    activations: Sequence[str] = ACTIVATIONS,
    losses: Sequence[str] = LOSSES,
    max_params: int | None = None,
    hidden_softmax: bool = False,
) -> st.SearchStrategy[Arch]:
    """Valid Archs: depth layers in [min_depth, max_depth], every size in [min_width, max_width].

    Hidden layers draw from activations (without softmax unless hidden_softmax, see the module
    docstring); the output layer of mse and huber draws from activations too, while bce and
    cross_entropy fix it to the activation they are fused with (spec.LOSS_OUTPUT) whatever
    activations says. cross_entropy gets n_out >= 2 when max_width >= 2. max_params bounds the
    total count of weights and biases. Shrinks toward depth min_depth, width min_width and
    the first loss and activation listed.
    """
    check_range(min_depth, max_depth, "min_depth", "max_depth")
    check_range(min_width, max_width, "min_width", "max_width")
    activations = check_names(activations, "activations", ACTIVATIONS)
    losses = check_names(losses, "losses", LOSSES)
    if not isinstance(hidden_softmax, bool):
        raise InvalidArgument(f"hidden_softmax={hidden_softmax!r} is not a bool: give True or False")
    hidden = tuple(a for a in activations if hidden_softmax or a != "softmax")
    if max_depth > 1 and not hidden:
        raise InvalidArgument(f"activations={activations} leaves nothing for hidden layers (softmax is output-only "
                              "unless hidden_softmax=True): add an activation, or set max_depth=1")
    if max_params is not None:
        check_int(max_params, "max_params", 1)
        fits = tuple(loss for loss in losses if _depth_budget(
            min_depth, min_width, min_width, _out_min(loss, min_width, max_width)) <= max_params)
        if not fits:
            fewest = _depth_budget(min_depth, min_width, min_width, _out_min(losses[0], min_width, max_width))
            raise InvalidArgument(f"max_params={max_params} is below the {fewest} params of the smallest net "
                                  f"(depth {min_depth}, width {min_width}): raise max_params, or lower "
                                  "min_depth or min_width")
        losses = fits  # cross_entropy's two outputs may not fit a budget the other losses fit
    return _architectures(min_depth, max_depth, min_width, max_width, hidden or activations, activations,
                          losses, max_params)


def params(arch: Arch, *, dtype: Any = np.float64, scale: float = 1.0) -> st.SearchStrategy[Params]:
    """{W1: (n_0, n_1), b1: (n_1,), ...} with every element in [-scale, scale], shrinking to 0."""
    if not isinstance(arch, Arch):
        raise InvalidArgument(f"arch={arch!r} is not an Arch: draw one from architectures() or build Arch(...)")
    return _params(arch, check_dtype(dtype), check_scale(scale, "scale"))


@functools.lru_cache(maxsize=1024)
def _params(arch: Arch, dt: np.dtype, scale: float) -> st.SearchStrategy[Params]:
    elements = _floats(dt, -scale, scale)
    shapes = arch.param_shapes()
    # A tuple keeps the W1, b1, ..., WL, bL order (fixed_dictionaries would not).
    return st.tuples(*(_array(dt, shape, elements) for shape in shapes.values())).map(
        lambda arrays: dict(zip(shapes, arrays, strict=True)))


def inputs(arch: Arch, *, min_batch: int = 1, max_batch: int = 16, dtype: Any = np.float64,
           scale: float = 2.0) -> st.SearchStrategy[np.ndarray]:
    """x of shape (batch, n_in), batch in [min_batch, max_batch], elements in [-scale, scale]."""
    if not isinstance(arch, Arch):
        raise InvalidArgument(f"arch={arch!r} is not an Arch: draw one from architectures() or build Arch(...)")
    check_range(min_batch, max_batch, "min_batch", "max_batch")
    dt = check_dtype(dtype)
    elements = _floats(dt, -check_scale(scale, "scale"), scale)
    return st.integers(min_batch, max_batch).flatmap(lambda b: _array(dt, (b, arch.sizes[0]), elements))


def target_kinds(targets: str | Sequence[str] | None) -> tuple[str, ...]:
    """TARGET_KINDS to draw from a user-facing name (onehot, probs, labels, any), kinds as is, or None (the default)."""
    if targets is None:
        return DEFAULT_TARGET_KINDS
    if isinstance(targets, str):
        if targets not in TARGET_CHOICES:
            from .spec import suggest

            raise UsageError(f"targets {targets!r}{suggest(targets, tuple(TARGET_CHOICES))} is unknown: choose from "
                             f"{', '.join(TARGET_CHOICES)}")
        return TARGET_CHOICES[targets]
    return check_names(targets, "targets", TARGET_KINDS)


def targets(arch: Arch, batch: int, *, dtype: Any = np.float64, scale: float = 2.0,
            kinds: Sequence[str] = DEFAULT_TARGET_KINDS) -> st.SearchStrategy[np.ndarray]:
    """y of shape (batch, n_out) that fits arch.loss.

    mse, huber: any reals in [-scale, scale]. cross_entropy: one-hot rows, probability rows, or
    nonnegative rows not summing to 1 ('unnormalised'), by kinds. bce: {0, 1} for 'one_hot', [0, 1]
    otherwise.
    """
    if not isinstance(arch, Arch):
        raise InvalidArgument(f"arch={arch!r} is not an Arch: draw one from architectures() or build Arch(...)")
    check_int(batch, "batch", 1)
    dt = check_dtype(dtype)
    scale = check_scale(scale, "scale")
    kinds = check_names(kinds, "kinds", TARGET_KINDS)
    shape = (batch, arch.sizes[-1])
    if arch.loss in ("mse", "huber"):
        return _array(dt, shape, _floats(dt, -scale, scale))
    if arch.loss == "bce":
        return st.sampled_from(kinds).flatmap(lambda kind: _array(dt, shape, st.sampled_from((0.0, 1.0))) if kind == "one_hot"
                                              else _array(dt, shape, _floats(dt, 0.0, 1.0)))
    return st.sampled_from(kinds).flatmap(lambda kind: _class_targets(kind, shape, dt))


def _class_targets(kind: str, shape: tuple[int, int], dt: np.dtype) -> st.SearchStrategy[np.ndarray]:
    if kind == "one_hot":
        labels = st.lists(st.integers(0, shape[1] - 1), min_size=shape[0], max_size=shape[0])
        return labels.map(lambda ls: np.eye(shape[1], dtype=dt)[ls])
    rows = _array(dt, shape, _floats(dt, 0.0, 1.0))
    if kind == "unnormalised":
        return rows
    return rows.map(lambda r: _normalised(r).astype(dt))


def _normalised(r: np.ndarray) -> np.ndarray:
    """Rows that sum to 1. A row of tiny values (sum 1e-240) is first scaled by its largest entry, which a floor
    on the divisor would leave far from 1; a zero row has no distribution to normalise and becomes uniform."""
    total = r.sum(1, keepdims=True)
    top = r.max(1, keepdims=True)
    scaled = np.where(top > 0, r / np.where(top > 0, top, 1.0), 1.0)
    return np.where(total >= 1e-30, r / np.maximum(total, 1e-30), scaled / scaled.sum(1, keepdims=True))


@st.composite
def _cases(draw, archs, regimes, dtypes, min_batch, max_batch, kinds=DEFAULT_TARGET_KINDS):
    regime = draw(st.sampled_from(regimes))
    dt = np.dtype(draw(st.sampled_from(dtypes)))
    arch = archs if isinstance(archs, Arch) else draw(archs if archs is not None else _steered(regime))
    p_scale, data_scale = SCALES[regime]
    p = draw(params(arch, dtype=dt, scale=p_scale))
    x = draw(inputs(arch, min_batch=min_batch, max_batch=max_batch, dtype=dt, scale=data_scale))
    y = draw(targets(arch, x.shape[0], dtype=dt, scale=data_scale, kinds=kinds))
    if regime == "near_kink":
        p = near_kink(draw, arch, p, x)
    elif regime == "saturating":
        p = saturate(draw, arch, p, x)
    return Case(arch, p, x, y, regime)


@functools.cache
def _steered(regime: str) -> st.SearchStrategy[Arch]:
    """The default small nets, with activations steered to where the regime has something to test."""
    focus = {"near_kink": KINKED, "saturating": SATURATING}.get(regime)
    if focus is None:
        return architectures(max_depth=3, max_width=4)
    # Depth >= 2, so that a hidden layer has a focus activation even when the loss fixes the output.
    return architectures(min_depth=2, max_depth=3, max_width=4, activations=focus)


def cases(
    *,
    archs: Arch | st.SearchStrategy[Arch] | None = None,
    regimes: Sequence[str] = REGIMES,
    dtypes: Sequence[str] = DTYPE_NAMES,
    min_batch: int = 1,
    max_batch: int = 8,
    targets: str | Sequence[str] | None = None,
) -> st.SearchStrategy[Case]:
    """spec.Case with its regime set: draws a regime, a dtype (independently), an arch, params, x and y.

    archs: a fixed Arch, a strategy of them, or None for small nets (depth <= 3, width <= 4);
    for near_kink and saturating these have depth >= 2 and hidden activations from the regime's
    focus (KINKED, or sigmoid and tanh). regimes: a subset of REGIMES (ordinary, near_kink,
    saturating, tiny, huge; bpcheck.regimes says what each does). dtypes: names or numpy dtypes.
    targets: for bce and cross_entropy, None (one-hot and probability rows), a name of TARGET_CHOICES
    ('any' adds nonnegative rows not summing to 1) or a sequence of TARGET_KINDS.
    """
    if archs is not None and not isinstance(archs, (Arch, st.SearchStrategy)):
        raise InvalidArgument(f"archs={archs!r} is neither an Arch nor a strategy: give architectures(...) or an Arch")
    regimes = check_names(regimes, "regimes", REGIMES)
    if isinstance(dtypes, str) or not isinstance(dtypes, Sequence) or not dtypes:
        raise InvalidArgument(f"dtypes={dtypes!r} is not a nonempty sequence: give a tuple, like {DTYPE_NAMES}")
    dtypes = tuple(check_dtype(d, "dtypes").name for d in dtypes)
    check_range(min_batch, max_batch, "min_batch", "max_batch")
    return _cases(archs, regimes, dtypes, min_batch, max_batch, target_kinds(targets))


