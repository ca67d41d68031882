"""The finite-difference reference against the engine, its own error estimate, kinks, and its other paths."""

from __future__ import annotations

import numpy as np
import pytest

from bpcheck import engine
from bpcheck.ops import LOSS_RULES, RULES
from bpcheck.references import directions, fd_dense, fd_mlp, fd_mlp_pass
from bpcheck.references import fd as fd_ref
from bpcheck.references import finite_diff as fd
from bpcheck.spec import ACTIVATIONS, LOSS_OUTPUT, LOSSES, Arch, Case, UsageError, UserFunctionError, init_params

from .nets import random_case

NORM_REL_TOL = 1e-7  # the brief's bar for FD vs engine in float64, on params, dx and dz
# FD's absolute accuracy is ~eps |L| / h ~ 1e-12 |L|, so a gradient tiny against the loss (a width-1
# bottleneck, a leaky slope) is held relative to FLAT_BELOW * |L| rather than to its own norm.
FLAT_BELOW = 1e-4
# The estimate must not be absurdly loose: over all compared coordinates, the median of
# |fd - engine| / error stays above this (measured about 5e-3 when every loss was evaluated directly;
# rounding noise is a random walk while the estimate adds absolute values, so the median sits well below
# the bound of 1). Since mse, bce and cross-entropy changes are formed in closed form (loss_change.py)
# their actual error fell ~10x while the estimate still counts the direct form (the fallback for large
# changes): measured 5.5e-4.
MEDIAN_TIGHTNESS = 2e-4


def every_arch() -> list[tuple[Arch, int]]:
    """Each activation as hidden and (where the loss allows) output layer, with each loss; widths
    include 1 and batches run 1..16, drawn from a fixed seed."""
    rng = np.random.default_rng(2024)
    out = []
    for n, (act, loss) in enumerate((a, lo) for a in ACTIVATIONS for lo in LOSSES):
        n_out = int(rng.integers(2, 4)) if loss == "cross_entropy" else int(rng.choice([1, 2, 3]))
        sizes = (int(rng.choice([1, 2, 4])), int(rng.choice([1, 3, 5])), n_out)
        if n % 3 == 0:  # some deeper nets, so the layers above a perturbation are several
            sizes = (sizes[0], 3, *sizes[1:])
        hidden = (act,) * (len(sizes) - 2)
        out.append((Arch(sizes, (*hidden, LOSS_OUTPUT.get(loss, act)), loss), 1 + n % 16))
    return out


def random_case_for(arch: Arch, batch: int, seed: int) -> Case:
    return random_case(np.random.default_rng(seed), arch, batch)


def norm_rel(a: np.ndarray, b: np.ndarray, floor: float = 0.0) -> float:
    scale = max(np.linalg.norm(a), np.linalg.norm(b), floor)
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


@pytest.fixture(scope="module")
def pairs():
    """(case, engine Gradients, FD Gradients) for every arch of every_arch()."""
    out = []
    for seed, (arch, batch) in enumerate(every_arch()):
        case = random_case_for(arch, batch, seed)
        out.append((case, engine.gradients(case), fd_ref.gradients(case)))
    return out


def test_covers_every_activation_and_loss(pairs):
    seen = {(a, c.arch.loss) for c, _, _ in pairs for a in c.arch.activations[:-1]}
    assert seen == {(a, lo) for a in ACTIVATIONS for lo in LOSSES}
    assert {1, 16} <= {c.batch for c, _, _ in pairs}
    assert 1 in {n for c, _, _ in pairs for n in c.arch.sizes}


def test_fd_matches_engine_on_params_and_dx(pairs):
    for case, eng, got in pairs:
        assert got.source == "fd" and set(got.error) == set(got.kink) == set(eng.tensors())
        assert got.loss == pytest.approx(eng.loss, rel=1e-14, abs=1e-300)
        for name, want in eng.tensors().items():
            ok = ~got.kink[name]
            assert got.tensors()[name].dtype == np.float64 and got.tensors()[name].shape == want.shape
            rel = norm_rel(got.tensors()[name][ok], want[ok], FLAT_BELOW * abs(eng.loss))
            assert rel <= NORM_REL_TOL, f"{case.arch.label()} batch {case.batch} {name}: norm-rel {rel:.2e}"


