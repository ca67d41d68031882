"""The hand-written network, as the seed essay builds it: one loop over the layers, forward then back.

Forward: each layer maps its input to its output with its kind's numpy forward (bpcheck.layers), keeping
the cache its backward reads. Backward, from the loss down: each layer receives dL/d(its output) and
returns dL/d(its input) and its params' gradients, keyed local name + position ('W1', 'gamma3').
The dense layer is the one kind the engine opens up, for three reasons: a from-logits loss (bce,
cross_entropy) is fused with the last dense layer's activation and hands back dL/dz directly (the
activation's backward is skipped, as it always was); the per-layer trace dz (dL/dz_l) that localisation
and the diagnosis read is the dense layer's; and `rules` may replace an activation's backward (a
checker recomputing the gradient under another subgradient convention). So a dense layer runs its
activation's rule and then the affine backward (layers.dense.backward_with): for an MLP these are the
operations the MLP engine always ran, in the same order, so its gradients are the same bit for bit.
An L2 term (arch.weight_decay) adds lambda W to dL/dW for every param whose local name is W.
Everything is vectorised over the batch, keeps the input dtype and never mutates its inputs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from . import ops
from .layers import LAYERS
from .layers.base import Layer
from .layers.dense import backward_with as dense_backward_with
from .ops import LOSS_RULES, RULES, Activation, Loss, weight_decay
from .spec import Arch, Case, Gradients, Params, one_hot


class LayerCache(NamedTuple):
    """A dense layer's cache: exactly what its backward reads (its input, its pre-activation and its output)."""

    a_prev: np.ndarray
    z: np.ndarray
    a: np.ndarray

    @property
    def x(self) -> np.ndarray:  # the dense layer's own name for its input (layers.dense.Cache)
        return self.a_prev


class Step(NamedTuple):
    """One layer of a stack, as the loop runs it: its position, kind, checked config, Layer and param keys."""

    position: int
    kind: str
    config: dict[str, Any]
    layer: Layer
    keys: dict[str, str]  # local name -> stack key


@functools.lru_cache(maxsize=512)
def plan(arch: Arch) -> tuple[Step, ...]:
    """The arch's layers with their param keys, worked out once per arch (an Arch is immutable and hashable)."""
    steps = []
    for position, ((kind, config), shape) in enumerate(zip(arch.layers, arch.shapes), start=1):
        layer = LAYERS[kind]
        keys = {local: f"{local}{position}" for local in layer.param_shapes(config, shape)}
        steps.append(Step(position, kind, config, layer, keys))
    return tuple(steps)


def _local(step: Step, params: Params) -> Params:
    return {local: params[key] for local, key in step.keys.items()}


