"""check_gradients on user-style gradient functions: planted bugs are caught and named; correct engines
written differently pass. Every function here is written as a user would, not with bpcheck's engine
(except the one that exercises grad_fn(arch, ...) over drawn architectures)."""

from __future__ import annotations

import numpy as np
import pytest

import bpcheck
from bpcheck import Arch, Case, UsageError
from bpcheck.byo import COLUMN, build_cases, check_gradients, custom_layout, draw_cases, load_function
from bpcheck.references import status

ARCH = Arch((3, 4, 2), ("tanh", "sigmoid"), "mse")
RELU = Arch((3, 4, 2), ("relu", "identity"), "mse")
N_CASES = 5
TORCH = status("torch")


def _act(name, z):
    return {"tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "relu": lambda v: np.maximum(v, 0),
            "identity": lambda v: v}[name](z)


def _act_prime(name, z, a, relu_at_zero=0.0):
    if name == "tanh":
        return 1 - a * a
    if name == "sigmoid":
        return a * (1 - a)
    if name == "relu":
        return np.where(z > 0, 1.0, np.where(z == 0, relu_at_zero, 0.0))
    return np.ones_like(z)


def make_grads(acts=("tanh", "sigmoid"), *, relu_at_zero=0.0, bias_mean=False, loss_scale=1.0):
    """A hand-written MSE backprop in bpcheck's row layout for a two-layer net with these activations."""

    def grads(params, x, y):
        z1 = x @ params["W1"] + params["b1"]
        a1 = _act(acts[0], z1)
        z2 = a1 @ params["W2"] + params["b2"]
        a2 = _act(acts[1], z2)
        dz2 = loss_scale * 2.0 / a2.size * (a2 - y) * _act_prime(acts[1], z2, a2, relu_at_zero)
        dz1 = (dz2 @ params["W2"].T) * _act_prime(acts[0], z1, a1, relu_at_zero)
        reduce = (lambda d: d.mean(axis=0)) if bias_mean else (lambda d: d.sum(axis=0))
        return {"W1": x.T @ dz1, "b1": reduce(dz1), "W2": a1.T @ dz2, "b2": reduce(dz2)}

    return grads


def mse_loss(params, x, y, scale=1.0):
    a1 = np.tanh(x @ params["W1"] + params["b1"])
    a2 = 1 / (1 + np.exp(-(a1 @ params["W2"] + params["b2"])))
    return scale * float(np.mean((a2 - y) ** 2))


good = make_grads()


def finding(result, check):
    return next((f for f in result.findings if f.check == check), None)


def test_correct_function_passes_every_regime_and_both_dtypes():
    result = check_gradients(good, ARCH, cases=10)
    assert result.ok, result.summary()
    assert set(result.labels) <= {"AGREE", "KINK"}
    described = " ".join(o.describe for o in result.outcomes)
    for regime in ("ordinary", "near_kink", "saturating", "tiny", "huge"):
        assert regime in described
    assert "float32" in described and "float64" in described
    assert "checks passed" in str(result)


def test_cases_are_deterministic_from_the_seed():
    a = [c.to_dict() for c in build_cases(ARCH, 4, seed=3, dtype=None, any_arch=False)]
    b = [c.to_dict() for c in build_cases(ARCH, 4, seed=3, dtype=None, any_arch=False)]
    c = [c.to_dict() for c in build_cases(ARCH, 4, seed=4, dtype=None, any_arch=False)]
    assert a == b and a != c


def test_stale_cache_keyed_on_shape_is_caught():
    cache = {}

    def cached(params, x, y):
        if x.shape not in cache:  # the bug: the key ignores params
            cache[x.shape] = good(params, x, y)
        return cache[x.shape]

    result = check_gradients(cached, ARCH, cases=N_CASES)
    assert not result.ok
    f = finding(result, "stale")
    assert f is not None and "keeps state" in f.message and "same gradient" in f.message


def test_hidden_state_between_calls_is_caught():
    calls = [0]

    def drifting(params, x, y):
        calls[0] += 1  # e.g. a momentum buffer folded into the returned gradient
        return {k: v * (1 + 0.01 * calls[0]) for k, v in good(params, x, y).items()}

    result = check_gradients(drifting, ARCH, cases=N_CASES)
    f = finding(result, "stale")
    assert not result.ok and f is not None and "another" in f.message and "keeps state" in f.message