def test_error_estimate_bounds_the_actual_error_and_is_not_loose(pairs):
    ratios = []
    for case, eng, got in pairs:
        tensors = [(name, got.tensors()[name], want, got.error[name], got.kink[name])
                   for name, want in eng.tensors().items()]
        tensors += [(f"dz{i + 1}", g, w, e, k) for i, (g, w, e, k) in
                    enumerate(zip(got.dz, eng.dz, got.meta["dz_error"], got.meta["dz_kink"]))]
        for name, value, want, err, kink in tensors:
            ok = ~kink
            actual = np.abs(value - want)[ok]
            assert np.all(err[ok] > 0)
            worst = float((actual / err[ok]).max(initial=0.0))
            assert worst <= 1.0, f"{case.arch.label()} {name}: actual error is {worst:.2f} x the estimate"
            ratios.append(actual / err[ok])
    ratios = np.concatenate(ratios)
    assert np.median(ratios) >= MEDIAN_TIGHTNESS, f"median actual/estimate {np.median(ratios):.1e}: too loose"


@pytest.mark.parametrize("scale", [5.0, 20.0])
@pytest.mark.parametrize("arch", [Arch((4, 6, 3), ("gelu", "softmax"), "cross_entropy"),
                                  Arch((4, 6, 2), ("tanh", "sigmoid"), "bce")], ids=lambda a: a.loss)
def test_error_estimate_holds_for_a_confident_classifier(arch, scale):
    """Large logits with matching targets: l_b is tiny (down to 0) while the terms the loss sums are not."""
    rng = np.random.default_rng(0)
    params = {k: v * scale + 0.1 * rng.standard_normal(v.shape) for k, v in init_params(arch, rng).items()}
    x = 2 * rng.standard_normal((8, 4))
    out = engine.predict(arch, params, x)
    y = np.eye(3)[out.argmax(axis=1)] if arch.loss == "cross_entropy" else (out > 0.5).astype(float)
    case = Case(arch, params, x, y)
    eng, got = engine.gradients(case), fd_ref.gradients(case)
    assert eng.loss < 0.2  # confident
    for name, want in eng.tensors().items():
        ok = ~got.kink[name]
        assert np.all(np.abs(got.tensors()[name] - want)[ok] <= got.error[name][ok]), name


def test_error_estimate_exposes_a_planted_tiny_bug(pairs):
    """A gradient off by 1e-6 relative (far below what gradcheck's rtol=1e-3 sees) leaves the estimate."""
    caught = 0
    for _case, eng, got in pairs:
        for name, want in eng.grads.items():
            ok = ~got.kink[name] & (np.abs(want) > 1e-3)
            planted = want * (1 + 1e-6)
            if ok.any():
                caught += bool(np.any(np.abs(planted - got.grads[name])[ok] > got.error[name][ok]))
    assert caught >= 0.9 * sum(bool((np.abs(e.grads[n]) > 1e-3).any()) for _, e, _ in pairs for n in e.grads)


def test_dz_trace_matches_the_engine(pairs):
    for case, eng, got in pairs:
        assert len(got.dz) == case.arch.n_layers and got.da is None
        for layer, (mine, theirs, kink) in enumerate(zip(got.dz, eng.dz, got.meta["dz_kink"]), start=1):
            assert mine.shape == theirs.shape
            rel = norm_rel(mine[~kink], theirs[~kink], FLAT_BELOW * abs(eng.loss))
            assert rel <= NORM_REL_TOL, f"{case.arch.label()} dz{layer}: norm-rel {rel:.2e}"


# -- kinks ----------------------------------------------------------------------------------------

