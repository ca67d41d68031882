"""The wrong backwards a diagnosis tries for one layer: its kind's own bug shapes and the generic ones.

    for bug in candidates(kind, config, in_shape):     # BugShapes: code, says, backward
        dx, grads = bug.backward(config, params, cache, dy)

A kind's bug shapes (Layer.bug_shapes) come first, those that apply to this config and input shape; then the
classes of bugs any kind's backward can have, written as wrappers of its right backward: the upstream gradient
assumed all ones, every row's gradient written to row 0 (a batch index fixed at 0), a param's gradient left at
zeros. check-layer (bpcheck.layercheck.diagnose), the stack diagnosis (bpcheck.compare.layer_bugs) and the
layer mutants (bpcheck.mutants.layered) read them here, so there is one list.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import BugShape, Config, Shape
from .registry import LAYERS

Backward = Callable[..., tuple[np.ndarray, dict[str, np.ndarray]]]


def upstream_ones(kind: str) -> Backward:
    """The kind's backward run on a cotangent of ones: dy ignored (right only for loss.sum() on this output)."""
    right = LAYERS[kind].backward
    return lambda config, params, cache, dy: right(config, params, cache, np.ones_like(dy))


def rows_to_row0(kind: str) -> Backward:
    """Every sample's dL/dx written into row 0 (a loop indexing dx[0] for dx[n]): right only for batch 1."""
    right = LAYERS[kind].backward

    def backward(config, params, cache, dy):
        dx, grads = right(config, params, cache, dy)
        wrong = np.zeros_like(dx)
        wrong[0] = dx.sum(axis=0)
        return wrong, grads
    return backward


def param_zeros(kind: str, name: str) -> Backward:
    """The gradient of one param never computed: the zeros it was allocated with are returned."""
    right = LAYERS[kind].backward

    def backward(config, params, cache, dy):
        dx, grads = right(config, params, cache, dy)
        return dx, {**grads, name: np.zeros_like(params[name])}
    return backward


def applicable(kind: str, config: Config, in_shape: Shape) -> tuple[BugShape, ...]:
    """The kind's own bug shapes that can differ from its right backward on this config and input shape."""
    out = []
    for bug in LAYERS[kind].bug_shapes:
        try:
            if bug.applies(config, in_shape):
                out.append(bug)
        except Exception:  # a shape that cannot judge this config does not apply to it
            continue
    return tuple(out)


def generic(kind: str, config: Config, in_shape: Shape) -> tuple[BugShape, ...]:
    """The bugs any kind's backward can have, as BugShapes of this kind (codes 'upstream_ones', 'rows_to_row0',
    'zeros_<param>')."""
    out = [BugShape("upstream_ones", f"{kind}'s backward as if dL/d(its output) were all ones: the upstream gradient "
                    "is ignored", upstream_ones(kind)),
           BugShape("rows_to_row0", f"{kind}'s backward writes every sample's dL/dx into row 0 (a batch index fixed "
                    "at 0): right only for batch 1", rows_to_row0(kind))]
    for name in LAYERS[kind].param_shapes(config, in_shape):
        out.append(BugShape(f"zeros_{name}", f"d{name} of {kind} is all zeros (a gradient never computed)",
                            param_zeros(kind, name)))
    return tuple(out)


def candidates(kind: str, config: Config, in_shape: Shape) -> tuple[BugShape, ...]:
    """applicable, then generic: the kind's own names before the generic ones."""
    return applicable(kind, config, in_shape) + generic(kind, config, in_shape)
