"""The dense and activation layers: numpy backward against torch, jax and central differences; bug shapes;
and the dense layer chained into an MLP gives engine.py's numbers bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from bpcheck import engine
from bpcheck.layers import LAYERS
from bpcheck.layers.dense import backward_with
from bpcheck.ops import LOSS_RULES
from bpcheck.spec import ACTIVATIONS, SpecError

from . import layer_harness as h
from .nets import random_case

N_DRAWS = 50


def dense_shapes(rng):
    return (int(rng.integers(1, 6)),), int(rng.integers(1, 5))


def activation_shapes(rng):
    shape = (int(rng.integers(1, 6)),) if rng.random() < 0.5 else tuple(int(v) for v in rng.integers(1, 4, size=3))
    return shape, int(rng.integers(1, 5))


SHAPES = {"dense": dense_shapes, "activation": activation_shapes}


@pytest.fixture(scope="module", params=sorted(SHAPES))
def kind(request):
    return request.param


def drawn(kind, count=N_DRAWS, seed=15):
    return h.draws(kind, count, seed, SHAPES[kind])


def test_draws_cover_every_activation(kind):
    key = "activation" if kind == "dense" else "fn"
    names = {d.config[key].split(":")[0] for d in drawn(kind)}
    assert names == set(ACTIVATIONS)


def test_forward_equals_reference_and_k_axis(kind):
    layer, rng = LAYERS[kind], np.random.default_rng(1)
    for d in drawn(kind):
        h.forward_checks(layer, d)
        h.reference_k_axis(layer, d, rng)


def test_backward_matches_central_differences_of_the_reference(kind):
    layer = LAYERS[kind]
    for d in drawn(kind):
        h.assert_close(h.engine_grads(layer, d), h.fd_grads(layer, d), h.FD, "numpy vs FD", d)


def test_backward_matches_torch_autograd(kind):
    torch = h.need_torch()
    layer = LAYERS[kind]
    for d in drawn(kind):
        y, grads = h.torch_grads(layer, d, torch)
        assert h.norm_rel(y, h.forward_checks(layer, d)) <= h.EXACT
        h.assert_close(h.engine_grads(layer, d), grads, h.EXACT, "numpy vs torch", d)


def test_backward_matches_jax_vjp(kind):
    jax = h.need_jax()
    layer = LAYERS[kind]
    for d in drawn(kind):
        y, grads = h.jax_grads(layer, d, jax)
        assert h.norm_rel(y, h.forward_checks(layer, d)) <= h.EXACT
        h.assert_close(h.engine_grads(layer, d), grads, h.EXACT, "numpy vs jax", d)


def test_every_bug_shape_differs_where_it_applies(kind):
    layer = LAYERS[kind]
    seen = h.bug_shape_coverage(layer, drawn(kind, count=300, seed=7))
    assert seen and all(seen.values()), {k: v for k, v in seen.items() if not v}


def test_pattern_marks_kinked_activations_only():
    dense, rng = LAYERS["dense"], np.random.default_rng(3)
    params = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    x = rng.standard_normal((5, 3))
    z = x @ params["W"] + params["b"]
    assert dense.pattern({"n": 4, "activation": "tanh"}, params, x) is None
    np.testing.assert_array_equal(dense.pattern({"n": 4, "activation": "relu"}, params, x), np.sign(z))
    # with a leading K axis of copies, as finite differences evaluate
    xs, ps = np.stack([x, -x]), {k: np.stack([v, v]) for k, v in params.items()}
    assert dense.pattern({"n": 4, "activation": "relu"}, ps, xs).shape == (2, 5, 4)
    assert LAYERS["activation"].pattern({"fn": "elu"}, {}, z).tolist() == np.sign(z).tolist()


@pytest.mark.parametrize(("kind", "config", "in_shape", "says"), [
    ("dense", {"n": 4}, (2, 3, 3), "put a flatten before it"),
    ("dense", {"n": 0}, (3,), "n=0 is not a positive int"),
    ("dense", {"n": True}, (3,), "n=True is not a positive int"),
    ("dense", {"n": 2, "activation": "tanhh"}, (3,), "unknown activation 'tanhh'"),
    ("dense", {"n": 2, "act": "tanh"}, (3,), "unknown config key 'act'"),
    ("activation", {}, (3,), "names no function"),
    ("activation", {"fn": "softmax"}, (2, 3, 3), "put a flatten before it"),
])
def test_bad_configs_name_the_value_and_the_fix(kind, config, in_shape, says):
    with pytest.raises(SpecError, match=says.replace("(", r"\(")):
        LAYERS[kind].check_config(config, in_shape)


def test_check_config_fills_defaults():
    assert LAYERS["dense"].check_config({"n": 3}, (2,)) == {"n": 3, "activation": "identity"}
    assert LAYERS["dense"].check_config({"n": 3, "activation": "leaky_relu:0.01"}, (2,))["activation"] == "leaky_relu"


def test_init_draws_what_spec_init_params_draws():
    from bpcheck.spec import Arch, init_params

    arch = Arch((3, 5, 2), ("tanh", "sigmoid"), "mse")
    want = init_params(arch, np.random.default_rng(9))
    rng, shapes = np.random.default_rng(9), (3, 5, 2)
    for pos, (n_in, n) in enumerate(zip(shapes, shapes[1:]), start=1):
        got = LAYERS["dense"].init({"n": n, "activation": "tanh"}, (n_in,), rng, np.float64)
        assert np.array_equal(got["W"], want[f"W{pos}"]) and np.array_equal(got["b"], want[f"b{pos}"])


def test_dense_chain_is_engine_bit_for_bit():
    """Dense layers chained by hand give engine.py's forward and backward on random MLPs, with np.array_equal."""
    dense, rng = LAYERS["dense"], np.random.default_rng(2024)
    for _ in range(60):
        case = random_case(rng)
        arch = case.arch
        a, caches = case.x, []
        for pos, act in enumerate(arch.activations, start=1):
            config = dense.check_config({"n": arch.sizes[pos], "activation": act}, (arch.sizes[pos - 1],))
            p = {"W": case.params[f"W{pos}"], "b": case.params[f"b{pos}"]}
            a, cache = dense.forward(config, p, a)
            caches.append((config, p, cache))
        out, want_caches = engine.forward(arch, case.params, case.x)
        assert np.array_equal(a, out)
        for (_, _, got), want in zip(caches, want_caches):
            assert all(np.array_equal(g, w) for g, w in zip(got, want))
        want = engine.backward(arch, case.params, want_caches, case.y)
        rule = LOSS_RULES[arch.loss]
        last = caches[-1][2]
        g = rule.backward(last.z if rule.from_logits else last.a, case.y)
        grads = {}
        for pos in range(arch.n_layers, 0, -1):
            config, p, cache = caches[pos - 1]
            if pos == arch.n_layers and rule.from_logits:
                g, local = backward_with(p, cache, g)  # the loss is fused with the output activation
            else:
                g, local = dense.backward(config, p, cache, g)
            grads |= {f"{k}{pos}": v for k, v in local.items()}
        assert all(np.array_equal(grads[k], want.grads[k]) for k in want.grads), arch
        assert np.array_equal(g, want.dx)