def test_in_place_mutation_of_params_is_caught():
    def mutating(params, x, y):
        g = good(params, x, y)
        params["W1"] -= 0.1 * g["W1"]  # an SGD step on the caller's array
        return g

    result = check_gradients(mutating, ARCH, cases=N_CASES)
    f = finding(result, "mutation")
    assert not result.ok and f is not None
    assert "params['W1']" in f.message and "in place" in f.message


def test_wrong_key_is_named_with_the_fix():
    def wrong_key(params, x, y):
        g = good(params, x, y)
        g["w1"] = g.pop("W1")
        return g

    result = check_gradients(wrong_key, ARCH, cases=N_CASES)
    assert not result.ok and result.input_error is not None
    assert result.input_error.check == "interface"
    assert "'w1'" in result.input_error.message and "did you mean 'W1'" in result.input_error.message


def test_wrong_shape_is_named_with_both_shapes():
    def transposed(params, x, y):
        g = good(params, x, y)
        g["W2"] = g["W2"].T
        return g

    result = check_gradients(transposed, ARCH, cases=N_CASES)
    problem = result.input_error
    assert problem is not None and "'W2'" in problem.message and "(2, 4)" in problem.message
    assert "(4, 2)" in problem.message


def test_nan_is_named_with_where():
    def with_nan(params, x, y):
        g = good(params, x, y)
        g["b1"] = g["b1"].copy()
        g["b1"][2] = np.nan
        return g

    result = check_gradients(with_nan, ARCH, cases=N_CASES)
    f = finding(result, "finite")
    assert not result.ok and f is not None and "db1" in f.message and "nan at (2,)" in f.message
    assert result.input_error is None  # a behaviour fault: exit 1, not 2


def test_weight_decay_in_the_gradient_but_not_in_the_loss_is_named():
    def decayed(params, x, y):
        g = good(params, x, y)
        return {k: v + 0.01 * params[k] if k.startswith("W") else v for k, v in g.items()}

    result = check_gradients(decayed, ARCH, loss_fn=mse_loss, cases=N_CASES, dtype="float64")
    assert not result.ok
    assert set(result.labels) == {"ENGINE"}
    assert "weight-decay" in result.diagnosis and "0.01" in result.diagnosis


def test_correct_gradient_of_a_summed_loss_is_convention_naming_the_loss():
    summed = make_grads(loss_scale=None or 1.0)

    def sum_grads(params, x, y):
        n = y.size
        return {k: n * v for k, v in summed(params, x, y).items()}

    def sum_loss(params, x, y):
        return mse_loss(params, x, y) * y.size

    result = check_gradients(sum_grads, ARCH, loss_fn=sum_loss, cases=N_CASES)
    assert result.ok, result.summary()
    assert set(result.labels) == {"CONVENTION"}
    assert "sum of squared errors" in result.diagnosis
    # the verdict against the declared loss: torch's where installed, else bpcheck's engine (tox -e bare)
    declared = result.outcomes[0].result.verdict("torch" if TORCH.available else "engine")
    assert declared.label == "CONVENTION" and "sum of squared errors" in declared.diagnosis


def test_correct_gradient_of_a_scaled_loss_names_the_factor():
    result = check_gradients(make_grads(loss_scale=3.0), ARCH, loss_fn=lambda p, x, y: mse_loss(p, x, y, 3.0),
                             cases=N_CASES, dtype="float64")
    assert result.ok and set(result.labels) == {"CONVENTION"}
    assert "every gradient = 3 x the declared mse gradient" in result.diagnosis


def test_scaled_loss_is_convention_naming_the_factor_with_fd_alone():
    # No torch or jax: FD differentiates the user's own loss, so bpcheck's engine gives the declared one.
    result = check_gradients(make_grads(loss_scale=3.0), ARCH, loss_fn=lambda p, x, y: mse_loss(p, x, y, 3.0),
                             cases=N_CASES, dtype="float64", references="fd")
    assert result.ok and set(result.labels) == {"CONVENTION"}, result.summary()
    assert "every gradient = 3 x the declared mse gradient" in result.diagnosis
    verdict = result.outcomes[0].result.verdict("engine")
    assert verdict.label == "CONVENTION" and "3 x the declared mse gradient" in verdict.diagnosis
    assert result.run_result().meta["references"]["engine"]["available"]


