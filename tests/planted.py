"""Planted-bug producers (Case -> Gradients) for testing the tester.

Each re-implements only the backward variant its bug needs, on top of engine.forward and the
ops rules, and returns the per-layer dz/da trace the buggy backward really computed, as a
hand-written engine would. Bugs that touch only the final gradients post-process engine.gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from bpcheck import engine
from bpcheck.ops import LOSS_RULES, RULES
from bpcheck.spec import Case, Gradients

Producer = Callable[[Case], Gradients]


def _edit(case: Case, edit: Callable[[dict[str, np.ndarray], Case], None], name: str) -> Gradients:
    g = engine.gradients(case)
    grads = {k: v.copy() for k, v in g.grads.items()}
    edit(grads, case)
    return replace(g, grads=grads, source=name)


def scaled(tensor: str, factor: float = 1.001) -> Producer:
    """The gradient of one tensor ('W2', 'b1', ... or 'x') multiplied by factor."""
    def produce(case: Case) -> Gradients:
        g = engine.gradients(case)
        if tensor == "x":
            return replace(g, dx=g.dx * g.dx.dtype.type(factor), source=f"scaled {tensor}")
        grads = dict(g.grads)
        grads[tensor] = grads[tensor] * grads[tensor].dtype.type(factor)
        return replace(g, grads=grads, source=f"scaled {tensor}")

    produce.__qualname__ = f"scaled({tensor!r}, {factor})"
    return produce


def loss_scaled(factor: float) -> Producer:
    """dL/dout multiplied by factor (a wrong mean over the batch, a lost 1/2): every tensor and the trace."""
    def produce(case: Case) -> Gradients:
        g = engine.gradients(case)
        k = g.dx.dtype.type(factor)
        return replace(g, grads={n: k * v for n, v in g.grads.items()}, dx=k * g.dx,
                       dz=tuple(k * d for d in g.dz), da=tuple(k * d for d in g.da), source=f"loss x {factor}")

    produce.__qualname__ = f"loss_scaled({factor})"
    return produce


def bias_averaged(case: Case) -> Gradients:
    """dL/db_l = mean over the batch of dL/dz_l (should be the sum), while dL/dW_l stays summed."""
    def edit(grads, c):
        for k in grads:
            if k.startswith("b"):
                grads[k] = grads[k] / c.batch
    return _edit(case, edit, "bias averaged")


def bias_sign_flipped(layer: int) -> Producer:
    """dL/db_layer with its sign flipped."""
    def produce(case: Case) -> Gradients:
        def edit(grads, c):
            grads[f"b{layer}"] = -grads[f"b{layer}"]
        return _edit(case, edit, f"b{layer} sign flipped")

    produce.__qualname__ = f"bias_sign_flipped({layer})"
    return produce


def relu_one_at_zero(case: Case) -> Gradients:
    """relu'(0) = 1 instead of the declared 0: another valid subgradient (a CONVENTION)."""
    relu = RULES["relu"]
    rules = {**RULES, "relu": replace(relu, backward=lambda z, a, g: g * (z >= 0))}
    _, caches = engine.forward(case.arch, case.params, case.x)
    return engine.backward(case.arch, case.params, caches, case.y, rules=rules)


def variant_backward(case: Case, *, skip_derivative_at: int | None = None,
                     untransposed_at: int | None = None) -> Gradients:
    """The engine's backward with one planted bug, and the trace it computes.

    skip_derivative_at=l: dz_l = dL/da_l (act_l' dropped). untransposed_at=l: the pass-back of
    layer l uses W_l instead of W_l^T, dL/da_{l-1} = dz_l @ W_l (needs a square W_l).
    """
    arch, params = case.arch, case.params
    rule = LOSS_RULES[arch.loss]
    _, caches = engine.forward(arch, params, case.x)
    last = caches[-1]
    g = rule.backward(last.z if rule.from_logits else last.a, case.y)
    n = arch.n_layers
    grads, dz_trace, da_trace = {}, [None] * n, [None] * (n - 1)
    for layer in range(n, 0, -1):
        cache = caches[layer - 1]
        if layer == n and rule.from_logits:
            dz = g
        else:
            if layer < n:
                da_trace[layer - 1] = g
            dz = g if layer == skip_derivative_at else RULES[arch.activations[layer - 1]].backward(cache.z, cache.a, g)
        dz_trace[layer - 1] = dz
        grads[f"W{layer}"] = cache.a_prev.T @ dz
        grads[f"b{layer}"] = dz.sum(axis=0)
        w = params[f"W{layer}"]
        g = dz @ (w if layer == untransposed_at else w.T)
    ordered = {k: grads[k] for k in arch.param_shapes()}
    loss = engine.loss_of(arch, caches, case.y)
    return Gradients(loss, ordered, g, tuple(dz_trace), tuple(da_trace), source="planted")


def derivative_dropped(layer: int) -> Producer:
    def produce(case: Case) -> Gradients:
        return variant_backward(case, skip_derivative_at=layer)

    produce.__qualname__ = f"derivative_dropped({layer})"
    return produce


def transposed_backward(layer: int) -> Producer:
    def produce(case: Case) -> Gradients:
        return variant_backward(case, untransposed_at=layer)

    produce.__qualname__ = f"transposed_backward({layer})"
    return produce


def weight_grad_transposed(layer: int) -> Producer:
    """dL/dW_layer returned transposed (dz^T a instead of a^T dz)."""
    def produce(case: Case) -> Gradients:
        def edit(grads, c):
            grads[f"W{layer}"] = grads[f"W{layer}"].T.copy()
        return _edit(case, edit, f"W{layer} transposed")

    produce.__qualname__ = f"weight_grad_transposed({layer})"
    return produce


def zeroed(tensor: str) -> Producer:
    """One param gradient left at zero (a forgotten accumulation)."""
    def produce(case: Case) -> Gradients:
        def edit(grads, c):
            grads[tensor] = np.zeros_like(grads[tensor])
        return _edit(case, edit, f"{tensor} zeroed")

    produce.__qualname__ = f"zeroed({tensor!r})"
    return produce
