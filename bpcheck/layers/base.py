"""What bpcheck knows about one kind of layer, kept side by side in one record.

A stack is a sequence of layers; each layer is (kind, config). Shapes here are per sample: the
batch axis is never part of a Shape, and every array a layer sees has the batch first (NCHW for
images). A layer's params are keyed by their local names ('W', 'b', 'gamma', 'beta'); a stack
keys them by local name + the layer's 1-based position ('W1', 'b1', 'gamma3'), so a dense MLP
keeps the keys W1, b1, ..., WL, bL it always had.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Array = np.ndarray
Shape = tuple[int, ...]
Config = dict[str, Any]
Params = dict[str, Array]


@dataclass(frozen=True)
class BugShape:
    """A backward people write by mistake for this kind, as the diagnosis names it and a mutant plants it.

    code: a short key ('kernel_flipped'); says: the plain-words sentence ("dW of conv2d with the kernel
    flipped"); backward: what it computes, with Layer.backward's signature; applies: whether it differs from
    the right backward for this config and input shape (a padding bug needs padding > 0).
    """

    code: str
    says: str
    backward: Callable[[Config, Params, Any, Array], tuple[Array, Params]]
    applies: Callable[[Config, Shape], bool] = lambda config, in_shape: True


@dataclass(frozen=True)
class Layer:
    """One kind of layer.

    check_config(config, in_shape) -> config with defaults filled; a SpecError names a bad value and the fix.
    param_shapes(config, in_shape) -> {local name: shape}; out_shape(config, in_shape) -> Shape.
    init(config, in_shape, rng, dtype) -> params (local names).
    forward(config, params, x) -> (y, cache) and backward(config, params, cache, dy) -> (dx, grads):
        the engine's hand-written numpy, readable first; grads keyed by local name.
    torch(config, params, x, torch) / jax(config, params, x, jax): the same function in the framework that is
        passed in (so this module imports neither); params are that framework's arrays.
    reference(config, params, x) -> y: an independent numpy forward, written another way than `forward` (no
        cache; einsum or loops where forward uses matmul or strides), that finite differences evaluate, so the
        judge shares no code with the engine it judges. It must accept params and x with one extra leading axis
        of K perturbed copies (x (K, N, ...), each param (K, ...)) and return (K, N, ...).
    pattern(config, params, x) -> an integer array naming the smooth piece the forward is on (relu's sign of z,
        max-pool's argmax), or None for a smooth layer: two points with different patterns straddle a kink, so
        a finite difference between them must not be compared.
    draw_config(rng, in_shape) -> a valid config for that input (the strategies' source), or None when no config
        fits the shape.
    per_sample: rows of the batch do not interact (False for batchnorm).
    bug_shapes: what the diagnosis names and the mutant catalog plants for this kind.
    capabilities: optional accelerators by name (the dense layer's rank-1 finite differences, ...).
    """

    kind: str
    check_config: Callable[[Mapping[str, Any], Shape], Config]
    param_shapes: Callable[[Config, Shape], dict[str, Shape]]
    out_shape: Callable[[Config, Shape], Shape]
    init: Callable[[Config, Shape, np.random.Generator, Any], Params]
    forward: Callable[[Config, Params, Array], tuple[Array, Any]]
    backward: Callable[[Config, Params, Any, Array], tuple[Array, Params]]
    torch: Callable[[Config, Params, Any, Any], Any]
    jax: Callable[[Config, Params, Any, Any], Any]
    draw_config: Callable[[np.random.Generator, Shape], Config | None]
    reference: Callable[[Config, Params, Array], Array]
    pattern: Callable[[Config, Params, Array], Array] | None = None
    per_sample: bool = True
    bug_shapes: tuple[BugShape, ...] = ()
    capabilities: Mapping[str, Any] = field(default_factory=dict)

    def bug_shape(self, code: str) -> BugShape:
        return next(b for b in self.bug_shapes if b.code == code)