def forward(arch: Arch, params: Params, x: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Return the output, (batch, n_out), and one cache per layer (a LayerCache for each dense layer)."""
    caches: list[Any] = []
    out = x
    for step in plan(arch):
        out, cache = step.layer.forward(step.config, _local(step, params), out)
        caches.append(LayerCache(*cache) if step.kind == "dense" else cache)
    return out, caches


def targets(arch: Arch, y: np.ndarray, dtype: Any) -> np.ndarray:
    """The float target rows a loss reads: y itself, or the one-hot rows of integer class labels (batch,)."""
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        return one_hot(y, arch.shapes[-1][0], dtype)
    return y


def _loss_input(arch: Arch, rule: Loss, caches: list[Any], output: np.ndarray | None) -> np.ndarray:
    """What the loss reads: the output (a_L of a last dense layer, else the forward's first value, passed as
    output=), or for a loss from logits the last dense layer's z."""
    last = caches[-1]
    if isinstance(last, LayerCache):
        return last.z if rule.from_logits else last.a
    if rule.from_logits:
        raise ValueError(f"loss {rule.name} is computed from logits, but {arch.label()} does not end in a dense layer")
    if output is None:
        raise ValueError(f"the last layer of {arch.label()} is not dense: pass output= (engine.forward's first value)")
    return output


def loss_of(arch: Arch, caches: list[Any], y: np.ndarray, params: Params | None = None,
            output: np.ndarray | None = None) -> float:
    """The declared loss; with arch.weight_decay its L2 term needs the params. output: the forward's first value,
    needed only when the last layer is not dense (its cache is the kind's own)."""
    rule = LOSS_RULES[arch.loss]
    out = _loss_input(arch, rule, caches, output)
    value = float(rule.forward(out, targets(arch, y, out.dtype)))
    if arch.weight_decay:
        if params is None:
            raise ValueError("loss_of: arch has weight_decay, so the L2 term needs params")
        value += weight_decay(arch.weight_decay, params)[0]
    return value


def backward(
    arch: Arch, params: Params, caches: list[Any], y: np.ndarray, *, input_grad: bool = True,
    rules: Mapping[str, Activation] = RULES, loss_rule: Loss | None = None, output: np.ndarray | None = None,
    swap: Mapping[int, Callable[..., tuple[np.ndarray, Params]]] | None = None,
) -> Gradients:
    """Backpropagate the loss through the cached forward; see the module docstring for the math.

    Returns the loss, the gradient of every param, dL/dx (None if not input_grad), and the trace:
    dout[i-1] = dL/d(output of layer i) (None for a dense layer fused with a from-logits loss) and, for
    an MLP, dz[l-1] = dL/dz_l and da[l-1] = dL/da_l (hidden layers). rules replaces ops.RULES in the
    dense layers, so that a checker can recompute the gradient under another subgradient convention at
    the kinks (bpcheck.compare.convention). loss_rule replaces LOSS_RULES[arch.loss], so that a checker
    can recompute the gradient under another loss convention (bpcheck.byo.conventions: sum instead of
    mean, BCE instead of MSE, ...). output: the forward's first value, needed only when the last layer
    is not dense. swap: position -> a Layer.backward run there instead of the kind's own (a planted bug,
    bpcheck.mutants.layered; a dense layer swapped this way receives dL/da and leaves its dz trace None).
    """
    rule = LOSS_RULES[arch.loss] if loss_rule is None else loss_rule
    out = _loss_input(arch, rule, caches, output)
    y = targets(arch, y, out.dtype)
    loss = float(rule.forward(out, y))
    g = rule.backward(out, y)  # dL/dz of the last (dense) layer when from logits, else dL/d(output)
    steps = plan(arch)
    n = len(steps)
    grads: Params = {}
    dout: list[np.ndarray | None] = [None] * n
    dz_trace: list[np.ndarray | None] = [None] * n
    for step in reversed(steps):
        i, cache = step.position, caches[step.position - 1]
        local = _local(step, params)
        planted = None if swap is None else swap.get(i)
        if planted is not None:
            dout[i - 1] = g
            dx, own = planted(step.config, local, cache, g)
        elif step.kind == "dense":
            if i == n and rule.from_logits:
                dz = g
            else:
                dout[i - 1] = g
                act = step.config["activation"]
                dz = (rules[act] if act in rules else ops.rule(act)).backward(cache.z, cache.a, g)
            dz_trace[i - 1] = dz
            if i == 1 and not input_grad:  # dL/dx unwanted (sgd_step): skip its matmul, the largest on a wide input
                dx, own = None, {"W": cache.a_prev.T @ dz, "b": dz.sum(axis=0)}
            else:
                dx, own = dense_backward_with(local, cache, dz)
        else:
            dout[i - 1] = g
            dx, own = step.layer.backward(step.config, local, cache, g)
        grads.update({step.keys[k]: v for k, v in own.items()})
        g = dx
    if arch.weight_decay:
        value, decay = weight_decay(arch.weight_decay, params)
        loss += value
        grads.update({k: grads[k] + decay[k].astype(grads[k].dtype, copy=False) for k in decay})
    ordered = {k: grads[k] for k in arch.param_shapes()}
    dz = da = None
    if arch.is_mlp:
        dz, da = tuple(dz_trace), tuple(dout[:-1])
    return Gradients(loss, ordered, g if input_grad else None, dz, da, source="engine", dout=tuple(dout))


def gradients(case: Case) -> Gradients:
    """The engine as a gradient producer: Case -> Gradients."""
    out, caches = forward(case.arch, case.params, case.x)
    return backward(case.arch, case.params, caches, case.targets, output=out)


def loss(arch: Arch, params: Params, x: np.ndarray, y: np.ndarray) -> float:
    """L(params) for one batch."""
    out, caches = forward(arch, params, x)
    return loss_of(arch, caches, y, params, output=out)


def sgd_step(arch: Arch, params: Params, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[Params, float]:
    """One step of gradient descent, w <- w - lr * dL/dw; returns new params and the loss before the step."""
    out, caches = forward(arch, params, x)
    g = backward(arch, params, caches, y, input_grad=False, output=out)
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
    case = Case(arch, params, x, y)  # validates once, up front
    x, y = case.x, case.targets
    history: list[float] = []
    for epoch in range(epochs):
        params, value = sgd_step(arch, params, x, y, lr)
        history.append(value)
        if on_epoch is not None:
            on_epoch(epoch, value)
    return params, history


def predict(arch: Arch, params: Params, x: np.ndarray) -> np.ndarray:
    return forward(arch, params, x)[0]