def kinked_case(offset: float) -> Case:
    """A 3-4-2 relu net whose z1[0, 0] is exactly `offset` (0 or tiny) and every other |z| >= 0.5."""
    x = np.array([[1.0, 2.0, -1.0], [0.5, -1.5, 2.0]])
    w1 = np.array([[1.0, -2.0, 0.5, 1.5], [0.5, 1.0, -1.0, 2.0], [-1.0, 0.5, 2.0, -0.5]])
    b1 = np.array([-3.0 + offset, 0.0, 0.0, 0.0])  # x[0] @ w1[:, 0] = 3 exactly
    params = {"W1": w1, "b1": b1, "W2": np.array([[1.0, -1.0], [0.5, 2.0], [-1.5, 0.5], [1.0, 1.0]]),
              "b2": np.array([0.1, -0.2])}
    case = Case(Arch((3, 4, 2), ("relu", "identity"), "mse"), params, x, np.array([[0.3, -0.2], [1.0, 0.5]]))
    z1 = x @ w1 + b1
    assert abs(z1[0, 0] - offset) <= 1e-15 and np.all(np.abs(np.delete(z1.ravel(), 0)) >= 0.5)
    return case


@pytest.mark.parametrize("offset", [0.0, 1e-9, -1e-9])
def test_kink_at_or_near_zero_flags_exactly_the_coordinates_that_move_it(offset):
    got = fd_ref.gradients(kinked_case(offset))
    moves = {  # what moves z1[0, 0]: column 0 of W1 (x[0] has no zeros), b1[0], and x[0, :] (W1[:, 0] != 0)
        "W1": np.zeros((3, 4), bool), "b1": np.zeros(4, bool), "W2": np.zeros((4, 2), bool),
        "b2": np.zeros(2, bool), "x": np.zeros((2, 3), bool),
    }
    moves["W1"][:, 0] = moves["b1"][0] = True
    moves["x"][0] = True
    for name, want in moves.items():
        np.testing.assert_array_equal(got.kink[name], want, err_msg=name)
    assert got.meta["dz_kink"][0][0, 0] and got.meta["dz_kink"][0].sum() == 1


def test_no_kink_flags_when_every_pre_activation_is_far_from_zero():
    rng = np.random.default_rng(7)
    arch = Arch((4, 6, 5, 3), ("relu", "leaky_relu", "elu"), "huber")
    x = rng.standard_normal((8, 4))
    w1, w2, w3 = (rng.standard_normal(s) for s in ((4, 6), (6, 5), (5, 3)))
    z1 = x @ w1
    b1 = np.where(z1.mean(0) > 0, 1.0, -1.0) * 50.0  # shifts every z far from 0
    z2 = np.maximum(z1 + b1, 0) @ w2
    b2 = -z2.mean(0) + np.where(z2.mean(0) > 0, 1, -1) * (np.abs(z2).max() + 10)
    z3 = np.where(z2 + b2 > 0, z2 + b2, 0.01 * (z2 + b2)) @ w3
    b3 = 100.0 - z3.mean(0)
    case = Case(arch, {"W1": w1, "b1": b1, "W2": w2, "b2": b2, "W3": w3, "b3": b3}, x, np.zeros((8, 3)))
    assert min(np.abs(c.z).min() for c in engine.forward(arch, case.params, x)[1]) > 1.0
    got = fd_ref.gradients(case)
    assert not any(k.any() for k in got.kink.values()) and got.meta["retried"] == 0
    eng = engine.gradients(case)
    for name, want in eng.tensors().items():
        assert norm_rel(got.tensors()[name], want) <= NORM_REL_TOL


def test_huber_residual_on_its_boundary_is_a_kink():
    arch = Arch((1, 1), ("identity",), "huber")
    case = Case(arch, {"W1": np.array([[2.0]]), "b1": np.array([0.5])}, np.array([[1.0]]), np.array([[1.5]]))
    assert np.abs(case.x @ case.params["W1"] + case.params["b1"] - case.y) == 1.0  # |a - y| = delta
    got = fd_ref.gradients(case)
    assert got.kink["W1"].all() and got.kink["b1"].all() and got.kink["x"].all()


