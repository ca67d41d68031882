"""One layer kind against torch autograd, jax.vjp, a central-difference loop over its reference, and its bug shapes.

Every draw is seeded numpy: in_shape from the test's own chooser, config from the kind's draw_config, params and
x standard normal (not init's zero biases, so every gradient is exercised), and a RANDOM cotangent dout (a
backward that ignores dout, or is right only for ones, passes a ones cotangent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from bpcheck.layers import LAYERS, Layer

EXACT = 1e-12   # float64 norm-relative error between two exact gradients (numpy, torch, jax)
FD = 1e-7       # the same against a central difference of <reference(x), dout>
FD_STEP = 1e-5
SMOOTH_STEP = 1e-3


@dataclass
class Draw:
    config: dict
    in_shape: tuple[int, ...]
    params: dict[str, np.ndarray]
    x: np.ndarray
    dout: np.ndarray


def draws(kind: str, count: int, seed: int, shapes: Callable[[np.random.Generator], tuple[tuple[int, ...], int]]
          ) -> list[Draw]:
    """count draws of kind; shapes(rng) -> (per-sample in_shape, batch)."""
    layer = LAYERS[kind]
    rng = np.random.default_rng(seed)
    out: list[Draw] = []
    while len(out) < count:
        in_shape, batch = shapes(rng)
        drawn = layer.draw_config(rng, in_shape)
        if drawn is None:
            continue
        config = layer.check_config(drawn, in_shape)
        params = {k: rng.standard_normal(s) for k, s in layer.param_shapes(config, in_shape).items()}
        x = rng.standard_normal((batch, *in_shape))
        dout = rng.standard_normal((batch, *layer.out_shape(config, in_shape)))
        out.append(Draw(config, in_shape, params, x, dout))
    return out


def norm_rel(a: np.ndarray, b: np.ndarray, floor: float = 0.0) -> float:
    """||a - b|| / max(||a||, ||b||, floor); floor: the size of terms that a and b are the difference of."""
    assert a.shape == b.shape, f"{a.shape} vs {b.shape}"
    scale = max(np.linalg.norm(a), np.linalg.norm(b), floor)
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def engine_grads(layer: Layer, d: Draw) -> dict[str, np.ndarray]:
    """The layer's numpy backward: {'x': dx, name: dparam}."""
    _, cache = layer.forward(d.config, d.params, d.x)
    dx, grads = layer.backward(d.config, d.params, cache, d.dout)
    assert set(grads) == set(d.params)
    return {"x": dx, **grads}


def torch_grads(layer: Layer, d: Draw, torch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    leaves = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in d.params.items()}
    x = torch.tensor(d.x, dtype=torch.float64, requires_grad=True)
    y = layer.torch(d.config, leaves, x, torch)
    y.backward(torch.tensor(d.dout))
    grads = {"x": x.grad.numpy()} | {k: (t.grad.numpy() if t.grad is not None else np.zeros(t.shape))
                                     for k, t in leaves.items()}
    return y.detach().numpy(), grads


def jax_grads(layer: Layer, d: Draw, jax) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    jax.config.update("jax_enable_x64", True)
    y, vjp = jax.vjp(lambda x, p: layer.jax(d.config, p, x, jax), d.x, d.params)
    gx, gp = vjp(jax.numpy.asarray(d.dout))
    return np.asarray(y), {"x": np.asarray(gx)} | {k: np.asarray(v) for k, v in gp.items()}


def fd_grads(layer: Layer, d: Draw, step: float = FD_STEP, smooth: bool = False) -> dict[str, np.ndarray]:
    """d<reference(x), dout>/d(x and each param) by a plain central-difference loop, one coordinate at a time.

    smooth: the layer has no kinks, so the five-point stencil with a larger step (SMOOTH_STEP) can cut the
    rounding error, eps |<y, dout>| / step, which swamps a gradient that is small against the output (a
    normalisation over two values is nearly flat: dx ~ 1e-5 against |y| ~ 1).
    """
    def f(x: np.ndarray, params: dict[str, np.ndarray]) -> float:
        return float(np.vdot(layer.reference(d.config, params, x), d.dout))

    # (k, w): w (f(x + k step) - f(x - k step)), a difference per pair, so a constant f gives exactly 0
    weights = ((1, 8 / 12), (2, -1 / 12)) if smooth else ((1, 0.5),)
    step = SMOOTH_STEP if smooth else step
    out = {}
    for name in ("x", *d.params):
        base = d.x if name == "x" else d.params[name]
        grad = np.zeros_like(base)
        for i in np.ndindex(base.shape):
            total = 0.0
            for k, w in weights:
                vals = []
                for sign in (1, -1):
                    moved = base.copy()
                    moved[i] += sign * k * step
                    vals.append(f(moved, d.params) if name == "x" else f(d.x, d.params | {name: moved}))
                total += w * (vals[0] - vals[1])
            grad[i] = total / step
        out[name] = grad
    return out


