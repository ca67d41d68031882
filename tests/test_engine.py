"""The engine against a plain, obviously correct central-difference loop, and its contracts."""

from __future__ import annotations

import numpy as np
import pytest

from bpcheck import engine, ops
from bpcheck.spec import ACTIVATIONS, LOSSES, Arch, Case, init_params

from .nets import random_arch, random_case

FD_TOL = 1e-7


def kink_sides(arch, params, x, y) -> np.ndarray:
    """Which side of every kink (relu-family z = 0, huber |a - y| = 1) the forward lands on."""
    out, caches = engine.forward(arch, params, x)
    sides = [ops.RULES[a].regions(c.z).ravel() for a, c in zip(arch.activations, caches) if ops.RULES[a].kink]
    if ops.LOSS_RULES[arch.loss].kink:
        sides.append(ops.LOSS_RULES[arch.loss].regions(out, y).ravel())
    return np.concatenate(sides) if sides else np.zeros(0)


def fd_loop(case: Case) -> dict[str, np.ndarray]:
    """Five-point central differences one coordinate at a time, in float64: slow and obviously right.

    (-L(+2s) + 8 L(+s) - 8 L(-s) + L(-2s)) / 12s has O(s^4) truncation, so s = 1e-3 keeps truncation and
    rounding near 1e-13. Where the stencil would straddle a kink the step shrinks, since the formula assumes a
    smooth function; a coordinate that straddles one even at 1e-7 (an exact zero) is left as NaN.
    """
    arch, x, y = case.arch, case.x.astype(np.float64), case.y.astype(np.float64)
    params = {k: v.astype(np.float64) for k, v in case.params.items()}
    home = kink_sides(arch, params, x, y)
    out = {}
    for name in [*params, "x"]:
        base = x if name == "x" else params[name]
        grad = np.full_like(base, np.nan)
        for idx in np.ndindex(base.shape):
            for h in (1e-3, 1e-5, 1e-7):
                step = h * max(1.0, abs(base[idx]))
                values, smooth = [], True
                for k in (2, 1, -1, -2):
                    moved = base.copy()
                    moved[idx] += k * step
                    p, xx = (params, moved) if name == "x" else ({**params, name: moved}, x)
                    values.append(engine.loss(arch, p, xx, y))
                    smooth &= np.array_equal(kink_sides(arch, p, xx, y), home)
                if smooth:
                    grad[idx] = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * step)
                    break
        out[name] = grad
    return out


def worst_error(case: Case) -> tuple[float, str]:
    """Largest norm-relative error of the engine against fd_loop, over params and dL/dx.

    A tensor whose gradient is tiny next to the whole gradient (a width-1 softmax has exactly zero gradient
    below it) is measured against 1e-5 of the whole gradient's norm, since FD's absolute error cannot reach 0.
    """
    got = engine.gradients(case).tensors()
    ref = fd_loop(case)
    assert not any(np.isnan(v).any() for v in ref.values()), "random nets should not sit exactly on a kink"
    scale = max(1.0, float(np.sqrt(sum(np.sum(v**2) for v in ref.values()))))
    errs = {k: np.linalg.norm(got[k] - ref[k]) / max(np.linalg.norm(ref[k]), np.linalg.norm(got[k]), 1e-5 * scale)
            for k in ref}
    key = max(errs, key=errs.get)
    return errs[key], key


def covering_cases(n: int = 210, seed: int = 2) -> list[Case]:
    """n random nets; every activation and every loss appears, batch 1..16, widths of 1 included."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        act = ACTIVATIONS[i % len(ACTIVATIONS)]
        loss = LOSSES[(i // len(ACTIVATIONS)) % len(LOSSES)]
        arch = random_arch(rng, act if act != "softmax" or loss != "cross_entropy" else None, loss)
        if i % 7 == 0:  # force widths of 1 somewhere
            arch = Arch((1,) + arch.sizes[1:-1] + ((2,) if loss == "cross_entropy" else (1,)), arch.activations, loss)
        cases.append(random_case(rng, arch, batch=1 + i % 16))
    return cases


CASES = covering_cases()


def test_cases_cover_every_activation_loss_batch_and_width_one():
    assert {a for c in CASES for a in c.arch.activations} == set(ACTIVATIONS)
    assert {c.arch.loss for c in CASES} == set(LOSSES)
    assert {c.batch for c in CASES} == set(range(1, 17))
    assert any(1 in c.arch.sizes for c in CASES)
    assert len(CASES) >= 200


def test_engine_matches_plain_central_differences_on_200_nets():
    failures = []
    for i, case in enumerate(CASES):
        err, key = worst_error(case)
        if err > FD_TOL:
            failures.append(f"case {i} {case.arch.label()} batch {case.batch}: d{key} rel err {err:.2e}")
    assert not failures, "\n".join(failures)


def _planted(act_or_loss: str):
    """A backward rule with one plausible bug: sigma' dropped (or the loss gradient off by 1%)."""
    if act_or_loss in ops.LOSS_RULES:
        rule = ops.LOSS_RULES[act_or_loss]
        return act_or_loss, "LOSS", rule.__class__(rule.name, rule.forward, lambda o, y: 1.01 * rule.backward(o, y),
                                                     rule.from_logits, rule.kink)
    rule = ops.RULES[act_or_loss]
    wrong = (lambda z, a, g: 1.01 * g) if act_or_loss == "identity" else (lambda z, a, g: g)
    return act_or_loss, "ACT", rule.__class__(rule.name, rule.forward, wrong, rule.kink, rule.slopes, rule.at_zero)