def test_float32_in_float32_out(kind):
    for d in drawn(kind):
        h.float32_kept(LAYERS[kind], d)


def gelu_draws(kind: str, act: str, count: int = 12, seed: int = 5) -> list[h.Draw]:
    """Draws of kind with act forced, x spread to |z| ~ 9 so both tails (where 1 + erf and 1 + tanh cancel) are hit."""
    out = []
    for d in drawn(kind, count, seed):
        key = "activation" if kind == "dense" else "fn"
        config = LAYERS[kind].check_config({**d.config, key: act}, d.in_shape)
        out.append(h.Draw(config, d.in_shape, d.params, 3.0 * d.x, d.dout))
    return out


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh"])
def test_gelu_and_gelu_tanh_match_torch_jax_and_central_differences(kind, act):
    """gelu is torch's F.gelu(z) (exact) and jax's gelu(approximate=False); gelu_tanh their tanh forms."""
    torch, jax, layer = h.need_torch(), h.need_jax(), LAYERS[kind]
    for d in gelu_draws(kind, act):
        want = h.engine_grads(layer, d)
        h.assert_close(want, h.fd_grads(layer, d), h.FD, f"numpy {act} vs FD", d)
        for name, (y, grads) in (("torch", h.torch_grads(layer, d, torch)), ("jax", h.jax_grads(layer, d, jax))):
            assert h.norm_rel(y, h.forward_checks(layer, d)) <= h.EXACT, (name, act)
            h.assert_close(want, grads, h.EXACT, f"numpy {act} vs {name}", d)
    # and the two forms are different functions: the torch form of the other one is far off
    d = gelu_draws(kind, act)[0]
    other = "gelu_tanh" if act == "gelu" else "gelu"
    key = "activation" if kind == "dense" else "fn"
    y_other, _ = h.torch_grads(layer, h.Draw({**d.config, key: other}, d.in_shape, d.params, d.x, d.dout), torch)
    assert h.norm_rel(y_other, h.forward_checks(layer, d)) > 1e-5
