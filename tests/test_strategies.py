"""bpcheck.strategies: arguments checked before drawing, only valid draws, the regimes do what they say,
and shrinking reaches the simplest network."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from bpcheck import engine
from bpcheck import strategies as bst
from bpcheck.ops import RULES
from bpcheck.spec import LOSS_OUTPUT, Arch, Case

from .search import first

# find() explores with its own example budget; no database, so every run does the same work.
FIND = settings(database=None, max_examples=500, suppress_health_check=list(HealthCheck), derandomize=True)
ARCH = Arch((3, 4, 2), ("relu", "softmax"), "cross_entropy")


def pre_activations(case: Case) -> list[np.ndarray]:
    _, caches = engine.forward(case.arch, case.params, case.x)
    return [c.z for c in caches]


def near_zero(case: Case, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """z_l (0-based layer) and where it is within MAX_KINK_ULPS ulps of the layer's largest dot product.

    Every entry near_kink targets is k ulps of its own dot product, k <= MAX_KINK_ULPS, so within this bound.
    """
    z = pre_activations(case)[layer]
    largest_dot = np.abs(z - case.params[f"b{layer + 1}"]).max()
    return z, np.abs(z) <= bst.MAX_KINK_ULPS * np.spacing(largest_dot)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: bst.architectures(min_depth=3, max_depth=2), ["max_depth=2", "min_depth=3"]),
        (lambda: bst.architectures(min_width=0), ["min_width=0"]),
        (lambda: bst.architectures(max_depth=2.5), ["max_depth=2.5", "integer"]),
        (lambda: bst.architectures(activations=("relu", "sigmod")), ["'sigmod'", "choose from"]),
        (lambda: bst.architectures(activations="relu"), ["activations='relu'", "tuple"]),
        (lambda: bst.architectures(losses=()), ["losses=()", "at least one"]),
        (lambda: bst.architectures(activations=("softmax",), max_depth=2), ["hidden", "max_depth=1"]),
        (lambda: bst.architectures(min_depth=2, min_width=3, max_params=10), ["max_params=10", "params"]),
        (lambda: bst.params(ARCH, dtype="float16"), ["dtype='float16'", "float32"]),
        (lambda: bst.params(ARCH, scale=-1.0), ["scale=-1.0", "positive"]),
        (lambda: bst.params((3, 4, 2)), ["arch=(3, 4, 2)", "Arch"]),
        (lambda: bst.inputs(ARCH, min_batch=0), ["min_batch=0"]),
        (lambda: bst.inputs(ARCH, scale=float("nan")), ["scale=nan"]),
        (lambda: bst.targets(ARCH, 0), ["batch=0"]),
        (lambda: bst.targets(ARCH, 2, kinds=("soft",)), ["'soft'", "one_hot"]),
        (lambda: bst.cases(regimes=("ordinary", "kinky")), ["'kinky'", "near_kink"]),
        (lambda: bst.cases(dtypes=("float64", "int32")), ["'int32'", "float32"]),
        (lambda: bst.cases(dtypes=()), ["dtypes=()"]),
        (lambda: bst.cases(archs="2-2-1"), ["archs='2-2-1'", "architectures"]),
    ],
)
def test_bad_arguments_raise_before_drawing(make, words):
    # The error comes from the call itself, before any example exists, and names the value and the fix.
    with pytest.raises(InvalidArgument) as info:
        make()
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)


@settings(max_examples=150, deadline=None, database=None)
@given(st.data(), st.integers(1, 3), st.integers(0, 2), st.integers(1, 4), st.integers(0, 3))
def test_architectures_respect_every_bound(data, min_depth, extra_depth, min_width, extra_width):
    max_depth, max_width = min_depth + extra_depth, min_width + extra_width
    arch = data.draw(bst.architectures(min_depth=min_depth, max_depth=max_depth, min_width=min_width,
                                       max_width=max_width))
    assert min_depth <= arch.n_layers <= max_depth
    assert all(min_width <= n <= max_width for n in arch.sizes)
    assert "softmax" not in arch.activations[:-1]
    if arch.loss in LOSS_OUTPUT:
        assert arch.activations[-1] == LOSS_OUTPUT[arch.loss]
    if arch.loss == "cross_entropy" and max_width >= 2:
        assert arch.sizes[-1] >= 2


@settings(max_examples=150, deadline=None, database=None)
@given(st.data(), st.integers(4, 120))
def test_max_params_is_never_exceeded(data, budget):
    arch = data.draw(bst.architectures(max_depth=4, max_width=8, max_params=budget))
    assert arch.n_params <= budget


def test_max_params_drops_a_loss_that_cannot_fit():
    # (1 + 1) * 1 = 2 params fit mse, but cross_entropy needs two outputs: 4 params.
    arch = find(bst.architectures(max_depth=1, max_width=2, max_params=2), lambda a: True, settings=FIND)
    assert arch.n_params <= 2
    with pytest.raises(Exception):  # noqa: B017  (find raises NoSuchExample: nothing may be drawn)
        find(bst.architectures(max_depth=1, max_width=2, max_params=2), lambda a: a.loss == "cross_entropy",
             settings=FIND)


def test_hidden_softmax_only_when_asked():
    arch = find(bst.architectures(min_depth=2, activations=("softmax", "relu"), hidden_softmax=True),
                lambda a: "softmax" in a.activations[:-1], settings=FIND)
    assert arch.activations[0] == "softmax"


@settings(max_examples=100, deadline=None, database=None)
@given(st.data(), st.sampled_from(["float32", "float64"]))
def test_params_and_inputs_have_shape_dtype_and_range(data, dtype):
    arch = data.draw(bst.architectures(max_depth=3, max_width=4))
    p = data.draw(bst.params(arch, dtype=dtype, scale=0.5))
    assert list(p) == list(arch.param_shapes())
    for name, shape in arch.param_shapes().items():
        assert p[name].shape == shape and p[name].dtype == np.dtype(dtype)
        assert np.all(np.abs(p[name]) <= 0.5)
    x = data.draw(bst.inputs(arch, min_batch=2, max_batch=5, dtype=dtype, scale=3.0))
    assert 2 <= x.shape[0] <= 5 and x.shape[1] == arch.sizes[0] and x.dtype == np.dtype(dtype)
    assert np.all(np.abs(x) <= 3.0)


@settings(max_examples=200, deadline=None, database=None)
@given(st.data())
def test_targets_fit_the_loss(data):
    arch = data.draw(bst.architectures(max_depth=2, max_width=4))
    batch = data.draw(st.integers(1, 4))
    y = data.draw(bst.targets(arch, batch, scale=5.0))
    assert y.shape == (batch, arch.sizes[-1])
    if arch.loss in ("mse", "huber"):
        assert np.all(np.abs(y) <= 5.0)
    else:
        assert np.all((y >= 0) & (y <= 1))
    Case(arch, data.draw(bst.params(arch)), np.zeros((batch, arch.sizes[0])), y)  # accepted by the spec


@pytest.mark.parametrize("kind", bst.TARGET_KINDS)
def test_cross_entropy_target_kinds(kind):
    arch = Arch((2, 3), ("softmax",), "cross_entropy")
    strategy = bst.targets(arch, 4, kinds=(kind,))
    if kind == "one_hot":
        y = find(strategy, lambda y: True, settings=FIND)
        assert np.array_equal(y.sum(1), np.ones(4)) and set(np.unique(y)) <= {0.0, 1.0}
    elif kind == "probabilities":
        y = find(strategy, lambda y: np.unique(y).size > 2, settings=FIND)
        np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-12)
    else:
        y = find(strategy, lambda y: np.all(np.abs(y.sum(1) - 1) > 0.1), settings=FIND)
        assert np.all(y >= 0)


@settings(max_examples=200, deadline=None, database=None)
@given(bst.cases(regimes=("near_kink",)))
def test_near_kink_puts_chosen_pre_activations_at_zero_or_a_few_ulps(case):
    kinked = [layer for layer, act in enumerate(case.arch.activations) if RULES[act].kink]
    assert kinked, "the default near_kink nets have at least one kinked layer"
    for layer in kinked:
        z, close = near_zero(case, layer)
        assert close.any(), (layer, z)


def test_near_kink_makes_exact_zeros():
    # Both exact zeros and zeros missed by a few ulps on either side turn up, in both dtypes.
    for dtype in bst.DTYPE_NAMES:
        strategy = bst.cases(regimes=("near_kink",), dtypes=(dtype,))
        for side in (np.equal, np.greater, np.less):
            case = first(strategy, lambda c, side=side: bool(np.any(side(near_zero(c, 0)[0], 0) & near_zero(c, 0)[1])))
            assert case.arch.activations[0] in bst.KINKED


@settings(max_examples=150, deadline=None, database=None)
@given(bst.cases(regimes=("saturating",)))
def test_saturating_drives_sigmoid_and_tanh_far_out(case):
    saturating = [layer for layer, act in enumerate(case.arch.activations) if act in bst.SATURATING]
    assert saturating
    zs = pre_activations(case)
    for layer in saturating:
        peak = np.abs(zs[layer]).max()
        # A layer is left alone only when its z was all but zero; float32 rounding moves the peak a little.
        assert peak < 0.1 or bst.SATURATION[0] * 0.99 <= peak <= bst.SATURATION[1] * 1.01, (layer, peak)


@settings(max_examples=100, deadline=None, database=None)
@given(bst.cases())
def test_cases_are_valid_and_keep_one_dtype(case):
    assert case.regime in bst.REGIMES
    arrays = [*case.params.values(), case.x, case.y]
    assert {a.dtype for a in arrays} == {np.dtype(case.dtype)}
    assert np.isfinite(engine.gradients(case).loss)


def test_regime_scales_differ_as_named():
    tiny = first(bst.cases(regimes=("tiny",)), lambda c: np.abs(c.x).max() > 0)
    huge = first(bst.cases(regimes=("huge",)), lambda c: np.abs(c.x).max() > 1e2)
    assert np.abs(tiny.x).max() <= 1e-4 and max(np.abs(v).max() for v in tiny.params.values()) <= 1e-4
    assert np.abs(huge.x).max() > 1e2


def test_both_dtypes_are_drawn_in_every_regime():
    for regime in bst.REGIMES:
        for dtype in (np.float32, np.float64):
            first(bst.cases(regimes=(regime,)), lambda c, d=dtype: c.dtype is d)


def test_shrinks_to_the_simplest_case():
    case = find(bst.cases(), lambda c: True, settings=FIND)
    assert case.arch == Arch((1, 1), ("identity",), "mse")
    assert case.regime == "ordinary" and case.batch == 1 and case.dtype is np.float64
    assert all(not v.any() for v in case.params.values()) and not case.x.any() and not case.y.any()


def test_a_deep_requirement_shrinks_to_width_one():
    arch = find(bst.architectures(), lambda a: a.n_layers >= 3, settings=FIND)
    assert arch == Arch((1, 1, 1, 1), ("identity",) * 3, "mse")


def test_a_fixed_arch_is_kept():
    case = first(bst.cases(archs=ARCH, regimes=("saturating",)), lambda c: True)
    assert case.arch == ARCH and case.regime == "saturating"


def test_default_cross_entropy_targets_sum_to_one_in_every_regime():
    # the tiny regime draws rows of values near 1e-240, which a floor on the divisor left summing to 1e-24
    from bpcheck.byo.cases import draw_cases

    cases = draw_cases(Arch.parse("2-4-2", "relu,softmax", "cross_entropy"), 400, 0, ("float64", "float32"))
    for case in cases:
        eps = np.finfo(case.y.dtype).eps
        np.testing.assert_allclose(case.y.sum(1), 1.0, rtol=0, atol=8 * eps, err_msg=str(case.y))