@pytest.mark.parametrize("name", [a for a in ACTIVATIONS] + list(LOSSES))
def test_a_planted_bug_in_any_backward_rule_is_caught(name, monkeypatch):
    """Test the tester: break one rule and the same FD comparison must fail on the nets that use it."""
    _, kind, broken = _planted(name)
    table = ops.LOSS_RULES if kind == "LOSS" else ops.RULES
    users = [c for c in CASES if (c.arch.loss == name if kind == "LOSS" else name in c.arch.activations[:-1]
                                  or (c.arch.activations[-1] == name and c.arch.loss not in ("bce", "cross_entropy")))]
    assert users, f"no covering case uses {name}"
    monkeypatch.setitem(table, name, broken)
    worst = max(worst_error(c)[0] for c in users[:12])
    assert worst > FD_TOL, f"a broken {name} backward went unnoticed (worst error {worst:.1e})"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_engine_keeps_the_dtype(dtype):
    case = random_case(np.random.default_rng(0), Arch((3, 4, 2), ("tanh", "softmax"), "cross_entropy"), 5, dtype)
    g = engine.gradients(case)
    for arr in [*g.grads.values(), g.dx, *g.dz, *g.da]:
        assert arr.dtype == dtype
    assert isinstance(g.loss, float)


def test_engine_never_mutates_its_inputs():
    rng = np.random.default_rng(1)
    arch = Arch((3, 4, 4, 2), ("relu", "sigmoid", "identity"), "mse")
    params = init_params(arch, rng)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    before = {k: v.copy() for k, v in params.items()}, x.copy(), y.copy()
    _, caches = engine.forward(arch, params, x)
    engine.backward(arch, params, caches, y)
    engine.sgd_step(arch, params, x, y, 0.1)
    assert all(np.array_equal(before[0][k], params[k]) for k in params)
    assert np.array_equal(before[1], x) and np.array_equal(before[2], y)


def test_trace_shapes_and_meaning():
    """dz[l-1] = dL/dz_l and da[l-1] = dL/da_l: dW_l = a_{l-1}^T dz_l and dz_l = da_l * sigma'(z_l)."""
    case = random_case(np.random.default_rng(3), Arch((2, 3, 4, 1), ("tanh", "sigmoid", "identity"), "mse"), 7)
    g = engine.gradients(case)
    _, caches = engine.forward(case.arch, case.params, case.x)
    assert [d.shape for d in g.dz] == [(7, 3), (7, 4), (7, 1)] and [d.shape for d in g.da] == [(7, 3), (7, 4)]
    np.testing.assert_allclose(g.grads["W2"], caches[1].a_prev.T @ g.dz[1])
    np.testing.assert_allclose(g.dz[0], g.da[0] * (1 - caches[0].a ** 2))


def test_sgd_step_and_train_reduce_the_loss():
    rng = np.random.default_rng(4)
    arch = Arch((2, 8, 1), ("tanh", "identity"), "mse")
    x = rng.standard_normal((32, 2))
    y = np.sin(x[:, :1]) + x[:, 1:] ** 2
    params, history = engine.train(arch, init_params(arch, rng), x, y, lr=0.05, epochs=300)
    assert len(history) == 300 and history[-1] < 0.5 * history[0]
    new, before = engine.sgd_step(arch, params, x, y, 0.05)
    assert before == pytest.approx(history[-1], rel=0.05) and set(new) == set(params)
