"""The comparison's own forward pass: the judge reads the net's values from code the judged does not share.

    caches = forward_of(case64, trace)      # one LayerCache(a_prev, z, a) per dense layer of an MLP, or ()

The rounding model (forward_errors, error_scales, ambiguous), the kink conventions and the diagnosis need
z_l and a_l of every layer. They used to come from the engine's forward, so a forward bug in the engine
moved the very bounds it was judged by. Here they come from the reference whose trace scales the
tolerances (torch's or jax's forward values, Gradients.meta['forward']), or, without one, from each layer's
independent numpy forward (Layer.reference, the forward finite differences evaluate): a dense layer is its
affine part (the dense Layer with activation 'identity') and then its activation (the activation Layer), so
z_l is seen on its own. The framework's values come first because the rounding model needs them to full
relative accuracy: the reference forms are written for finite differences, where an absolute error of an
ulp of 1 is harmless (sigmoid as (1 + tanh(z/2)) / 2 is 1e-10 +- 5e-17 at z = -23: 5e-7 relative).
"""

from __future__ import annotations

import numpy as np

# The engine's cache type only (a NamedTuple: input, pre-activation, output), so that the convention models, which
# run engine.backward as a model of another convention, read these values; no engine code runs here.
from ..engine import LayerCache
from ..references.layered import is_mlp, plan
from ..spec import Case, Gradients


def forward_of(case64: Case, trace: Gradients | None = None) -> tuple[LayerCache, ...]:
    """The MLP's (a_prev, z, a) per layer from trace.meta['forward'] when it has them, else independent_forward."""
    values = None if trace is None else trace.meta.get("forward")
    if not is_mlp(case64.arch) or values is None or len(values) != len(plan(case64.arch)):
        return independent_forward(case64)
    caches = []
    a = np.asarray(case64.x, dtype=np.float64)
    for z, out in values:
        caches.append(LayerCache(a, np.asarray(z, dtype=np.float64), np.asarray(out, dtype=np.float64)))
        a = caches[-1].a
    return tuple(caches)


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