def test_a_kink_far_enough_for_the_retried_step_is_resolved():
    """z1[0, 0] = 5e-5: +-h (1e-4 * max(|theta|, 1)) crosses it, the retried h / 32 does not."""
    case = kinked_case(5e-5)
    got, eng = fd_ref.gradients(case), engine.gradients(case)
    # W1[:, 0], b1[0], x[0, :] and z1[0, 0] itself move z1[0, 0] by at least 1e-4 at +-h.
    assert got.meta["retried"] == 8 and not any(k.any() for k in got.kink.values())
    for name, want in eng.tensors().items():
        assert np.all(np.abs(got.tensors()[name] - want) <= got.error[name]), name


# -- dtype, chunking, the sparse path --------------------------------------------------------------

def test_float32_case_is_evaluated_in_float64():
    case32 = random_case(np.random.default_rng(3), Arch((3, 4, 2), ("tanh", "sigmoid"), "bce"), 5, np.float32)
    got = fd_ref.gradients(case32)
    ref = fd_ref.gradients(case32.astype(np.float64))
    eng = engine.gradients(case32.astype(np.float64))
    for name, want in eng.tensors().items():
        assert got.tensors()[name].dtype == np.float64
        np.testing.assert_array_equal(got.tensors()[name], ref.tensors()[name])
        assert norm_rel(got.tensors()[name], want) <= NORM_REL_TOL


def _every_path(case, monkeypatch):
    """The FD of case by each path: all families in one pass (fd_dense, chosen for small nets), family by
    family in big chunks, in one-coordinate chunks, and without leaving out unmoved samples."""
    out = {"one pass": fd_ref.gradients(case), "one-coordinate chunks": fd_mlp.mlp_gradients(case, chunk_bytes=1)}
    with monkeypatch.context() as m:
        m.setattr(fd_dense, "fits", lambda net, chunk_bytes: False)
        out["by family"] = fd_mlp.mlp_gradients(case)
        m.setattr(fd_mlp_pass, "SPARSE_BELOW", 0.0)
        out["every sample"] = fd_mlp.mlp_gradients(case)
    return out


@pytest.mark.parametrize("which", ["relu", "deep", "every arch"])
def test_every_path_gives_the_same_answer_within_its_error_and_the_same_kinks(which, monkeypatch):
    if which == "relu":
        cases = [random_case(np.random.default_rng(11), Arch((5, 7, 6, 3), ("relu", "relu", "softmax"), "cross_entropy"), 9)]
    elif which == "deep":  # several layers above a W_1 perturbation: the unit-major GEMMs and their two buffers
        archs = [Arch((4, 6, 5, 7, 3), ("tanh", "tanh", "tanh", "softmax"), "cross_entropy"),
                 Arch((3, 5, 6, 4, 2), ("tanh", "sigmoid", "tanh", "identity"), "mse")]
        cases = [random_case(np.random.default_rng(12 + n), arch, 8 - n) for n, arch in enumerate(archs)]
    else:
        cases = [random_case_for(arch, batch, seed) for seed, (arch, batch) in enumerate(every_arch())]
    for case in cases:
        paths = _every_path(case, monkeypatch)
        assert paths["one pass"].meta["evaluations"] == paths["by family"].meta["evaluations"]
        for path, got in paths.items():
            for name, want in paths["by family"].tensors().items():
                err = np.maximum(got.error[name], paths["by family"].error[name])
                assert np.all(np.abs(got.tensors()[name] - want) <= err), f"{case.arch.label()} {name}: {path}"
                np.testing.assert_array_equal(got.kink[name], paths["by family"].kink[name], err_msg=f"{name}: {path}")


