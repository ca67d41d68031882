"""torch and jax are exact: near a kink they leave nothing out, they bound what either slope can change.

A pre-activation within its own rounding of a relu's kink may land on either side in the user's code, so the
coordinates it reaches cannot be held to torch's value exactly. They used to be left out, as FD's are, and a
unit at the kink in every column of a layer (the near_kink regime puts one there) hid that whole layer: a relu
mask taken from the wrong array went unseen. Now torch's and jax's comparisons subtract, per coordinate, what
the other one-sided slope at the straddled unit could change (bpcheck/compare/straddle.py), so the bug shows
and a correct gradient taking the other side still passes. The gradient functions are tests/independent.py's,
written without bpcheck's engine.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from bpcheck import Arch
from bpcheck.byo import check_gradients
from bpcheck.check import reference_trace
from bpcheck.compare import CaseContext
from bpcheck.draw import draw
from bpcheck.strategies import cases as case_strategy

from . import independent as ind

pytest.importorskip("torch", reason="torch and jax are the exact references here: pip install torch==2.13.0")
pytest.importorskip("jax", reason="torch and jax are the exact references here: pip install 'jax[cpu]'")

ARCH = Arch((3, 5, 2), ("relu", "identity"), "mse")
BUGGY = functools.partial(ind.mse_grads, bug="relu_mask_of_a")


@functools.cache
def near_kink_cases(n: int = 16):
    return [draw(case_strategy(archs=ARCH, regimes=("near_kink",), dtypes=(dt,)), (3, i))
            for i in range(n) for dt in ("float64", "float32")]


def _whole_layer_masked(case) -> bool:
    """Would the rounding-ambiguity masks (FD's, and torch's before) leave out every coordinate of dW1?"""
    c64 = case.astype(np.float64)
    ctx = CaseContext.build(case, reference_trace(c64, ["torch"]), c64)
    return bool(ctx.kinks.get("W1", np.zeros(1, dtype=bool)).all())


def _reveals(case) -> bool:
    """Does the bug change the float64 gradient? (In float32 a unit's whole window may be rounding: the corpus's
    rule, tests/corpus/bugs.py, holds only float64 cases to it.)"""
    if case.x.dtype != np.float64:
        return False
    c = case
    good = ind.mse_grads(ARCH, c.params, c.x, c.y)
    bad = BUGGY(ARCH, c.params, c.x, c.y)
    return any(np.linalg.norm(bad[k] - good[k]) > 1e-6 * np.linalg.norm(good[k]) for k in good)


def test_a_relu_mask_from_the_wrong_array_is_caught_where_every_column_sits_at_a_kink():
    cases = near_kink_cases()
    hidden = [i for i, c in enumerate(cases) if _whole_layer_masked(c) and _reveals(c)]
    assert hidden, "no case puts a unit at the kink in every column: the test tests nothing"
    result = check_gradients(BUGGY, ARCH, cases=cases, seed=0)
    for i, o in enumerate(result.outcomes):
        if not _reveals(cases[i]):
            continue
        assert o.label == "ENGINE", (i, o.label, o.describe, o.explanation)
        exact = [v for v in o.result.verdicts if v.reference in ("torch", "jax")]
        assert exact and all(v.label == "ENGINE" for v in exact), [(v.reference, v.label) for v in exact]
        for v in exact:
            assert v.first_bad_layer == 1 and v.worst_tensor().name in ("W1", "b1"), (v.reference, v.first_bad_layer)
    # the cases whose dW1 FD must leave out whole: FD is KINK there, torch and jax name the bug
    for i in hidden:
        fd = next(v for v in result.outcomes[i].result.verdicts if v.reference == "fd")
        assert fd.label == "KINK", (i, fd.label)


def test_correct_relu_nets_at_their_kinks_still_pass():
    # the same cases, the correct gradient: where the user's z and torch's straddle the kink, the other slope is allowed
    result = check_gradients(ind.mse_grads, ARCH, cases=near_kink_cases(), seed=0)
    assert result.ok, result.summary()
    exact = [v for o in result.outcomes for v in o.result.verdicts if v.reference == "torch"]
    assert any(v.label == "KINK" and "either one-sided slope" in v.reason for v in exact)
