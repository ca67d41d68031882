"""Where a disagreement starts: the first layer, from the output down, whose dL/dz disagrees.

Backprop runs from the output down, so the first layer whose dL/dz_l is wrong holds the bug (or
the layer above it passed a wrong dL/da_l down). That needs a dz trace from both sides; when one
side has none, the first layer from the output down whose W or b disagrees stands in for it.
"""

from __future__ import annotations

import numpy as np

from ..results import TensorMetrics, Tolerance
from ..spec import Gradients
from .metrics import Item, compare_tensors
from .tolerance import CaseContext


def trace_metrics(ctx: CaseContext, produced: Gradients, reference: Gradients, tol: Tolerance,
                  ambiguous: dict[str, np.ndarray] | None = None) -> tuple[TensorMetrics, ...]:
    """One TensorMetrics per layer, named 'dz1'..'dzL', or () when a side has no usable dz trace.

    FD's trace carries its error estimate and kink mask in reference.meta['dz_error'/'dz_kink'];
    ambiguous adds the rounding-ambiguity masks 'dz1'.. (CaseContext.kinks).
    """
    return tuple(compare_tensors(trace_items(ctx, produced, reference, tol, ambiguous)))


def trace_items(ctx: CaseContext, produced: Gradients, reference: Gradients, tol: Tolerance,
                ambiguous: dict[str, np.ndarray] | None = None) -> list[Item]:
    """trace_metrics' tensors, as compare_tensors' items; [] when a side has no usable dz trace."""
    n = ctx.case64.arch.n_layers
    if produced.dz is None or reference.dz is None or len(produced.dz) != n or len(reference.dz) != n:
        return []
    if any(d is None for d in (*produced.dz, *reference.dz)):
        return []
    errs = reference.meta.get("dz_error") or (None,) * n
    kinks = reference.meta.get("dz_kink") or (None,) * n
    ambiguous = ambiguous or {}
    return [(f"dz{layer}", np.asarray(produced.dz[layer - 1]), np.asarray(reference.dz[layer - 1]),
             tol, ctx.scales.get(f"dz{layer}", 0.0), errs[layer - 1], _union(kinks[layer - 1], ambiguous.get(f"dz{layer}")))
            for layer in range(1, n + 1)]


def _union(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None or b is None:
        return b if a is None else a
    return np.asarray(a, dtype=bool) | b


def first_bad_layer(params: tuple[TensorMetrics, ...], traces: tuple[TensorMetrics, ...],
                    n_layers: int) -> tuple[int | None, str]:
    """(layer, 'dz') from the traces, else (layer, 'params') from W_l and b_l, else (None, '').

    With traces that all agree, a wrong W or b (a bias averaged over the batch) still names its layer.
    """
    for t in sorted(traces, key=lambda t: -int(t.name[2:])):
        if not t.ok:
            return int(t.name[2:]), "dz"
    bad = {m.name for m in params if not m.ok}
    for layer in range(n_layers, 0, -1):
        if f"W{layer}" in bad or f"b{layer}" in bad:
            return layer, "params"
    return None, ""