def test_row_coupled_activations_are_exactly_those_that_mix_columns():
    z = np.random.default_rng(0).standard_normal((3, 4))
    for name, rule in RULES.items():
        bumped = z.copy()
        bumped[:, 1] += 0.5
        mixes = not np.array_equal(np.delete(rule.forward(bumped), 1, axis=1), np.delete(rule.forward(z), 1, axis=1))
        assert mixes == (name in fd_mlp_pass.ROW_COUPLED), name


def test_every_loss_is_the_batch_mean_of_per_sample_losses():
    rng = np.random.default_rng(1)
    out, y = rng.standard_normal((6, 3)), rng.random((6, 3))
    for name, rule in LOSS_RULES.items():
        per_sample = rule.forward(out[:, None, :], y[:, None, :])
        assert per_sample.shape == (6,)
        assert per_sample.mean() == pytest.approx(float(rule.forward(out, y)), rel=1e-14), name


# -- the generic path -------------------------------------------------------------------------------

def engine_loss(case: Case):
    """case's loss as a function of params alone, batched over a leading axis (or not)."""
    def loss_fn(params):
        stacked = next(iter(params.values())).ndim == 3 or params["b1"].ndim == 2
        if stacked:
            params = {k: v[:, None, :] if k.startswith("b") else v for k, v in params.items()}
        out, caches = engine.forward(case.arch, params, case.x)
        rule = LOSS_RULES[case.arch.loss]
        return rule.forward(caches[-1].z if rule.from_logits else out, case.y)

    return loss_fn


@pytest.mark.parametrize("batched", [True, False])
def test_generic_central_difference_agrees_with_the_mlp_path(batched):
    case = random_case(np.random.default_rng(5), Arch((3, 4, 2), ("gelu", "softplus"), "mse"), 4)
    mlp = fd_ref.gradients(case)
    generic = fd.central_difference(engine_loss(case), case.params, batched=batched, chunk_bytes=2000)
    assert generic.value == pytest.approx(mlp.loss, rel=1e-14)
    eng = engine.gradients(case)
    for name, want in eng.grads.items():
        assert np.all(np.abs(generic.grads[name] - mlp.grads[name]) <= generic.error[name] + mlp.error[name])
        assert np.all(np.abs(generic.grads[name] - want) <= generic.error[name])
        assert norm_rel(generic.grads[name], want) <= NORM_REL_TOL


def test_generic_path_takes_exact_steps_and_names_bad_user_functions():
    # L = sum(theta^3): D(h) has truncation h^2, which Richardson removes: R is exact up to rounding.
    theta = {"w": np.array([1e3, -2.0, 0.0, 3e-7])}
    got = fd.central_difference(lambda p: float((p["w"] ** 3).sum()), theta)
    assert np.all(np.abs(got.grads["w"] - 3 * theta["w"] ** 2) <= got.error["w"])
    with pytest.raises(UserFunctionError, match="returned shape"):
        fd.central_difference(lambda p: np.zeros(2), theta)
    with pytest.raises(UserFunctionError, match="ZeroDivisionError"):
        fd.central_difference(lambda p: 1 / 0, theta)
    with pytest.raises(UserFunctionError, match="nan"):
        fd.central_difference(lambda p: np.full(len(p["w"]), np.nan), theta, batched=True)
    with pytest.raises(UsageError, match="rel_step"):
        fd.central_difference(lambda p: 0.0, theta, rel_step=2.0)


def test_family_difference_retries_a_kinked_coordinate_with_a_smaller_step():
    """L = sum relu(theta): a kink 1e-7 away stays flagged, one 5e-5 away is resolved by the retry."""
    theta = np.array([1e-7, 5e-5, 1.0, -2.0])

    def run(idx, s, n_kink):
        moved = theta[idx] + s
        change = np.maximum(moved, 0) - np.maximum(theta[idx], 0)
        return change, (np.sign(moved) != np.sign(theta[idx]))[:n_kink]

    h = fd.relative_steps(theta)
    grad, trunc, kink, used = fd.family_difference(h, run, chunk=3, group=2)
    np.testing.assert_array_equal(kink, [True, False, False, False])
    np.testing.assert_array_equal(used, h * [fd.KINK_RETRY, fd.KINK_RETRY, 1, 1])
    np.testing.assert_allclose(grad[1:], [1.0, 1.0, 0.0], atol=1e-12)
    assert np.all(trunc[1:] <= 1e-12)


