"""One parametrised backward, the engine's own math with a hook at every place a person can slip.

    produce = variant(act=lambda ctx, layer, rule, z, a, g: g)   # every act' dropped
    produce(case) -> Gradients, with the dz / da trace the buggy backward really computed

Forward is engine.forward; each default hook is the engine's line for that step (ops.RULES and
ops.LOSS_RULES), so a mutant replaces exactly one line and the rest of the backward is right.
The trace matters: bpcheck localises a fault by the first layer whose dL/dz_l disagrees, so a
mutant must report the dz it computed, as a hand-written engine would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import engine, ops
from ..engine import LayerCache
from ..ops import LOSS_RULES, RULES, Activation, Loss
from ..spec import Case, Gradients

Array = np.ndarray
Producer = Callable[[Case], Gradients]


@dataclass(frozen=True)
class Step:
    """What a hook may read: the case, the number of layers and the forward caches."""

    case: Case
    n: int
    caches: list[LayerCache]


def loss_grad(step: Step, rule: Loss, out: Array, y: Array) -> Array:
    """dL/dout: dL/dz_L for a loss fused with its activation, else dL/da_L, (batch, n_out)."""
    return rule.backward(out, y)


def act_grad(step: Step, layer: int, rule: Activation, z: Array, a: Array, g: Array) -> Array:
    """dL/dz_l = act_l'(z_l) * dL/da_l (a Jacobian-vector product for softmax), (batch, n_l)."""
    return rule.backward(z, a, g)


def weight_grad(step: Step, layer: int, cache: LayerCache, dz: Array) -> Array:
    """dL/dW_l = a_{l-1}^T dL/dz_l, (n_{l-1}, n_l)."""
    return cache.a_prev.T @ dz


def bias_grad(step: Step, layer: int, dz: Array) -> Array:
    """dL/db_l = sum over the batch of dL/dz_l, (n_l,)."""
    return dz.sum(axis=0)


def pass_back(step: Step, layer: int, dz: Array, w: Array) -> Array:
    """dL/da_{l-1} = dL/dz_l W_l^T, (batch, n_{l-1})."""
    return dz @ w.T


def visits(step: Step, layer: int) -> bool:
    """Whether the loop computes layer's W and b gradients (an off-by-one loop skips one)."""
    return True


def variant(*, loss: Callable = loss_grad, act: Callable = act_grad, weight: Callable = weight_grad,
            bias: Callable = bias_grad, back: Callable = pass_back, visit: Callable = visits,
            name: str = "variant") -> Producer:
    """A producer Case -> Gradients: engine.backward with the given hooks in place of its lines.

    A layer the loop does not visit keeps zero W and b gradients (the arrays a hand-written
    engine allocates up front) while the pass-back still runs through it.
    """

    def produce(case: Case) -> Gradients:
        arch, params = case.arch, case.params
        _, caches = engine.forward(arch, params, case.x)
        step = Step(case, arch.n_layers, caches)
        rule = LOSS_RULES[arch.loss]
        last = caches[-1]
        out = last.z if rule.from_logits else last.a
        g = loss(step, rule, out, case.y)
        n = arch.n_layers
        grads = {k: np.zeros_like(v) for k, v in params.items()}
        dz_trace: list[Array] = [None] * n  # type: ignore[list-item]
        da_trace: list[Array] = [None] * (n - 1)  # type: ignore[list-item]
        for layer in range(n, 0, -1):
            cache = caches[layer - 1]
            if layer == n and rule.from_logits:
                dz = g
            else:
                if layer < n:
                    da_trace[layer - 1] = g
                dz = act(step, layer, ops.rule(arch.activations[layer - 1]), cache.z, cache.a, g)
            dz_trace[layer - 1] = dz
            if visit(step, layer):
                grads[f"W{layer}"] = weight(step, layer, cache, dz)
                grads[f"b{layer}"] = bias(step, layer, dz)
            g = back(step, layer, dz, params[f"W{layer}"])
        value = engine.loss_of(arch, caches, case.y, params)
        return Gradients(value, grads, g, tuple(dz_trace), tuple(da_trace), source=name)

    produce.__qualname__ = name
    return produce


def with_rule(activation: str, backward: Callable[[Array, Array, Array], Array], name: str) -> Producer:
    """The engine itself with one activation's derivative replaced (engine.backward's rules= override)."""
    from dataclasses import replace

    rules = {**RULES, activation: replace(RULES[activation], backward=backward)}

    def produce(case: Case) -> Gradients:
        _, caches = engine.forward(case.arch, case.params, case.x)
        return engine.backward(case.arch, case.params, caches, case.y, rules=rules)

    produce.__qualname__ = name
    return produce
