"""batchnorm, layernorm and dropout: numpy backward against torch autograd, jax.vjp and central differences of
the independent reference, with random cotangents; every bug shape caught on some drawn config; the layernorm
bug that is right for a ones cotangent shown to agree there and differ for a random one."""

from __future__ import annotations

import numpy as np
import pytest

from bpcheck.layers import LAYERS
from bpcheck.spec import SpecError

from . import layer_harness as h

N_DRAWS = 50


def norm_shapes(rng):
    """(D,) or (C, H, W) per sample, batch 1..4."""
    if rng.random() < 0.5:
        return (int(rng.integers(1, 6)),), int(rng.integers(1, 5))
    return tuple(int(v) for v in rng.integers(1, 4, size=3)), int(rng.integers(1, 4))


KINDS = ("batchnorm", "layernorm", "dropout")


@pytest.fixture(scope="module", params=KINDS)
def kind(request):
    return request.param


def drawn(kind, count=N_DRAWS, seed=16):
    return h.draws(kind, count, seed, norm_shapes)


def test_draws_cover_both_input_ranks_and_batch_one(kind):
    ds = drawn(kind)
    assert {len(d.in_shape) for d in ds} == {1, 3}
    assert any(d.x.shape[0] == 1 for d in ds) and any(d.x.shape[0] > 1 for d in ds)


def test_forward_equals_reference_and_k_axis(kind):
    layer, rng = LAYERS[kind], np.random.default_rng(1)
    for d in drawn(kind):
        h.forward_checks(layer, d)
        h.reference_k_axis(layer, d, rng)


def test_backward_matches_central_differences_of_the_reference(kind):
    layer = LAYERS[kind]
    for d in drawn(kind):
        h.assert_close(h.engine_grads(layer, d), h.fd_grads(layer, d, smooth=True), h.FD, "numpy vs FD", d)


def floors(kind, d):
    """The size of the terms each gradient of a normalisation is a difference of, what two exact producers can
    agree to relative to (float64 rounds each term to ~1e-16 of its size).

    dx: terms of size |gamma dy| / sqrt(var + eps); over two values per statistic xhat is nearly +-1 and dx
    nearly 0 (1e-5 against terms of 1). dgamma = sum(dy xhat): xhat = (x - mean) / sqrt(var + eps) carries the
    rounding of x - mean, ~1e-16 |x| / sqrt(var + eps), which is all there is where a statistic has one value
    (xhat is 0: numpy gives dgamma = 0 exactly, torch ~1e-14).
    """
    if kind == "dropout":
        return {}
    layer = LAYERS[kind]
    _, cache = layer.forward(d.config, d.params, d.x)
    gamma = d.params["gamma"] if kind == "layernorm" or d.x.ndim == 2 else d.params["gamma"][:, None, None]
    param_axes = 0 if kind == "layernorm" else cache.axes
    return {"x": float(np.linalg.norm(cache.inv * gamma * d.dout)),
            "gamma": float(np.linalg.norm((np.abs(d.dout * d.x) * cache.inv).sum(axis=param_axes)))}


def test_backward_matches_torch_autograd(kind):
    torch = h.need_torch()
    layer = LAYERS[kind]
    for d in drawn(kind):
        y, grads = h.torch_grads(layer, d, torch)
        assert h.norm_rel(y, h.forward_checks(layer, d)) <= h.EXACT
        h.assert_close(h.engine_grads(layer, d), grads, h.EXACT, "numpy vs torch", d, floors(kind, d))


def test_backward_matches_jax_vjp(kind):
    jax = h.need_jax()
    layer = LAYERS[kind]
    for d in drawn(kind):
        y, grads = h.jax_grads(layer, d, jax)
        assert h.norm_rel(y, h.forward_checks(layer, d)) <= h.EXACT
        h.assert_close(h.engine_grads(layer, d), grads, h.EXACT, "numpy vs jax", d, floors(kind, d))