def test_family_difference_retries_a_step_too_long_for_the_curvature():
    """L = sum sigmoid(k theta): with k = 2e4 the step h = 1e-4 moves sigmoid's input by 2, where Richardson's
    estimate is no bound; that coordinate is redone at h * KINK_RETRY and comes out right, the gentle one is not."""
    k, theta = np.array([2e4, 1.0]), np.array([0.0, 0.3])

    def run(idx, s, n_kink):
        sig = lambda t: 1.0 / (1.0 + np.exp(-k[idx] * t))  # noqa: E731
        return sig(theta[idx] + s) - sig(theta[idx]), np.zeros(n_kink, dtype=bool)

    h = fd.relative_steps(theta)
    grad, trunc, kink, used = fd.family_difference(h, run, chunk=4)
    exact = k * np.exp(-k * theta) / (1.0 + np.exp(-k * theta)) ** 2
    np.testing.assert_array_equal(used, h * [fd.KINK_RETRY, 1])
    assert np.all(np.abs(grad - exact) <= trunc + 1e-12 * np.abs(exact)), (grad, exact, trunc)
    assert not kink.any()


# -- the directional mode ---------------------------------------------------------------------------

def test_directional_values_agree_with_engine_dot_u(pairs):
    rng = np.random.default_rng(9)
    for case, eng, _ in pairs[::3]:
        for include_x in (False, True):
            u = directions.random_directions(case, 3, rng, include_x=include_x)
            values, errors = fd_ref.directional(case, u)
            want = sum((eng.tensors()[n] * u[n]).reshape(3, -1).sum(axis=1) for n in u)
            judged = np.isfinite(errors)
            assert np.all(np.abs(values - want)[judged] <= errors[judged]), case.arch.label()


def test_directional_flags_a_kinked_direction_and_checks_its_input():
    case = kinked_case(0.0)
    u = {n: np.zeros((2, *v.shape)) for n, v in case.params.items()}
    u["b1"][0, 0] = 1.0  # moves z1[0, 0] = 0: cannot be judged
    u["b2"][1, 0] = 1.0  # smooth
    values, errors = fd_ref.directional(case, u)
    assert errors[0] == np.inf and np.isfinite(errors[1])
    assert abs(values[1] - engine.gradients(case).grads["b2"][0]) <= errors[1]
    with pytest.raises(UsageError, match="needs W1, b1, W2, b2"):
        fd_ref.directional(case, {"W1": u["W1"]})
    with pytest.raises(UsageError, match=r"directions\['b1'\] has shape"):
        fd_ref.directional(case, {**u, "b1": u["b1"][:1]})
    with pytest.raises(UsageError, match="all zeros"):
        fd_ref.directional(case, {n: np.zeros((1, *v.shape)) for n, v in case.params.items()})


def test_random_directions_are_unit_and_reproducible():
    case = random_case(np.random.default_rng(0), Arch((3, 4, 2), ("tanh", "identity"), "mse"), 5)
    u = directions.random_directions(case, 6, np.random.default_rng(42), include_x=True)
    again = directions.random_directions(case, 6, np.random.default_rng(42), include_x=True)
    norms = np.sqrt(sum((v.reshape(6, -1) ** 2).sum(axis=1) for v in u.values()))
    np.testing.assert_allclose(norms, 1.0, rtol=1e-14)
    assert set(u) == {*case.params, "x"} and all(np.array_equal(u[n], again[n]) for n in u)
    with pytest.raises(UsageError, match="k=0"):
        directions.random_directions(case, 0, np.random.default_rng(0))
