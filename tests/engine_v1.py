"""The hand-written MLP, as the seed essay builds it.

Forward: z_l = a_{l-1} @ W_l + b_l, a_l = act_l(z_l), keeping (a_{l-1}, z_l, a_l) per layer.
Backward, from the output down: each layer receives dL/da_l, forms dL/dz_l = dL/da_l * act'(z_l),
then dL/dW_l = a_{l-1}^T dL/dz_l, dL/db_l = sum over the batch of dL/dz_l, and passes
dL/da_{l-1} = dL/dz_l W_l^T back; an L2 term (arch.weight_decay) adds lambda W_l to dL/dW_l.
A loss computed from logits (bce, cross_entropy) hands back
dL/dz_L directly. Everything is vectorised over the batch, keeps the input dtype and never
mutates its inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np

from bpcheck import ops
from bpcheck.ops import LOSS_RULES, RULES, Activation, Loss, weight_decay
from bpcheck.spec import Arch, Case, Gradients, Params


class LayerCache(NamedTuple):
    """Exactly what the backward reads: the layer's input, its pre-activation and its output."""

    a_prev: np.ndarray
    z: np.ndarray
    a: np.ndarray


def forward(arch: Arch, params: Params, x: np.ndarray) -> tuple[np.ndarray, list[LayerCache]]:
    """Return the output a_L, (batch, n_out), and one LayerCache per layer."""
    caches: list[LayerCache] = []
    a = x
    for layer, act in enumerate(arch.activations, start=1):
        z = a @ params[f"W{layer}"] + params[f"b{layer}"]
        a_next = ops.rule(act).forward(z)
        caches.append(LayerCache(a, z, a_next))
        a = a_next
    return a, caches


def loss_of(arch: Arch, caches: list[LayerCache], y: np.ndarray, params: Params | None = None) -> float:
    """The declared loss; with arch.weight_decay its L2 term needs the params."""
    rule = LOSS_RULES[arch.loss]
    last = caches[-1]
    value = float(rule.forward(last.z if rule.from_logits else last.a, y))
    if arch.weight_decay:
        if params is None:
            raise ValueError("loss_of: arch has weight_decay, so the L2 term needs params")
        value += weight_decay(arch.weight_decay, params)[0]
    return value


def backward(
    arch: Arch, params: Params, caches: list[LayerCache], y: np.ndarray, *, input_grad: bool = True,
    rules: Mapping[str, Activation] = RULES, loss_rule: Loss | None = None,
) -> Gradients:
    """Backpropagate the loss through the cached forward; see the module docstring for the math.

    Returns the loss, dL/dW_l and dL/db_l for every layer, dL/dx (None if not input_grad), and
    the per-layer trace dz[l-1] = dL/dz_l and da[l-1] = dL/da_l (hidden layers only).
    rules replaces ops.RULES, so that a checker can recompute the gradient under another
    subgradient convention at the kinks (bpcheck.compare.convention). loss_rule replaces
    LOSS_RULES[arch.loss], so that a checker can recompute the gradient under another loss
    convention (bpcheck.byo.conventions: sum instead of mean, BCE instead of MSE, ...).
    """
    rule = LOSS_RULES[arch.loss] if loss_rule is None else loss_rule
    last = caches[-1]
    out = last.z if rule.from_logits else last.a
    loss = float(rule.forward(out, y))
    g = rule.backward(out, y)  # dL/dz_L when from logits, else dL/da_L
    n = arch.n_layers
    grads: Params = {}
    dz_trace: list[np.ndarray] = [None] * n  # type: ignore[list-item]
    da_trace: list[np.ndarray] = [None] * (n - 1)  # type: ignore[list-item]
    for layer in range(n, 0, -1):
        cache = caches[layer - 1]
        if layer == n and rule.from_logits:
            dz = g
        else:
            if layer < n:
                da_trace[layer - 1] = g
            act = arch.activations[layer - 1]
            dz = (rules[act] if act in rules else ops.rule(act)).backward(cache.z, cache.a, g)
        dz_trace[layer - 1] = dz
        grads[f"W{layer}"] = cache.a_prev.T @ dz
        grads[f"b{layer}"] = dz.sum(axis=0)
        if layer > 1 or input_grad:
            g = dz @ params[f"W{layer}"].T
    if arch.weight_decay:
        value, decay = weight_decay(arch.weight_decay, params)
        loss += value
        grads.update({k: grads[k] + decay[k].astype(grads[k].dtype, copy=False) for k in decay})
    ordered = {k: grads[k] for k in arch.param_shapes()}
    return Gradients(loss, ordered, g if input_grad else None, tuple(dz_trace), tuple(da_trace), source="engine")


def gradients(case: Case) -> Gradients:
    """The engine as a gradient producer: Case -> Gradients."""
    _, caches = forward(case.arch, case.params, case.x)
    return backward(case.arch, case.params, caches, case.y)


def loss(arch: Arch, params: Params, x: np.ndarray, y: np.ndarray) -> float:
    """L(params) for one batch; what finite differences differentiate."""
    _, caches = forward(arch, params, x)
    return loss_of(arch, caches, y, params)


def sgd_step(arch: Arch, params: Params, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[Params, float]:
    """One step of gradient descent, w <- w - lr * dL/dw; returns new params and the loss before the step."""
    _, caches = forward(arch, params, x)
    g = backward(arch, params, caches, y, input_grad=False)
    return {k: p - lr * g.grads[k] for k, p in params.items()}, g.loss


def train(
    arch: Arch,
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    *,
    lr: float,
    epochs: int,
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[Params, list[float]]:
    """The seed's loop: forward, loss, backward, update, repeat. Returns final params and the loss per epoch."""
    Case(arch, params, x, y)  # validates once, up front
    x = np.asarray(x, dtype=next(iter(params.values())).dtype)
    y = np.asarray(y, dtype=x.dtype)
    history: list[float] = []
    for epoch in range(epochs):
        params, value = sgd_step(arch, params, x, y, lr)
        history.append(value)
        if on_epoch is not None:
            on_epoch(epoch, value)
    return params, history


def predict(arch: Arch, params: Params, x: np.ndarray) -> np.ndarray:
    return forward(arch, params, x)[0]
