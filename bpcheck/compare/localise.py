"""Where a disagreement starts: the first layer, from the output down, whose dL/dz disagrees.

Backprop runs from the output down, so the first layer whose dL/dz_l is wrong holds the bug (or
the layer above it passed a wrong dL/da_l down). That needs a dz trace from both sides; when one
side has none, the first layer from the output down whose W or b disagrees stands in for it.

A stack that is not an MLP has no dz trace; its trace is dout, dL/d(output of layer i), compared as
'da{i}' (on an MLP, da_i is exactly that). The highest disagreeing da_i was passed down by layer i + 1's
backward, whose input it is the gradient of: that layer holds the bug (localised_by 'da').
"""

from __future__ import annotations

import re

import numpy as np

from ..references.layered import is_mlp, n_layers
from ..results import TensorMetrics, Tolerance
from ..spec import Gradients
from .metrics import Item, compare_tensors
from .tolerance import CaseContext

_KEY = re.compile(r"[A-Za-z_]+(\d+)")  # a param's stack key: local name + 1-based position ('W3', 'gamma2')


def trace_metrics(ctx: CaseContext, produced: Gradients, reference: Gradients, tol: Tolerance,
                  ambiguous: dict[str, np.ndarray] | None = None,
                  slack: dict[str, np.ndarray] | None = None) -> tuple[TensorMetrics, ...]:
    """One TensorMetrics per layer, named 'dz1'..'dzL', or () when a side has no usable dz trace.

    FD's trace carries its error estimate and kink mask in reference.meta['dz_error'/'dz_kink'];
    ambiguous adds the rounding-ambiguity masks 'dz1'.. (CaseContext.kinks), slack the allowances an exact
    reference gives the same units instead (CaseContext.slack).
    """
    return tuple(compare_tensors(trace_items(ctx, produced, reference, tol, ambiguous, slack)))


def trace_items(ctx: CaseContext, produced: Gradients, reference: Gradients, tol: Tolerance,
                ambiguous: dict[str, np.ndarray] | None = None, slack: dict[str, np.ndarray] | None = None) -> list[Item]:
    """trace_metrics' tensors, as compare_tensors' items; [] when a side has no usable dz trace."""
    n = n_layers(ctx.case64.arch)
    if not is_mlp(ctx.case64.arch):
        return _dout_items(ctx, produced, reference, tol, n, ambiguous or {})
    if produced.dz is None or reference.dz is None or len(produced.dz) != n or len(reference.dz) != n:
        return []
    if any(d is None for d in (*produced.dz, *reference.dz)):
        return []
    errs = reference.meta.get("dz_error") or (None,) * n
    kinks = reference.meta.get("dz_kink") or (None,) * n
    ambiguous, slack = ambiguous or {}, slack or {}
    return [(f"dz{layer}", np.asarray(produced.dz[layer - 1]), np.asarray(reference.dz[layer - 1]),
             tol, ctx.scales.get(f"dz{layer}", 0.0), errs[layer - 1], _union(kinks[layer - 1], ambiguous.get(f"dz{layer}")),
             slack.get(f"dz{layer}"))
            for layer in range(1, n + 1)]


def _dout_items(ctx: CaseContext, produced: Gradients, reference: Gradients, tol: Tolerance, n: int,
                ambiguous: dict[str, np.ndarray]) -> list[Item]:
    """The stack's dout traces both sides give, as 'da1'..'da{n}' (None entries, a fused output, left out)."""
    mine, theirs = produced.dout, reference.dout
    if mine is None or theirs is None or len(mine) != n or len(theirs) != n:
        return []
    kinks = reference.meta.get("dout_kink") or (None,) * n
    errs = reference.meta.get("dout_error") or (None,) * n
    return [(f"da{i}", np.asarray(a), np.asarray(b), tol, ctx.scales.get(f"da{i}", 0.0), errs[i - 1],
             _union(kinks[i - 1], ambiguous.get(f"da{i}")))
            for i, (a, b) in enumerate(zip(mine, theirs), start=1) if a is not None and b is not None]


def _union(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None or b is None:
        return b if a is None else a
    return np.asarray(a, dtype=bool) | b


def layer_of(name: str) -> int | None:
    """The 1-based position in a param's stack key ('W3' -> 3, 'gamma2' -> 2); None for 'x' and 'loss'."""
    found = _KEY.fullmatch(name)
    return int(found.group(1)) if found else None


def first_bad_layer(params: tuple[TensorMetrics, ...], traces: tuple[TensorMetrics, ...],
                    n_layers: int) -> tuple[int | None, str]:
    """(layer, 'dz') from the dz traces, (layer + 1, 'da') from a stack's da traces, else (layer, 'params')
    from the layer's params (W_l and b_l, gamma_l, ...), else (None, '').

    With traces that all agree, a wrong param gradient (a bias averaged over the batch) still names its layer.
    """
    for t in sorted(traces, key=lambda t: -int(t.name[2:])):
        if not t.ok:
            if t.name.startswith("dz"):
                return int(t.name[2:]), "dz"
            return min(int(t.name[2:]) + 1, n_layers), "da"  # da_L wrong: the loss's own backward, above layer L
    positions = [p for m in params if not m.ok and (p := layer_of(m.name)) is not None]
    if positions and max(positions) <= n_layers:
        return max(positions), "params"
    return None, ""