def test_fd_alone_with_loss_fn_neither_invents_a_convention_nor_hides_a_bug():
    right = check_gradients(good, ARCH, loss_fn=mse_loss, cases=N_CASES, references="fd")
    assert right.ok and set(right.labels) <= {"AGREE", "KINK"}, right.summary()

    def decayed(params, x, y):  # wrong for the user's loss and for the declared one
        g = good(params, x, y)
        return {k: v + 0.01 * params[k] if k.startswith("W") else v for k, v in g.items()}

    wrong = check_gradients(decayed, ARCH, loss_fn=mse_loss, cases=N_CASES, dtype="float64", references="fd")
    assert not wrong.ok and set(wrong.labels) == {"ENGINE"}
    assert "weight-decay" in wrong.diagnosis


def test_scaled_gradient_without_loss_fn_is_a_disagreement_with_the_factor():
    result = check_gradients(make_grads(loss_scale=3.0), ARCH, cases=N_CASES, dtype="float64")
    assert not result.ok and "ENGINE" in result.labels
    assert "3 x the declared mse gradient" in result.diagnosis


def test_biases_averaged_over_the_batch_are_named():
    result = check_gradients(make_grads(bias_mean=True), ARCH, cases=N_CASES, dtype="float64")
    assert not result.ok
    assert result.diagnosis.startswith("the bias gradient is averaged over the batch while the weight gradient is summed")
    first = next(o for o in result.outcomes if not o.ok)
    assert "db1 and db2 = 1/batch x the declared mse gradient" in first.explanation


def test_column_layout_engine_passes_through_the_adapter():
    grads = load_function("examples/column_layout.py:grads")
    loss = load_function("examples/column_layout.py:loss")
    result = check_gradients(grads, ARCH, loss_fn=loss, cases=N_CASES, layout="column")
    assert result.ok, result.summary()
    assert set(result.labels) <= {"AGREE", "KINK"}
    assert check_gradients(grads, ARCH, cases=2, layout=COLUMN).ok
    # the same engine handed bpcheck's row layout fails in its own matmul, reported with its frame
    wrong = check_gradients(grads, ARCH, cases=1)
    assert wrong.input_error is not None and wrong.input_error.check == "raises"
    assert "column_layout.py" in wrong.input_error.message


def test_a_loop_over_samples_passes():
    def per_sample(params, x, y):
        total = {k: np.zeros_like(v) for k, v in params.items()}
        for i in range(x.shape[0]):  # the gradient of the batch mean is the sum of per-sample parts / N
            g = good(params, x[i:i + 1], y[i:i + 1])
            for k in total:
                total[k] += g[k] / x.shape[0]
        return total

    result = check_gradients(per_sample, ARCH, cases=N_CASES)
    assert result.ok, result.summary()


def _exact_zero_case() -> Case:
    rng = np.random.default_rng(7)
    params = {"W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal(4), "W2": rng.standard_normal((4, 2)),
              "b2": rng.standard_normal(2)}
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    # z1[0, 1] is exactly 0 with no rounding in it (a zero input row, a zero bias), so no rounding
    # error can move it off the kink: the difference there can only be the subgradient convention.
    x[0] = 0.0
    params["b1"][1] = 0.0
    return Case(RELU, params, x, y, "near_kink")


# With fd alone an exact zero is a KINK (FD straddles it); naming relu'(0) = 1 needs torch's exact subgradient.
@pytest.mark.skipif(not TORCH.available, reason=TORCH.reason or "")
def test_relu_prime_one_at_zero_is_convention_at_exact_zeros_only():
    user = make_grads(("relu", "identity"), relu_at_zero=1.0)
    cases = [_exact_zero_case()] + draw_cases(RELU, 4, 0, ("float64",))
    result = check_gradients(user, RELU, cases=cases)
    assert result.ok, result.summary()
    assert result.outcomes[0].label == "CONVENTION"
    assert "relu'(0) = 1" in result.outcomes[0].result.verdict("torch").diagnosis
    assert all(o.label in ("AGREE", "KINK") for o in result.outcomes[1:] if not _has_zero(o))


