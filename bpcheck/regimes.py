"""What each regime of bpcheck.strategies.cases does to a drawn case, on purpose.

    ordinary    params in [-1, 1], x and y in [-2, 2]
    near_kink   as ordinary, then chosen pre-activations of every kinked layer (relu, leaky_relu,
                elu) set to exactly 0 or within MAX_KINK_ULPS ulps of it, through the biases
    saturating  as ordinary, then each sigmoid and tanh layer rescaled so that max |z| is 8 to 30
    tiny        params, x and y in [-1e-4, 1e-4]
    huge        params in [-10, 10], x and y in [-1e3, 1e3]

The moves take Hypothesis's draw, so which entries move and by how many ulps shrink like
everything else (toward the first column, the first row and 0 ulps).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from . import engine, ops
from .spec import Arch, Params

REGIMES: tuple[str, ...] = ("ordinary", "near_kink", "saturating", "tiny", "huge")
KINKED: tuple[str, ...] = tuple(name for name, rule in ops.RULES.items() if rule.kink)
SATURATING: tuple[str, ...] = ("sigmoid", "tanh")

# (params scale, input and target scale) per regime; near_kink and saturating start ordinary
# and then move chosen pre-activations (see near_kink and saturate).
SCALES: dict[str, tuple[float, float]] = {
    "ordinary": (1.0, 2.0), "near_kink": (1.0, 2.0), "saturating": (1.0, 2.0),
    "tiny": (1e-4, 1e-4), "huge": (10.0, 1e3),
}
MAX_KINK_ULPS = 4        # near_kink puts z at 0 or within this many ulps of it
SATURATION = (8, 30)     # saturating rescales a layer so that max |z| lies in this range


def near_kink(draw, arch: Arch, p: Params, x: np.ndarray) -> Params:
    """Set chosen biases so that chosen entries z_l[r, j] of kinked layers are 0 or +-k ulps.

    With pdot = (a_{l-1} @ W_l)[r, j] as the engine computes it, b_j = -pdot gives z = pdot - pdot = 0
    exactly; stepping b_j k ulps away gives z = +-k ulp(pdot) exactly (Sterbenz). Layers are
    fixed in order, since each change moves every later layer's input.
    """
    p = dict(p)
    batch = x.shape[0]
    for layer, act in enumerate(arch.activations, start=1):
        if not ops.rule(act).kink:
            continue
        width = arch.sizes[layer]
        cols = draw(st.lists(st.integers(0, width - 1), min_size=1, max_size=width, unique=True))
        _, caches = engine.forward(arch, p, x)
        pre = caches[layer - 1].a_prev @ p[f"W{layer}"]
        b = p[f"b{layer}"].copy()
        for j in cols:
            r = draw(st.integers(0, batch - 1))
            ulps = draw(st.integers(-MAX_KINK_ULPS, MAX_KINK_ULPS))
            value = -pre[r, j]
            direction = b.dtype.type(np.inf if ulps > 0 else -np.inf)
            for _ in range(abs(ulps)):
                value = np.nextafter(value, direction)
            b[j] = value
        p[f"b{layer}"] = b
    return p


def saturate(draw, arch: Arch, p: Params, x: np.ndarray) -> Params:
    """Rescale each sigmoid or tanh layer's W_l and b_l so that max |z_l| hits a drawn target in SATURATION."""
    p = dict(p)
    for layer, act in enumerate(arch.activations, start=1):
        if act not in SATURATING:
            continue
        target = draw(st.integers(*SATURATION))
        _, caches = engine.forward(arch, p, x)
        peak = float(np.max(np.abs(caches[layer - 1].z)))
        # A layer whose z is all but zero cannot saturate without absurd weights: leave it.
        if peak > 1e-2:
            factor = target / peak
            p[f"W{layer}"] = (p[f"W{layer}"] * factor).astype(p[f"W{layer}"].dtype)
            p[f"b{layer}"] = (p[f"b{layer}"] * factor).astype(p[f"b{layer}"].dtype)
    return p