def assert_close(got: dict[str, np.ndarray], want: dict[str, np.ndarray], tol: float, what: str, d: Draw,
                 floors: dict[str, float] | None = None) -> None:
    assert set(got) == set(want)
    for k in want:
        err = norm_rel(got[k], want[k], (floors or {}).get(k, 0.0))
        assert err <= tol, f"{what}: d{k} norm-rel error {err:.3g} > {tol:g} for config {d.config}, in_shape {d.in_shape}"


def reference_k_axis(layer: Layer, d: Draw, rng: np.random.Generator, k: int = 3) -> None:
    """reference on K stacked perturbed copies equals K separate calls."""
    xs = d.x + 0.01 * rng.standard_normal((k, *d.x.shape))
    ps = {n: v + 0.01 * rng.standard_normal((k, *v.shape)) for n, v in d.params.items()}
    stacked = layer.reference(d.config, ps, xs)
    assert stacked.shape == (k, *d.dout.shape)
    for i in range(k):
        one = layer.reference(d.config, {n: v[i] for n, v in ps.items()}, xs[i])
        np.testing.assert_allclose(stacked[i], one, rtol=1e-14, atol=1e-300)


def forward_checks(layer: Layer, d: Draw) -> np.ndarray:
    """forward == reference (<= EXACT); returns the forward's output."""
    y, _ = layer.forward(d.config, d.params, d.x)
    assert y.shape == d.dout.shape
    assert norm_rel(y, layer.reference(d.config, d.params, d.x)) <= EXACT, d.config
    return y


def bug_shape_coverage(layer: Layer, drawn: list[Draw]) -> dict[str, int]:
    """For each bug shape, on how many drawn configs where it applies its backward differs from the right one."""
    seen = {b.code: 0 for b in layer.bug_shapes}
    for d in drawn:
        right = engine_grads(layer, d)
        _, cache = layer.forward(d.config, d.params, d.x)
        for bug in layer.bug_shapes:
            if not bug.applies(d.config, d.in_shape):
                continue
            dx, grads = bug.backward(d.config, d.params, cache, d.dout)
            wrong = {"x": dx, **grads}
            if any(wrong[k].shape != right[k].shape or norm_rel(wrong[k], right[k]) > 1e-6 for k in right):
                seen[bug.code] += 1
    return seen


def need_torch():
    return pytest.importorskip("torch", reason="torch is not installed: pip install torch==2.13.0 (or bpcheck[torch])")


def need_jax():
    return pytest.importorskip("jax", reason="jax is not installed: pip install jax (or bpcheck[jax])")


def float32_kept(layer: Layer, d: Draw) -> None:
    """float32 in, float32 out (y, dx, every grad), and y within 1e-5 of float64's."""
    p32 = {k: v.astype(np.float32) for k, v in d.params.items()}
    y, cache = layer.forward(d.config, p32, d.x.astype(np.float32))
    dx, grads = layer.backward(d.config, p32, cache, d.dout.astype(np.float32))
    assert {name: v.dtype for name, v in {"y": y, "x": dx, **grads}.items()} == dict.fromkeys(("y", "x", *grads), np.float32)
    assert norm_rel(y.astype(np.float64), layer.forward(d.config, d.params, d.x)[0]) <= 1e-5, d.config


def main() -> None:
    """python -m tests.layer_harness: the worst error per kind and witness over the test files' draws."""
    import jax
    import torch

    from .test_layers_dense import drawn as dense_drawn
    from .test_layers_norm import drawn as norm_drawn
    from .test_layers_norm import floors

    for kind in ("dense", "activation", "batchnorm", "layernorm", "dropout"):
        layer, smooth = LAYERS[kind], kind in ("batchnorm", "layernorm", "dropout")
        worst = {"torch": 0.0, "jax": 0.0, "fd": 0.0}
        for d in (norm_drawn(kind) if smooth else dense_drawn(kind)):
            mine, fl = engine_grads(layer, d), (floors(kind, d) if smooth else {})
            for name, got in (("torch", torch_grads(layer, d, torch)[1]), ("jax", jax_grads(layer, d, jax)[1]),
                              ("fd", fd_grads(layer, d, smooth=smooth))):
                floor = {} if name == "fd" else fl
                worst[name] = max(worst[name], *(norm_rel(mine[k], got[k], floor.get(k, 0.0)) for k in mine))
        print(f"{kind:11s} " + "  ".join(f"{k} {v:.2g}" for k, v in worst.items()))


if __name__ == "__main__":
    main()
