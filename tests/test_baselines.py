"""The baseline wrappers: a correct engine passes torch gradcheck (default and fast_mode) and jax
check_grads, a planted scale bug fails each, and at a relu kink gradcheck cries wolf on the correct
engine while bpcheck does not. Skipped, with the reason, when torch or jax is not installed."""

from __future__ import annotations

import numpy as np
import pytest

from bpcheck import baselines, check, engine
from bpcheck.check import check_case
from bpcheck.mutants import get
from bpcheck.spec import Arch, Case, init_params

from . import planted


def smooth_case() -> Case:
    arch = Arch((3, 4, 2), ("tanh", "sigmoid"), "mse")
    rng = np.random.default_rng(0)
    return Case(arch, init_params(arch, rng), rng.standard_normal((5, 3)), rng.standard_normal((5, 2)))


def kink_case() -> Case:
    """relu at z = 0 exactly: dL/db1 is 0 by relu'(0) = 0, a central difference gives half the right slope."""
    arch = Arch((1, 1, 1), ("relu", "identity"), "mse")
    params = {"W1": np.array([[1.0]]), "b1": np.array([0.0]), "W2": np.array([[2.0]]), "b2": np.array([0.5])}
    return Case(arch, params, np.array([[0.0]]), np.array([[1.0]]))


def _need(name: str) -> None:
    pytest.importorskip("jax" if name == "check_grads" else "torch",
                        reason=f"{name} needs {'jax' if name == 'check_grads' else 'torch'}")


@pytest.mark.parametrize("name", baselines.BASELINES)
def test_correct_engine_passes(name):
    _need(name)
    r = baselines.run_baseline(name, engine.gradients, smooth_case())
    assert not r.caught and not r.error, r.message


@pytest.mark.parametrize("name", baselines.BASELINES)
def test_scale_mutant_fails(name):
    _need(name)
    r = baselines.run_baseline(name, planted.scaled("W2", 1.01), smooth_case())
    assert r.caught
    assert ("Jacobian mismatch" in r.message) if name.startswith("gradcheck") else ("tolerance" in r.message)


@pytest.mark.parametrize("name", baselines.BASELINES)
def test_integer_labels_are_targets_not_a_crash(name):
    # a cross_entropy stack with integer class labels (batch,), case 60 of `report --layers all` (seed 0): the
    # wrapper once cast the labels to float, which the loss read as a (batch,) target row and raised on
    from bpcheck.mutants.false_alarms import stack_case

    _need(name)
    case = stack_case(0, 60)
    assert case.y.shape == (case.batch,) and case.arch.loss == "cross_entropy" and not case.arch.is_mlp
    r = baselines.run_baseline(name, engine.gradients, case)
    assert not r.caught and not r.error, r.message
    assert baselines.run_baseline(name, planted.scaled("W4", 1.01), case).caught


@pytest.mark.parametrize("name", baselines.BASELINES)
def test_catalog_mutant_fails(name):
    _need(name)
    assert baselines.run_baseline(name, get("tanh_prime_one_minus_tanh").produce, smooth_case()).caught


def test_gradcheck_cries_wolf_at_a_kink_where_bpcheck_does_not():
    _need("gradcheck")
    case = kink_case()
    assert baselines.run_baseline("gradcheck", engine.gradients, case).caught
    check.clear_cache()
    r = check_case(case)
    assert r.ok and r.label not in ("ENGINE", "REFERENCE")


def test_user_function_is_checked_on_params_only():
    _need("gradcheck")
    from bpcheck.mutants.user import as_producer

    def right(arch, params, x, y):
        return dict(engine.gradients(Case(arch, params, x, y)).grads)

    assert not baselines.run_baseline("gradcheck", as_producer(right, "right"), smooth_case()).caught


def test_unknown_baseline_is_rejected():
    with pytest.raises(ValueError, match="choose from gradcheck"):
        baselines.run_baseline("nope", engine.gradients, smooth_case())
