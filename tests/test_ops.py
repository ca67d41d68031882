"""Every activation and loss rule: its backward against a numerical derivative of its own forward,
its conventions at kinks, and its stability in the tails."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpcheck import ops
from bpcheck.spec import ACTIVATIONS, LOSSES

RNG = np.random.default_rng(0)
Z = np.concatenate([RNG.standard_normal((5, 4)) * 3, np.array([[-7.0, -0.5, 0.5, 7.0]])])


def numerical_vjp(f, z, g, h=1e-6):
    """d/dz of sum(g * f(z)), one coordinate at a time."""
    out = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        out[idx] = ((g * f(zp)).sum() - (g * f(zm)).sum()) / (2 * h)
    return out


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward_matches_its_forward(name):
    rule = ops.RULES[name]
    g = RNG.standard_normal(Z.shape)
    a = rule.forward(Z)
    np.testing.assert_allclose(rule.backward(Z, a, g), numerical_vjp(rule.forward, Z, g), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", LOSSES)
def test_loss_backward_matches_its_forward(name):
    rule = ops.LOSS_RULES[name]
    out = Z * (0.3 if name == "huber" else 1.0)
    y = RNG.random(out.shape) * (2 if name == "cross_entropy" else 1)
    num = numerical_vjp(lambda o: rule.forward(o, y), out, np.ones(()))
    np.testing.assert_allclose(rule.backward(out, y), num, rtol=1e-6, atol=1e-9)


def test_loss_reductions_follow_torch_mean_defaults():
    a = np.array([[0.5, 2.0], [1.0, -1.0]])
    y = np.array([[0.0, 1.0], [1.0, 1.0]])
    assert ops.LOSS_RULES["mse"].forward(a, y) == pytest.approx(np.mean((a - y) ** 2))
    bce = -(y * np.log(ops.sigmoid(a)) + (1 - y) * np.log(1 - ops.sigmoid(a))).mean()
    assert ops.LOSS_RULES["bce"].forward(a, y) == pytest.approx(bce)
    ce = -(y * np.log(ops.softmax(a))).sum(axis=1).mean()
    assert ops.LOSS_RULES["cross_entropy"].forward(a, y) == pytest.approx(ce)
    r = np.abs(a - y)
    assert ops.LOSS_RULES["huber"].forward(a, y) == pytest.approx(np.where(r <= 1, 0.5 * r**2, r - 0.5).mean())


def test_kink_conventions_match_torch_and_jax():
    z, g = np.zeros(3), np.ones(3)
    assert ops.RULES["relu"].backward(z, ops.RULES["relu"].forward(z), g).tolist() == [0, 0, 0]
    assert ops.RULES["leaky_relu"].backward(z, z, g).tolist() == [0.01] * 3
    assert ops.RULES["elu"].backward(z, ops.RULES["elu"].forward(z), g).tolist() == [1, 1, 1]
    for name in ("relu", "leaky_relu", "elu"):
        rule = ops.RULES[name]
        assert rule.kink and rule.at_zero == rule.backward(z, rule.forward(z), g)[0]
    assert not any(ops.RULES[n].kink for n in ("sigmoid", "tanh", "softplus", "gelu", "gelu_tanh", "softmax", "identity"))
    assert ops.RULES["relu"].regions(np.array([-1e-300, 0.0, 5e-324])).tolist() == [-1, 0, 1]


def test_sigmoid_and_softplus_are_stable_in_both_tails():
    z = np.array([-800.0, -40.0, 40.0, 800.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is the right answer
        s = ops.sigmoid(z)
        sp = ops.RULES["softplus"].forward(z)
    assert s[0] == 0.0 and s[1] == pytest.approx(np.exp(-40.0), rel=1e-14) and s[3] == 1.0
    assert sp[1] == pytest.approx(np.exp(-40.0), rel=1e-14) and sp[3] == 800.0
    assert ops.sigmoid(np.float32(-30.0)).dtype == np.float32


def test_bce_and_cross_entropy_are_stable_from_extreme_logits():
    z = np.array([[-500.0, 500.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        assert ops.LOSS_RULES["bce"].forward(z, np.array([[0.0, 1.0]])) == pytest.approx(np.exp(-500.0) / 2, rel=1e-12)
        assert ops.LOSS_RULES["cross_entropy"].forward(z, np.array([[0.0, 1.0]])) == 0.0
        assert ops.LOSS_RULES["bce"].forward(z, np.array([[1.0, 0.0]])) == pytest.approx(500.0)


def test_gelu_is_the_exact_form_and_gelu_tanh_the_approximation():
    z = np.linspace(-4, 4, 9)
    exact = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in z])  # z Phi(z), torch's nn.GELU() default
    np.testing.assert_allclose(ops.RULES["gelu"].forward(z), exact, rtol=1e-14, atol=0)
    tanh_form = 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))
    np.testing.assert_array_equal(ops.RULES["gelu_tanh"].forward(z), tanh_form)
    assert np.abs(ops.RULES["gelu"].forward(z) - tanh_form).max() > 1e-4  # two different functions


def test_gelu_is_accurate_deep_in_its_negative_tail():
    # Phi(z) from the normal cdf, not 1 + erf(z / sqrt 2): the latter keeps no digit at z = -9
    z = np.array([-9.0, -20.0, -40.0])
    want = [v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in z]
    np.testing.assert_allclose(ops.RULES["gelu"].forward(z), want, rtol=1e-13)
    dwant = [0.5 * math.erfc(-v / math.sqrt(2)) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi) for v in z]
    np.testing.assert_allclose(ops.RULES["gelu"].backward(z, None, np.ones(3)), dwant, rtol=1e-13)


def test_cross_entropy_gradient_is_exact_for_rows_not_summing_to_one():
    z = RNG.standard_normal((3, 4))
    y = np.array([[2.0, 0, 0, 0], [0.2, 0.3, 0, 0], [0, 0, 0, 0]])
    expected = (ops.softmax(z) * y.sum(1, keepdims=True) - y) / 3
    np.testing.assert_allclose(ops.LOSS_RULES["cross_entropy"].backward(z, y), expected, rtol=1e-15)


def test_rules_broadcast_over_a_leading_axis_of_copies():
    z = RNG.standard_normal((3, 5, 4))
    y = RNG.random((5, 4))
    for name in LOSSES:
        rule = ops.LOSS_RULES[name]
        stacked = rule.forward(z, y)
        assert stacked.shape == (3,)
        assert stacked[1] == pytest.approx(rule.forward(z[1], y), rel=1e-15)
    np.testing.assert_allclose(ops.softmax(z)[2], ops.softmax(z[2]))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_float32_stays_float32(name):
    z = Z.astype(np.float32)
    rule = ops.RULES[name]
    a = rule.forward(z)
    assert a.dtype == np.float32 and rule.backward(z, a, np.ones_like(z)).dtype == np.float32
