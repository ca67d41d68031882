"""A stack as the torch and jax references walk it: one Step per layer, with its shapes, params and trace role.

    steps = plan(arch)           # Step(position, kind, config, in_shape, out_shape, keys, act), once per arch
    fused_input(arch)            # True when a from-logits loss reads the last layer's pre-activation
    signature(arch, batch, ...)  # what one jax compile is keyed by: kinds, configs, shapes, loss, dtype

A dense layer is walked as its affine part (the dense Layer with activation 'identity') then its activation
(the activation Layer), so that a reference can keep dL/dz, the dense trace the rounding model and the
localisation read, and fuse a from-logits loss with the output activation (bce reads z through sigmoid,
cross_entropy through softmax, as bpcheck.ops declares). Every other kind is its Layer's own framework form.

Works on the new stack Arch (arch.layers, arch.in_shape; LAYERS_API.md) and on the MLP-only Arch it replaces
(sizes and activations read as dense layers), so the references run the same loop either way.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..spec import LOSS_OUTPUT, split_activation

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Step:
    """One layer: its 1-based position, kind and config (defaults filled), per-sample shapes, its params as
    local name -> stack key ('W' -> 'W3'), and for a dense layer its activation (walked apart), else None."""

    position: int
    kind: str
    config: dict[str, Any]
    in_shape: Shape
    out_shape: Shape
    keys: dict[str, str]
    act: str | None

    @property
    def affine(self) -> dict[str, Any]:
        """The dense layer's config with its activation taken off: the affine part, z = x W + b."""
        return {**self.config, "activation": "identity"}


def layers_of(arch: Any) -> tuple[tuple[str, dict[str, Any]], ...]:
    """arch.layers, or the dense layers an MLP-only Arch (sizes, activations) stands for."""
    layers = getattr(arch, "layers", None)
    if layers is not None:
        return tuple((kind, dict(config)) for kind, config in layers)
    return tuple(("dense", {"n": int(n), "activation": act}) for n, act in zip(arch.sizes[1:], arch.activations))


def in_shape_of(arch: Any) -> Shape:
    shape = getattr(arch, "in_shape", None)
    return tuple(shape) if shape is not None else (int(arch.sizes[0]),)


def is_mlp(arch: Any) -> bool:
    """Every layer dense on a 1-D input: the MLP accelerators (jax's buckets) apply."""
    flag = getattr(arch, "is_mlp", None)
    return bool(flag) if flag is not None else True


def n_layers(arch: Any) -> int:
    """How many layers the stack has (arch.n_layers of an MLP; the new Arch keeps that name for MLPs only)."""
    return len(layers_of(arch))


def n_out(arch: Any) -> int:
    """The width of the output, which the loss reads."""
    return int(plan(arch)[-1].out_shape[0])


def width(arch: Any) -> int:
    """The longest sum a layer forms per output, bounded by its largest per-sample input (sizes for an MLP)."""
    if is_mlp(arch):
        return max(arch.sizes)
    return max(max(math.prod(s.in_shape), math.prod(s.out_shape)) for s in plan(arch))


def plan(arch: Any) -> tuple[Step, ...]:
    return _plan(_arch_key(arch))


def _arch_key(arch: Any) -> str:
    return json.dumps([in_shape_of(arch), layers_of(arch)], sort_keys=True)


@functools.lru_cache(maxsize=256)
def _plan(key: str) -> tuple[Step, ...]:
    from ..layers import LAYERS

    in_shape, layers = json.loads(key)
    shape: Shape = tuple(in_shape)
    steps = []
    for position, (kind, config) in enumerate(layers, start=1):
        layer = LAYERS[kind]
        out = tuple(layer.out_shape(config, shape))
        keys = {name: f"{name}{position}" for name in layer.param_shapes(config, shape)}
        steps.append(Step(position, kind, config, shape, out, keys, config["activation"] if kind == "dense" else None))
        shape = out
    return tuple(steps)


def fused_input(arch: Any) -> bool:
    """Does the loss read the last layer's input side? True for a from-logits loss (bce, cross_entropy) whose
    stack ends in its output activation, fused into a dense layer or as an activation layer of its own."""
    needed = LOSS_OUTPUT.get(arch.loss)
    if needed is None:
        return False
    kind, config = layers_of(arch)[-1]
    act = config.get("activation") if kind == "dense" else config.get("fn") if kind == "activation" else None
    return act is not None and split_activation(act)[0] == needed


def weight_keys(arch: Any) -> list[str]:
    """The stack keys of every param whose local name is 'W' (the L2 term's, dense and conv alike)."""
    return [key for step in plan(arch) for name, key in step.keys.items() if name == "W"]


def targets(case: Any) -> np.ndarray:
    """The float target matrix every loss evaluation uses: case.targets (one-hot rows for integer labels)."""
    found = getattr(case, "targets", None)
    return np.asarray(case.y if found is None else found, dtype=np.float64)


def macs(arch: Any, batch: int) -> int:
    """Multiply-adds of the largest layer (batch x outputs x inputs per output): how much work a call is."""
    most = 1
    for step in plan(arch):
        outputs = math.prod(step.out_shape)
        w = step.keys.get("W")
        per_output = 1
        if w is not None:  # dense W (n_in, n), conv W (F, C, kh, kw): out_shape[0] units each read W.size / it
            per_output = max(1, _param_size(step, "W") // max(1, step.out_shape[0]))
        most = max(most, outputs * per_output)
    return batch * most


def _param_size(step: Step, name: str) -> int:
    from ..layers import LAYERS

    return math.prod(LAYERS[step.kind].param_shapes(step.config, step.in_shape)[name])


def signature(arch: Any, batch: int, dtype: str = "float64") -> str:
    """One jax compile per value: the kinds, configs and shapes of the stack, the loss, the batch and dtype (the
    L2 term's lambda is an argument of the compiled function, not part of its signature)."""
    return json.dumps([_arch_key(arch), arch.loss, batch, dtype])

