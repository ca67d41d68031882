"""Planted-bug producers (Case -> Gradients) for testing the tester.

Backward bugs are bpcheck.mutants.backward's hooked backward (or its rules override) with one
line replaced, so each returns the per-layer dz/da trace the buggy backward really computed, as a
hand-written engine would. Bugs that touch only the final gradients post-process engine.gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from bpcheck import engine
from bpcheck.mutants import backward
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


# relu'(0) = 1 instead of the declared 0: another valid subgradient (a CONVENTION).
relu_one_at_zero = backward.with_rule("relu", lambda z, a, g: g * (z >= 0), "relu_one_at_zero")


def _hooked(name: str, **hooks) -> Producer:
    """bpcheck.mutants.backward.variant with the given hooks, named name, its source "planted"."""
    produce = backward.variant(name="planted", **hooks)
    produce.__qualname__ = name
    return produce


def derivative_dropped(layer: int) -> Producer:
    """dz_layer = dL/da_layer: act_layer' dropped."""
    def act(step, at, rule, z, a, g):
        return g if at == layer else rule.backward(z, a, g)

    return _hooked(f"derivative_dropped({layer})", act=act)


def transposed_backward(layer: int) -> Producer:
    """The pass-back of layer uses W instead of W^T, dL/da_{layer-1} = dz_layer @ W_layer (needs a square W)."""
    def back(step, at, dz, w):
        return dz @ (w if at == layer else w.T)

    return _hooked(f"transposed_backward({layer})", back=back)


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
