"""Compare a producer's gradients with a reference's: metrics, tolerance, kinks, blame, localisation, diagnosis.

    ctx = CaseContext.build(case, trace)               # float64 copy, forward caches, rounding scales
    c = compare(ctx, produced, reference, "torch")     # per-tensor metrics + dz traces, agree, first bad layer
    blame(...)                                         # one label per reference (blame.py)
    diagnose(ctx, produced, reference, "torch", c.tol, c.tensors, c.first_bad)   # one sentence

Modules: tolerance (the table, the rounding model), metrics (one agreement rule), loss_value (the loss compared
like any tensor), forward (the comparison's own forward), convention (subgradients at exact zeros), blame
(labels across oracles), localise (first bad layer), diagnose (bug shapes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops import Loss
from ..references.layered import n_layers
from ..results import TensorMetrics, Tolerance
from ..spec import Gradients
from .blame import blame
from .convention import exact_zeros, find_convention
from .diagnose import diagnose, factor_name, find_bug
from .localise import first_bad_layer, trace_items, trace_metrics
from .loss_value import loss_item
from .metrics import Item, agrees, compare_gradients, compare_tensor, compare_tensors, explained, gradient_items
from .tolerance import ANALYTIC, EPS, TOLERANCES, CaseContext, Rule, error_scales, kind_of, tolerance_for

__all__ = [
    "ANALYTIC", "EPS", "TOLERANCES", "CaseContext", "Comparison", "Rule", "agrees", "blame", "compare", "compare_all",
    "compare_gradients", "compare_tensor", "compare_tensors", "diagnose", "error_scales", "exact_zeros", "explained",
    "factor_name", "find_bug", "find_convention", "first_bad_layer", "kind_of", "merge_masks", "references_agree", "tolerance_for",
    "trace_metrics",
]


@dataclass(frozen=True)
class Comparison:
    """The producer against one reference: the tolerance, per-tensor metrics (params, 'x', then 'loss'), the dz
    trace metrics ('dz1'..), the number of kink coordinates left out, and the first bad layer."""

    reference: str
    tol: Tolerance
    tensors: tuple[TensorMetrics, ...]
    traces: tuple[TensorMetrics, ...]
    kinks: int
    first_bad: tuple[int | None, str]

    @property
    def agree(self) -> bool:
        return agrees(self.tensors)


def merge_masks(*masks: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """The union, key by key, of kink masks (FD's per coordinate, the rounding-ambiguity ones)."""
    out: dict[str, np.ndarray] = {}
    for mask in masks:
        for key, m in (mask or {}).items():
            out[key] = out[key] | m if key in out and out[key].shape == np.shape(m) else np.asarray(m, dtype=bool)
    return out


def compare(ctx: CaseContext, produced: Gradients, reference: Gradients, name: str, loss_rule: Loss | None = None) -> Comparison:
    """Compare produced with reference (called name) on ctx's case.

    Left out: the reference's own kink mask (FD's: its +-h crossed a kink) and, for FD, the coordinates
    that rounding in the producer's dtype can push across a kink (ctx.kinks); torch and jax bound those
    instead, by what either slope at the straddled unit can change (ctx.slack, straddle.py). Exact zeros
    stay in, so that a subgradient convention there can be seen (convention.py). loss_rule: the loss whose
    exact gradient reference is, when not the declared one (a convention's, byo/user_oracle.py).
    """
    return compare_all(ctx, produced, {name: reference}, loss_rule)[name]


def compare_all(ctx: CaseContext, produced: Gradients, references: dict[str, Gradients],
                loss_rule: Loss | None = None) -> dict[str, Comparison]:
    """compare with each reference (name -> Gradients), in order.

    Every tensor and trace of every reference goes through one compare_tensors call: for tensors this
    small, its cost is mostly per call, not per coordinate.
    """
    items: list[Item] = []
    parts = {}
    for name, reference in references.items():
        tol = ctx.tolerance(name, has_estimate=reference.error is not None)
        masks, slack = ctx.at_kinks(name, reference, loss_rule)
        params = gradient_items(produced, reference, tol, ctx.scales, merge_masks(reference.kink, masks), slack)
        loss = loss_item(produced, reference, tol, ctx.scales.get("loss", 0.0), ctx.dtype)
        params += [loss] if loss is not None else []
        traces = trace_items(ctx, produced, reference, tol, masks, slack)
        parts[name] = (tol, len(items), len(items) + len(params), len(items) + len(params) + len(traces))
        items += params + traces
    metrics = compare_tensors(items)
    out = {}
    for name, (tol, start, mid, end) in parts.items():
        tensors, traces = tuple(metrics[start:mid]), tuple(metrics[mid:end])
        kinks = sum(m.kinks for m in tensors)
        out[name] = Comparison(name, tol, tensors, traces, kinks, first_bad_layer(tensors, traces, n_layers(ctx.case64.arch)))
    return out


def references_agree(ctx: CaseContext, a: Gradients, name_a: str, b: Gradients, name_b: str) -> bool:
    """Do two references (both float64) agree? FD's error estimate and kink mask apply when one is FD."""
    if kind_of(name_a) == "fd" and kind_of(name_b) != "fd":
        a, name_a, b, name_b = b, name_b, a, name_a  # FD on the reference side, where its estimate is read
    tol = tolerance_for(name_b, ctx.case64, has_estimate=b.error is not None, scale=ctx.scale)
    mask = merge_masks(a.kink, b.kink, ctx.kinks64)
    items = gradient_items(a, b, tol, ctx.scales, mask)
    loss = loss_item(a, b, tol, ctx.scales.get("loss", 0.0), "float64")
    return agrees(compare_tensors(items + ([loss] if loss is not None else [])))
