"""The property suite: the engine against every available reference on Hypothesis cases, through
check_case, with zero false positives (no ENGINE, REFERENCE or ERROR label on a correct engine).

Examples per property come from the Hypothesis profile (tests/conftest.py): dev 30, ci 300,
thorough 5000. The nets stay small (depth <= 3, width <= 4, batch <= 8), so a case costs about
ten milliseconds. A failure prints check_case's localised message and the case as JSON, ready for
bpcheck.replay.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context as currently_hypothesis

from bpcheck import strategies as bst
from bpcheck.check import check_case
from bpcheck.references import NAMES, status
from bpcheck.results import CheckResult
from bpcheck.spec import Case

FALSE_POSITIVES = ("ENGINE", "REFERENCE", "ERROR")


def available(name: str):
    s = status(name)
    return pytest.param(name, id=name, marks=pytest.mark.skipif(not s.available, reason=s.reason or ""))


def assert_no_false_positive(result: CheckResult) -> None:
    if currently_hypothesis():
        note(json.dumps(result.case))  # shown with the falsifying example: save it and bpcheck.replay it
    bad = {ref: label for ref, label in result.labels.items() if label in FALSE_POSITIVES}
    assert result.label not in FALSE_POSITIVES and not bad, result.message()


# Cases the properties found, reduced by hand, where check_case once reported a false positive.
# They run on every profile, so a fix stays fixed. Each note says what makes the case hard.
KNOWN_HARD = {
    "softmax_ce_cancellation": (
        # dL/dz = softmax(z) - y cancels to ~1e-5 from O(1) terms; torch and jax round it differently
        # by ~4.6e-12 relative in dx, a hair above the rounding model's 4.3e-12.
        '{"spec_version": 1, "arch": {"sizes": [2, 2], "activations": ["softmax"], "loss": "cross_entropy"}, '
        '"dtype": "float64", "regime": "ordinary", "params": {"W1": [[0.0, 0.0], [3.62939183233815e-05, 0.0]], '
        '"b1": [9.563414563854612e-05, 0.0]}, "x": [[0.0, 3.333950779767446e-05]], "y": [[0.5, 0.5]]}'
    ),
    "relu_input_cancelled_to_ulps": (
        # near_kink sets b2 = -(a1 @ W2) for row 4, so z2 is a few ulps of a ~1e-11 dot product:
        # a2 = relu(z2) is 3 ulps for the engine and 1 ulp for jax, and dW3 = a2^T dz3 differs by 3x,
        # at ~1e-28, all of it rounding in z2.
        '{"spec_version": 1, "arch": {"sizes": [4, 1, 1, 2], "activations": ["leaky_relu", "relu", "sigmoid"], '
        '"loss": "bce"}, "dtype": "float64", "regime": "near_kink", "params": {"W1": [[0.8421483137583801], '
        '[-0.5161152634251333], [0.5182381727384517], [-0.3168820113737162]], "b1": [-0.7059529636319309], '
        '"W2": [[-6.586545939505706e-10]], "b2": [-1.9430323419383653e-11], "W3": [[0.0, 0.0]], "b3": [0.0, 0.0]}, '
        '"x": [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], '
        '[-0.5, 1.6892069268632977, -1.779403500392812, 0.09149948565352917]], '
        '"y": [[0.4807067136378046, 0.8399279849842156], [0.9329403917692083, 0.5758113561798522], '
        '[1e-12, 1.3103915122370658e-56], [0.01004161922533653, 0.9636449551717139]]}'
    ),
    "gelu_deep_tail_forward": (
        # z2 = -6: gelu(z) = 0.5 z (1 + t) with 1 + t ~ 1.4e-11, where t's own rounding (eps |t|) is 1e-5 of
        # 1 + t; jax's tanh rounds otherwise, and dW3 = a2^T dz3 differs from torch's by 3.9e-6 relative.
        '{"spec_version": 1, "arch": {"sizes": [3, 4, 2, 1], "activations": ["identity", "gelu", "sigmoid"], '
        '"loss": "bce"}, "dtype": "float64", "regime": "huge", "params": {"W1": [[0.0, 0.0, 0.0, 0.0], [0.0, '
        '0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], "b1": [0.0, -2.0, 0.0, 0.0], "W2": [[0.0, 0.0], [0.0, 2.0], '
        '[0.0, 0.0], [0.0, 0.0]], "b2": [0.0, -2.0], "W3": [[0.0], [0.0]], "b3": [0.0]}, "x": [[0.0, 0.0, '
        '0.0]], "y": [[0.0]]}'
    ),
    "step_too_long_for_the_curvature": (
        # huge regime: a2 = 22120, so W3's step h = 1e-4 moves a sigmoid's input by 2.2; Richardson's
        # truncation estimate (0.3% of R) is not a bound there, and FD's dW3 was 3.6% off.
        '{"spec_version": 1, "arch": {"sizes": [2, 1, 3, 3], "activations": ["identity", "identity", '
        '"sigmoid"], "loss": "mse"}, "dtype": "float64", "regime": "huge", "params": {"W1": [[0.0], '
        '[-10.0]], "b1": [0.0], "W2": [[0.0, 7.0, 0.0]], "b2": [0.0, 0.0, 0.0], "W3": [[0.0, 0.0, 0.0], '
        '[0.0, 0.0, 0.0001], [0.0, 0.0, 0.0]], "b3": [0.0, 0.0, 0.0]}, "x": [[0.0, -316.0]], "y": [[0.0, '
        '0.0, 0.0]]}'
    ),
    "step_too_long_with_a_small_estimate": (
        # its sibling, where W3[2, 2]'s step moves the sigmoid's input 2.25 either side: D(h) and D(h/2) agree
        # to 0.2% by coincidence, so the estimate is small, and both are 4% off; the even part of the changes
        # (41% of the odd part) shows the step is long.
        '{"spec_version": 1, "arch": {"sizes": [2, 1, 3, 3], "activations": ["identity", "identity", '
        '"sigmoid"], "loss": "mse"}, "dtype": "float64", "regime": "huge", "params": {"W1": [[0.0], '
        '[-10.0]], "b1": [0.0], "W2": [[0.0, 0.0, 7.0]], "b2": [0.0, 0.0, 0.0], "W3": [[0.0, 0.0, 0.0], '
        '[0.0, 0.0, 0.0], [0.0, 0.0, 0.0001]], "b3": [0.0, 0.0, 0.0]}, "x": [[0.0, -322.0]], "y": [[0.0, '
        '0.0, 0.0]]}'
    ),
    "tiny_weight_above_a_kink": (
        # sample 4's z1 is 0 for the engine and jax, 2.2e-16 for torch, and W2[0, 1] = 1.2e-166 carries that to
        # z2 = 0 or 4.5e-183, across layer 2's relu; the rounding bound of z2 squared W2 to 0 (underflow), so
        # z2 looked exact and db2 a torch error (a false REFERENCE).
        '{"spec_version": 1, "arch": {"sizes": [3, 1, 2], "activations": ["relu", "relu"], "loss": "mse"}, '
        '"dtype": "float64", "regime": "near_kink", "params": {"W1": [[0.8793049827013824], [0.0], '
        '[0.9049814382658417]], "b1": [-1.0335465602126497], "W2": [[0.0, 1.2059623158653077e-166]], '
        '"b2": [-0.0, 0.0]}, "x": [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, '
        '0.0, 0.65625], [0.0, 0.0, 0.0]], "y": [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], '
        '[0.0, 1.0]]}'
    ),
    "mse_at_its_minimum": (
        # out = 0 and y = 2^-52: the loss is 5e-32, so the rounding scale of one evaluation is ~0, while
        # FD's change d(d + 2r) rounds at eps d^2 ~ 5e-25 (second order in h), 1.7e-6 of dW2 = -2^-52.
        '{"spec_version": 1, "arch": {"sizes": [3, 1, 1], "activations": ["sigmoid", "identity"], "loss": "mse"}, '
        '"dtype": "float64", "regime": "ordinary", "params": {"W1": [[0.0], [0.0], [0.0]], "b1": [0.0], '
        '"W2": [[0.0]], "b2": [0.0]}, "x": [[0.0, 0.0, 0.0]], "y": [[2.220446049250313e-16]]}'
    ),
}


@pytest.mark.parametrize("fast", [False, True], ids=["full", "fast"])
@pytest.mark.parametrize("name", list(KNOWN_HARD))
def test_known_hard_cases(name, fast):
    case = Case.from_dict(json.loads(KNOWN_HARD[name]))
    for references in [None, *[n for n in NAMES if status(n).available]]:
        assert_no_false_positive(check_case(case, references, fast=fast))


@pytest.mark.parametrize("regime", bst.REGIMES)
@given(data=st.data())
def test_engine_agrees_with_every_reference(regime, data):
    # One property per regime, so that each regime gets the profile's full count of examples; every
    # reference at once, so that blame can tell ENGINE from REFERENCE.
    case = data.draw(bst.cases(regimes=(regime,)), label="case")
    assert_no_false_positive(check_case(case))


@pytest.mark.parametrize("reference", [available(name) for name in NAMES])
@given(case=bst.cases())
def test_engine_agrees_with_each_reference_alone(reference, case):
    # With a single oracle there is nobody to blame but the engine: kinks and rounding must still
    # be recognised as such.
    result = check_case(case, reference)
    assert result.verdict(reference).label != "SKIPPED"
    assert_no_false_positive(result)


@given(case=bst.cases())
def test_fast_mode_agrees_too(case):
    # fast=True replaces per-coordinate FD by directional FD, escalating when it disagrees.
    assert_no_false_positive(check_case(case, fast=True))
