"""The comparison's own forward pass: the judge reads the net's values from code the judged does not share.

    caches = independent_forward(case64)   # one LayerCache(a_prev, z, a) per dense layer of an MLP, or ()

The rounding model (forward_errors, error_scales, ambiguous), the kink conventions and the diagnosis need
z_l and a_l of every layer. They used to come from the engine's forward, so a forward bug in the engine
moved the very bounds it was judged by. Here they come from each layer's independent numpy forward
(Layer.reference: einsum where the engine uses matmul, another formula for the activations), the forward
that finite differences evaluate: a dense layer is its affine part (the dense Layer with activation
'identity') and then its activation (the activation Layer), so z_l is seen on its own.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..references.layered import is_mlp, plan
from ..spec import Case


class LayerCache(NamedTuple):
    """A dense layer's input, pre-activation and output, as the rounding model and the convention models read them."""

    a_prev: np.ndarray
    z: np.ndarray
    a: np.ndarray


def independent_forward(case64: Case) -> tuple[LayerCache, ...]:
    """(a_prev, z, a) per layer of an MLP by Layer.reference, in float64; () for any other stack (no dense model)."""
    if not is_mlp(case64.arch):
        return ()
    from ..layers import LAYERS

    dense, activation = LAYERS["dense"], LAYERS["activation"]
    caches = []
    a = np.asarray(case64.x, dtype=np.float64)
    for step in plan(case64.arch):
        # Layer.reference takes a leading axis of K perturbed copies: here K = 1.
        local = {name: np.asarray(case64.params[key], dtype=np.float64)[None] for name, key in step.keys.items()}
        z = dense.reference(step.affine, local, a[None])[0]
        out = activation.reference({"fn": step.act}, {}, z[None])[0]
        caches.append(LayerCache(a, z, out))
        a = out
    return tuple(caches)