def _has_zero(outcome) -> bool:
    case = Case.from_dict(outcome.result.case)
    return bool(np.any(case.x @ case.params["W1"] + case.params["b1"] == 0))


def test_float32_internals_pass_under_the_float32_tolerance():
    def in_float32(params, x, y):
        p32 = {k: v.astype(np.float32) for k, v in params.items()}
        return good(p32, x.astype(np.float32), y.astype(np.float32))

    result = check_gradients(in_float32, ARCH, cases=N_CASES, dtype="float32")
    assert result.ok, result.summary()
    # the same float32 arithmetic on float64 cases is held to float64's tolerance, and fails
    assert not check_gradients(in_float32, ARCH, cases=2, dtype="float64").ok


def test_grad_fn_taking_arch_is_checked_over_drawn_architectures():
    from bpcheck import engine

    def any_net(arch, params, x, y):
        return dict(engine.gradients(Case(arch, params, x, y)).grads)

    available = ",".join(name for name in ("fd", "torch") if status(name).available)  # a named one must run here
    result = check_gradients(any_net, None, cases=6, references=available)
    assert result.ok, result.summary()
    assert len({o.describe.split(", ")[1] for o in result.outcomes}) > 1


def test_fixed_data_and_a_custom_layout():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y = np.array([[0], [1], [1], [0]], dtype=float)
    xor = Arch((2, 2, 1), ("sigmoid", "sigmoid"), "mse")
    fixed = load_function("examples/seed_xor_fixed.py:grads")
    result = check_gradients(fixed, xor, cases=(x, y), dtype="float64")
    assert result.ok and len(result.outcomes) == 3

    # a layout that hands the user (1, n) biases, as the essay's script keeps them
    def to_user(arch, params, x, y):
        return {k: np.array(v.reshape(1, -1) if k.startswith("b") else v) for k, v in params.items()}, x.copy(), y.copy()

    def from_user(arch, grads):
        return {k: np.asarray(v).reshape(-1) if k.startswith("b") else v for k, v in grads.items()}

    def wants_row_biases(params, x, y):
        assert params["b1"].shape == (1, 2)
        flat = {k: v.reshape(-1) if k.startswith("b") else v for k, v in params.items()}
        return {k: v.reshape(1, -1) if k.startswith("b") else v for k, v in fixed(flat, x, y).items()}

    assert check_gradients(wants_row_biases, xor, cases=2, layout=custom_layout(to_user, from_user)).ok


def test_the_essay_script_is_caught_with_both_bugs_named():
    xor = Arch((2, 2, 1), ("sigmoid", "sigmoid"), "mse")
    result = bpcheck.check_gradients(load_function("examples/seed_xor.py:grads"), xor, cases=N_CASES)
    assert not result.ok
    d = result.diagnosis
    assert "binary cross-entropy" in d and "y_hat - y" in d and "not of the MSE it reports" in d
    assert "db1 and db2 = 1/batch" in d and "average over the batch while the weight gradients sum" in d


def test_a_raising_function_is_reported_with_its_last_frame():
    def broken(params, x, y):
        return {"W1": params["W1"] / 0 + undefined_name}  # noqa: F821

    result = check_gradients(broken, ARCH, cases=2)
    problem = result.input_error
    assert problem is not None and problem.check == "raises"
    assert "NameError" in problem.message and "test_byo.py" in problem.message and "in broken" in problem.message


def test_bad_arguments_are_usage_errors():
    with pytest.raises(UsageError, match="arch is missing"):
        check_gradients(good, None)
    with pytest.raises(UsageError, match="layout 'colum'.*did you mean 'column'"):
        check_gradients(good, ARCH, layout="colum")
    with pytest.raises(UsageError, match="cases=0"):
        check_gradients(good, ARCH, cases=0)
    with pytest.raises(bpcheck.UserFunctionError, match="takes 2 positional"):
        check_gradients(lambda p, x: {}, ARCH)