def test_every_bug_shape_differs_where_it_applies(kind):
    seen = h.bug_shape_coverage(LAYERS[kind], drawn(kind, count=100, seed=7))
    assert seen and all(seen.values()), {k: v for k, v in seen.items() if not v}


def _grads_under(layer, bug, d, dout):
    _, cache = layer.forward(d.config, d.params, d.x)
    right = layer.backward(d.config, d.params, cache, dout)
    wrong = bug.backward(d.config, d.params, cache, dout)
    return right[0], wrong[0]


def test_layernorm_ones_cotangent_bug_agrees_for_ones_and_differs_for_random():
    layer = LAYERS["layernorm"]
    bug = layer.bug_shape("ones_cotangent")
    for d in drawn("layernorm", count=20, seed=3):
        right, wrong = _grads_under(layer, bug, d, np.ones_like(d.dout))
        np.testing.assert_allclose(wrong, right, rtol=1e-12, atol=1e-12)
        if d.x[0].size > 1:  # a one-value sample has dx = 0 whatever dout is
            right, wrong = _grads_under(layer, bug, d, d.dout)
            assert h.norm_rel(wrong, right) > 1e-3, d.config


def test_dropout_mask_is_the_contract_and_shared_by_every_form():
    layer, config = LAYERS["dropout"], {"p": 0.5, "seed": 11}
    x = np.ones((4, 6))
    kept = np.random.default_rng(11).random(x.shape) >= 0.5
    y, _ = layer.forward(config, {}, x)
    np.testing.assert_array_equal(y, np.where(kept, 2.0, 0.0))
    np.testing.assert_array_equal(layer.reference(config, {}, x), y)
    assert 0 < kept.sum() < kept.size  # the mask drops something and keeps something


def test_batchnorm_uses_the_biased_variance():
    layer = LAYERS["batchnorm"]
    x = np.array([[0.0], [2.0]])  # mean 1, biased var 1 (unbiased would be 2)
    y, _ = layer.forward({"eps": 0.0 + 1e-300}, {"gamma": np.ones(1), "beta": np.zeros(1)}, x)
    np.testing.assert_allclose(y[:, 0], [-1.0, 1.0], rtol=1e-15)


@pytest.mark.parametrize(("kind", "config", "in_shape", "says"), [
    ("batchnorm", {"eps": 0}, (3,), "eps=0 is not a finite number > 0"),
    ("batchnorm", {"eps": 1e-5}, (3, 4), "neither \\(D,\\) nor \\(C, H, W\\)"),
    ("layernorm", {"momentum": 0.1}, (3,), "unknown config key 'momentum'"),
    ("dropout", {"p": 1.0, "seed": 0}, (3,), "p=1.0 is not a drop probability in \\[0, 1\\)"),
    ("dropout", {"p": 0.5, "seed": -1}, (3,), "seed=-1 is not an int >= 0"),
    ("dropout", {"seed": 1}, (3,), "p=None is not a drop probability"),
])
def test_bad_configs_name_the_value_and_the_fix(kind, config, in_shape, says):
    with pytest.raises(SpecError, match=says):
        LAYERS[kind].check_config(config, in_shape)


def test_check_config_fills_defaults():
    assert LAYERS["batchnorm"].check_config({}, (3,)) == {"eps": 1e-5}
    assert LAYERS["layernorm"].check_config({}, (2, 3, 3)) == {"eps": 1e-5}
    assert LAYERS["dropout"].check_config({"p": 0.25}, (3,)) == {"p": 0.25, "seed": 0}
    assert LAYERS["batchnorm"].param_shapes({"eps": 1e-5}, (4, 2, 2)) == {"gamma": (4,), "beta": (4,)}
    assert LAYERS["layernorm"].param_shapes({"eps": 1e-5}, (4, 2, 2)) == {"gamma": (4, 2, 2), "beta": (4, 2, 2)}


def test_float32_in_float32_out(kind):
    for d in drawn(kind):
        h.float32_kept(LAYERS[kind], d)
