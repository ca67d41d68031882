"""The CNN layer kinds (conv2d, maxpool2d, avgpool2d, flatten) against torch, jax, finite differences and each other.

Every test draws ~50 configs per kind with the kind's own draw_config (a seeded numpy rng, small shapes, float64)
and random params, inputs and cotangents (never all ones). Errors are max |a - b| / max(1, max |b|): relative for
large values, absolute for small ones. torch and jax tests skip with the reason where the framework is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

from bpcheck.layers import LAYERS
from bpcheck.spec import SpecError

KINDS = ("conv2d", "maxpool2d", "avgpool2d", "flatten")
N_CONFIGS = 50
# jax compiles every new shape (~0.5 s a config here, most of this file's time), so it sees fewer configs; torch and
# the central differences see all N_CONFIGS.
N_JAX = 25
EXACT = 1e-12   # two exact gradients (or forwards) of the same function in float64
FD = 1e-7       # a central difference against an exact gradient
STEP = 1e-6


def err(got: np.ndarray, want: np.ndarray) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.abs(got - want).max(initial=0.0) / max(1.0, np.abs(want).max(initial=0.0)))


def draw_cases(kind: str, seed: int, n: int = N_CONFIGS, tied: bool = False):
    """n (config, in_shape, params, x, dy) for kind: in_shape C 1..3, H and W 1..7, batch 1..3. tied: x from {0, 1, 2},
    so windows hold equal values (ties) on purpose."""
    rng = np.random.default_rng(seed)
    layer = LAYERS[kind]
    out = []
    while len(out) < n:
        in_shape = (int(rng.integers(1, 4)), int(rng.integers(1, 8)), int(rng.integers(1, 8)))
        config = layer.draw_config(rng, in_shape)
        assert config is not None, (kind, in_shape)
        params = {k: rng.standard_normal(s) for k, s in layer.param_shapes(config, in_shape).items()}
        batch = (int(rng.integers(1, 4)), *in_shape)
        x = rng.integers(0, 3, batch).astype(np.float64) if tied else rng.standard_normal(batch)
        dy = rng.standard_normal((batch[0], *layer.out_shape(config, in_shape)))
        out.append((config, in_shape, params, x, dy))
    return out


def ids(cases):
    return [f"{i}" for i in range(len(cases))]


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="torch is not installed: pip install torch==2.13.0 (or bpcheck[torch])")


@pytest.fixture(scope="module")
def jax():
    jax = pytest.importorskip("jax", reason="jax is not installed: pip install jax (or bpcheck[jax])")
    jax.config.update("jax_enable_x64", True)
    return jax


def torch_grads(layer, config, params, x, dy, torch):
    xt = torch.tensor(x, requires_grad=True)
    pt = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    y = layer.torch(config, pt, xt, torch)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), xt.grad.numpy(), {k: v.grad.numpy() for k, v in pt.items()}


def jax_grads(layer, config, params, x, dy, jax):
    def forward_and_vjp(p, xx, d):  # one compile for both (op by op, jax compiles each primitive per shape)
        y, vjp = jax.vjp(lambda p, xx: layer.jax(config, p, xx, jax), p, xx)
        return (y, *vjp(d))

    y, dp, dx = jax.jit(forward_and_vjp)(params, x, dy)
    return np.asarray(y), np.asarray(dx), {k: np.asarray(v) for k, v in dp.items()}


def central_differences(layer, config, params, x, dy):
    """d<reference(x), dy>/d(every coordinate of x and of every param), one coordinate at a time."""
    def f(p, xx):
        return float(np.vdot(layer.reference(config, p, xx), dy))

    def diff(array, evaluate):
        g = np.zeros_like(array)
        for i in np.ndindex(array.shape):
            old = array[i]
            array[i] = old + STEP
            up = evaluate()
            array[i] = old - STEP
            down = evaluate()
            array[i] = old
            g[i] = (up - down) / (2 * STEP)
        return g

    x, params = x.copy(), {k: v.copy() for k, v in params.items()}
    return diff(x, lambda: f(params, x)), {k: diff(v, lambda: f(params, x)) for k, v in params.items()}


@pytest.mark.parametrize("kind", KINDS)
def test_forward_matches_reference_and_shapes(kind):
    layer = LAYERS[kind]
    for config, in_shape, params, x, _ in draw_cases(kind, 1):
        y, _ = layer.forward(config, params, x)
        assert y.shape == (x.shape[0], *layer.out_shape(config, in_shape))
        assert err(y, layer.reference(config, params, x)) <= EXACT, config
        assert layer.check_config(config, in_shape) == config  # a drawn config is already checked and complete


@pytest.mark.parametrize("kind", KINDS)
def test_reference_takes_k_perturbed_copies(kind):
    layer = LAYERS[kind]
    rng = np.random.default_rng(2)
    for config, _, params, x, _ in draw_cases(kind, 2, n=20):
        k = 3
        xs = x + 0.1 * rng.standard_normal((k, *x.shape))
        ps = {name: v + 0.1 * rng.standard_normal((k, *v.shape)) for name, v in params.items()}
        one_by_one = np.stack([layer.reference(config, {n: v[i] for n, v in ps.items()}, xs[i]) for i in range(k)])
        assert err(layer.reference(config, ps, xs), one_by_one) <= EXACT
        # only x perturbed (params shared), and only the params perturbed (x shared)
        shared_params = np.stack([layer.reference(config, params, xs[i]) for i in range(k)])
        assert err(layer.reference(config, params, xs), shared_params) <= EXACT
        if params:
            shared_x = np.stack([layer.reference(config, {n: v[i] for n, v in ps.items()}, x) for i in range(k)])
            assert err(layer.reference(config, ps, x), shared_x) <= EXACT


@pytest.mark.parametrize("kind", KINDS)
def test_backward_matches_central_differences_of_the_reference(kind):
    layer = LAYERS[kind]
    for config, _, params, x, dy in draw_cases(kind, 3):
        _, cache = layer.forward(config, params, x)
        dx, grads = layer.backward(config, params, cache, dy)
        fd_dx, fd_grads = central_differences(layer, config, params, x, dy)
        assert err(dx, fd_dx) <= FD, config
        assert set(grads) == set(params)
        for name in params:
            assert err(grads[name], fd_grads[name]) <= FD, (config, name)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_and_backward_match_torch_autograd(kind, torch):
    layer = LAYERS[kind]
    for config, _, params, x, dy in draw_cases(kind, 4):
        y, cache = layer.forward(config, params, x)
        dx, grads = layer.backward(config, params, cache, dy)
        ty, tdx, tgrads = torch_grads(layer, config, params, x, dy, torch)
        assert err(y, ty) <= EXACT and err(dx, tdx) <= EXACT, config
        for name in params:
            assert err(grads[name], tgrads[name]) <= EXACT, (config, name)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_and_backward_match_jax_vjp(kind, jax):
    layer = LAYERS[kind]
    for config, _, params, x, dy in draw_cases(kind, 5, n=N_JAX):
        y, cache = layer.forward(config, params, x)
        dx, grads = layer.backward(config, params, cache, dy)
        jy, jdx, jgrads = jax_grads(layer, config, params, x, dy, jax)
        assert err(y, jy) <= EXACT and err(dx, jdx) <= EXACT, config
        for name in params:
            assert err(grads[name], jgrads[name]) <= EXACT, (config, name)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_stays_float32_and_near_float64(kind):
    layer = LAYERS[kind]
    for config, _, params, x, dy in draw_cases(kind, 10, n=10):
        p32 = {k: v.astype(np.float32) for k, v in params.items()}
        y32, cache = layer.forward(config, p32, x.astype(np.float32))
        dx32, grads32 = layer.backward(config, p32, cache, dy.astype(np.float32))
        y, cache = layer.forward(config, params, x)
        dx, grads = layer.backward(config, params, cache, dy)
        assert y32.dtype == dx32.dtype == np.float32 and all(g.dtype == np.float32 for g in grads32.values())
        assert err(y32, y) < 1e-5 and err(dx32, dx) < 1e-5 and all(err(grads32[k], grads[k]) < 1e-5 for k in grads)


def _differs(a: np.ndarray, b: np.ndarray) -> bool:
    return np.abs(a - b).max(initial=0.0) > 1e-6 * max(1.0, np.abs(b).max(initial=0.0))


@pytest.mark.parametrize("kind", KINDS)
def test_every_bug_shape_differs_where_it_applies_and_only_there(kind):
    """Each bug shape changes the backward on some drawn config it applies to (on continuous or tied inputs), keeps
    every shape, and computes the right backward wherever `applies` says it does not apply."""
    layer = LAYERS[kind]
    assert len(layer.bug_shapes) >= 2 and len({b.code for b in layer.bug_shapes}) == len(layer.bug_shapes)
    caught = {b.code: 0 for b in layer.bug_shapes}
    for case in draw_cases(kind, 6) + draw_cases(kind, 7, tied=True):
        config, in_shape, params, x, dy = case
        _, cache = layer.forward(config, params, x)
        dx, grads = layer.backward(config, params, cache, dy)
        for bug in layer.bug_shapes:
            bdx, bgrads = bug.backward(config, params, cache, dy)
            assert bdx.shape == dx.shape and {k: v.shape for k, v in bgrads.items()} == {k: v.shape for k, v in grads.items()}
            differs = _differs(bdx, dx) or any(_differs(bgrads[k], grads[k]) for k in grads)
            if bug.applies(config, in_shape):
                caught[bug.code] += differs
            else:
                assert not differs, (bug.code, config, in_shape)
    assert all(caught.values()), caught
    assert all(b.says.startswith(kind) for b in layer.bug_shapes)  # each sentence names the layer it is about


def test_conv2d_init_is_he_normal_with_zero_bias():
    layer = LAYERS["conv2d"]
    config = layer.check_config({"out_channels": 64, "kernel": 3}, (8, 5, 5))
    params = layer.init(config, (8, 5, 5), np.random.default_rng(0), np.float32)
    assert params["W"].shape == (64, 8, 3, 3) and params["W"].dtype == np.float32
    assert abs(params["W"].std() / np.sqrt(2.0 / (8 * 9)) - 1) < 0.05
    assert params["b"].shape == (64,) and not params["b"].any()


def test_conv2d_config_defaults_and_bad_values():
    layer = LAYERS["conv2d"]
    assert layer.check_config({"out_channels": 2, "kernel": [3, 2]}, (1, 4, 4)) == {
        "out_channels": 2, "kernel": [3, 2], "stride": 1, "padding": 0}
    assert layer.out_shape(layer.check_config({"out_channels": 2, "kernel": 3, "stride": 2, "padding": 1}, (1, 5, 6)),
                           (1, 5, 6)) == (2, 3, 3)
    bad = [({"out_channels": 2, "kernel": 5}, (1, 4, 4), r"kernel 5 is larger than the input height 4.*at most 4"),
           ({"out_channels": 2, "kernel": 7, "padding": 1}, (1, 4, 9), r"kernel 7 .* height 4 padded by 1 .* to 6"),
           ({"out_channels": 0, "kernel": 1}, (1, 4, 4), r"out_channels 0 is not an integer >= 1"),
           ({"out_channels": 2, "kernel": 1, "stride": 0}, (1, 4, 4), r"stride 0 is not an integer >= 1"),
           ({"out_channels": 2, "kernel": 1, "padding": -1}, (1, 4, 4), r"padding -1 is not an integer >= 0"),
           ({"out_channels": 2, "kernel": [1, 2, 3]}, (1, 4, 4), r"kernel \[1, 2, 3\] does not have 2 entries"),
           ({"out_channels": True, "kernel": 1}, (1, 4, 4), r"out_channels True"),
           ({"out_channels": 2, "kernal": 1}, (1, 4, 4), r"unknown config key 'kernal' \(did you mean 'kernel'\?\)"),
           ({"out_channels": 2}, (1, 4, 4), r"needs 'kernel'"),
           ({"out_channels": 2, "kernel": 1}, (16,), r"needs an image input \(C, H, W\).*\(16,\)")]
    for config, in_shape, message in bad:
        with pytest.raises(SpecError, match=message):
            layer.check_config(config, in_shape)
    assert layer.draw_config(np.random.default_rng(0), (16,)) is None


def _tied_windows(config, x) -> int:
    """How many windows of x hold their maximum more than once."""
    (kh, kw), (sh, sw) = (np.broadcast_to(config[k], 2) for k in ("kernel", "stride"))
    w = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(-2, -1))[..., ::sh, ::sw, :, :]
    w = w.reshape(*w.shape[:-2], -1)
    return int(((w == w.max(axis=-1, keepdims=True)).sum(axis=-1) > 1).sum())


def test_maxpool2d_ties_follow_torch(torch):
    """On inputs from {0, 1, 2} (ties in most windows), the gradient goes where torch autograd puts it: to the first
    maximum in row-major window order, exactly one per window."""
    layer = LAYERS["maxpool2d"]
    ties = 0
    for config, _, params, x, dy in draw_cases("maxpool2d", 8, tied=True):
        ties += _tied_windows(config, x)
        y, cache = layer.forward(config, params, x)
        dx, _ = layer.backward(config, params, cache, dy)
        ty, tdx, _ = torch_grads(layer, config, params, x, dy, torch)
        assert err(y, ty) <= EXACT and err(dx, tdx) <= EXACT, config
    assert ties > 100  # the ties were really there
    # the rule written down, on one window of four equal maxima and one where the last two tie
    x = np.array([[[[1.0, 1.0], [1.0, 1.0]]], [[[0.0, -1.0], [3.0, 3.0]]]])
    y, cache = layer.forward({"kernel": 2, "stride": 2}, {}, x)
    dx, _ = layer.backward({"kernel": 2, "stride": 2}, {}, cache, np.array([[[[5.0]]], [[[7.0]]]]))
    assert dx.tolist() == [[[[5.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [7.0, 0.0]]]]
    assert err(dx, torch_grads(layer, {"kernel": 2, "stride": 2}, {}, x, np.array([[[[5.0]]], [[[7.0]]]]), torch)[1]) == 0


def test_maxpool2d_ties_follow_jax_too(jax):
    layer = LAYERS["maxpool2d"]
    for config, _, params, x, dy in draw_cases("maxpool2d", 8, n=12, tied=True):
        _, cache = layer.forward(config, params, x)
        dx, _ = layer.backward(config, params, cache, dy)
        assert err(dx, jax_grads(layer, config, params, x, dy, jax)[1]) <= EXACT, config


def test_maxpool2d_pattern_names_the_argmax_and_moves_across_a_tie():
    layer = LAYERS["maxpool2d"]
    for config, _, params, x, _ in draw_cases("maxpool2d", 9, n=20):
        _, (_, _, first_max) = layer.forward(config, params, x)
        assert np.array_equal(layer.pattern(config, params, x), first_max)
        xs = np.stack([x, x + 1e-3])
        assert np.array_equal(layer.pattern(config, params, xs)[1], layer.pattern(config, params, x + 1e-3))
    x = np.array([[[[1.0, 1.0]]]])
    up, down = x.copy(), x.copy()
    up[0, 0, 0, 1] += 1e-9
    down[0, 0, 0, 1] -= 1e-9
    config = {"kernel": [1, 2], "stride": [1, 2]}
    assert layer.pattern(config, {}, up).item() == 1 and layer.pattern(config, {}, down).item() == 0
    for kind in ("conv2d", "avgpool2d", "flatten"):
        assert LAYERS[kind].pattern is None  # smooth: no kinks to avoid


@pytest.mark.parametrize("kind", ["maxpool2d", "avgpool2d"])
def test_pool_config_defaults_and_bad_values(kind):
    layer = LAYERS[kind]
    assert layer.check_config({"kernel": 2}, (3, 5, 4)) == {"kernel": 2, "stride": 2}
    assert layer.check_config({"kernel": [3, 1], "stride": 1}, (3, 5, 4)) == {"kernel": [3, 1], "stride": 1}
    assert layer.out_shape({"kernel": 2, "stride": 2}, (3, 5, 4)) == (3, 2, 2)
    assert layer.param_shapes({"kernel": 2, "stride": 2}, (3, 5, 4)) == {}
    assert layer.init({"kernel": 2, "stride": 2}, (3, 5, 4), np.random.default_rng(0), np.float64) == {}
    bad = [({"kernel": 6}, (1, 5, 9), r"kernel 6 is larger than the input height 5: use a kernel of at most 5"),
           ({"kernel": [2, 5]}, (1, 5, 4), r"kernel 5 is larger than the input width 4"),
           ({"kernel": 2, "stride": 0}, (1, 4, 4), r"stride 0 is not an integer >= 1"),
           ({"kernel": 2, "padding": 1}, (1, 4, 4), r"unknown config key 'padding'"),
           ({}, (1, 4, 4), r"config needs 'kernel'"),
           ({"kernel": 2}, (16,), r"needs an image input")]
    for config, in_shape, message in bad:
        with pytest.raises(SpecError, match=f"{kind}: {message}"):
            layer.check_config(config, in_shape)


def test_flatten_config_and_order():
    layer = LAYERS["flatten"]
    assert layer.check_config({}, (2, 3, 4)) == {} and layer.out_shape({}, (2, 3, 4)) == (24,)
    with pytest.raises(SpecError, match=r"flatten: needs an image input \(C, H, W\) per sample, got shape \(24,\)"):
        layer.check_config({}, (24,))
    with pytest.raises(SpecError, match=r"flatten: unknown config key 'n'"):
        layer.check_config({"n": 3}, (2, 3, 4))
    x = np.arange(24.0).reshape(1, 2, 3, 4)
    y, cache = layer.forward({}, {}, x)
    assert y[0, :5].tolist() == [0, 1, 2, 3, 4]  # row-major: w fastest, then h, then c
    assert np.array_equal(layer.backward({}, {}, cache, y)[0], x)


def worst_errors() -> dict[str, dict[str, float]]:
    """The largest error of each kind against each witness, over the configs the tests above draw (same seeds)."""
    import jax as jax_module
    import torch as torch_module

    jax_module.config.update("jax_enable_x64", True)
    table = {}
    for kind in KINDS:
        layer, worst = LAYERS[kind], {}
        for witness, seed, n in (("torch", 4, N_CONFIGS), ("jax", 5, N_JAX), ("fd", 3, N_CONFIGS), ("reference", 1, N_CONFIGS)):
            for config, _, params, x, dy in draw_cases(kind, seed, n=n):
                y, cache = layer.forward(config, params, x)
                dx, grads = layer.backward(config, params, cache, dy)
                if witness == "reference":
                    pairs = [(y, layer.reference(config, params, x))]
                elif witness == "fd":
                    fdx, fgrads = central_differences(layer, config, params, x, dy)
                    pairs = [(dx, fdx)] + [(grads[k], fgrads[k]) for k in grads]
                else:
                    oy, odx, ograds = (torch_grads(layer, config, params, x, dy, torch_module) if witness == "torch"
                                       else jax_grads(layer, config, params, x, dy, jax_module))
                    pairs = [(y, oy), (dx, odx)] + [(grads[k], ograds[k]) for k in grads]
                worst[witness] = max([worst.get(witness, 0.0)] + [err(a, b) for a, b in pairs])
        table[kind] = worst
    return table


if __name__ == "__main__":  # python -m tests.test_layers_cnn: the README's table of errors
    for kind, worst in worst_errors().items():
        print(kind, "  ".join(f"{w} {e:.1e}" for w, e in worst.items()))
