"""Where a user's bug is, relative to the loss convention the gradient follows (issue 13).

A hand-written gradient may follow another loss than the declared one (half the sum of squares, a summed
cross-entropy) and carry a real bug as well. Against the declared loss every layer then disagrees from the
output down, and the bug is placed at the output layer. So each loss the gradient may follow localises the
disagreement: the declared loss, each of conventions.variants (its gradient from engine.backward), and the
user's own loss_fn (its finite differences, through the fd:loss_fn verdict). The one the gradient follows
for the most layers from the output down, the lowest first bad layer, is the convention; every ENGINE
verdict of the case names that layer, and the diagnosis is made relative to that loss's gradient.
"""

from __future__ import annotations

from dataclasses import replace

from .. import engine
from ..compare import CaseContext, Comparison, compare, kind_of
from ..compare.diagnose import find_bug
from ..compare.localise import layer_of
from ..compare.metrics import norm
from ..results import CheckResult, Verdict
from ..spec import Gradients
from .conventions import Variant, model_forward, variants
from .user_fd import SOURCE

CONVENTION_REF = "that gradient"   # how a diagnosis relative to a convention's gradient names it
DECLARED_REF = "declared"


def relocalise(result: CheckResult, ctx: CaseContext, produced: Gradients) -> CheckResult:
    """result's ENGINE verdicts localised relative to the loss the gradient follows furthest down from the output
    (ties: the declared loss, then the conventions in variants' order, then the user's loss_fn)."""
    if result.label != "ENGINE":
        return result
    c64 = ctx.case64
    # The comparison's own forward for an MLP; a stack has none, so the layers' forward (as conventions.explain).
    caches, out = (list(ctx.caches), None) if ctx.caches else model_forward(c64)

    def gradient(variant: Variant | None) -> Gradients:
        rule = None if variant is None else variant.rule
        g = engine.backward(c64.arch, c64.params, caches, c64.targets, loss_rule=rule, output=out)
        # a stack's bug shapes are tried under the loss this gradient follows (compare/layer_bugs.py)
        return g if rule is None else replace(g, meta={**g.meta, "loss_rule": rule})

    declared = gradient(None)
    best: tuple[int, Variant | None, Gradients, Comparison] | None = None
    for variant in (None, *variants(c64.arch)):
        g = declared if variant is None else gradient(variant)
        c = compare(_scaled(ctx, declared, g), produced, g, DECLARED_REF if variant is None else CONVENTION_REF,
                    None if variant is None else variant.rule)
        layer = 0 if c.agree else c.first_bad[0] or 0   # no layer: every param agrees, only x or the loss differ
        if best is None or layer < best[0]:
            best = (layer, variant, g, c)
    user = [v.first_bad_layer for v in result.verdicts
            if v.reference == SOURCE and v.label == "ENGINE" and v.first_bad_layer is not None]
    if user and (best is None or user[0] < best[0]):
        return _place(result, user[0], "params")   # the user's own loss explains more layers than any we know
    if best is None or best[0] == 0:   # a known loss explains every param: nothing to place against another loss
        return replace(result, verdicts=tuple(_at(v, v.first_bad_layer, v.localised_by)
                                              if v.label == "ENGINE" and v.first_bad_layer is not None else v
                                              for v in result.verdicts))
    layer, variant, g, c = best
    if variant is None:   # torch's and jax's own localisation is against the declared loss already: FD's may differ
        return replace(result, verdicts=tuple(_at(v, layer, c.first_bad[1]) if v.label == "ENGINE" and kind_of(v.reference) == "fd"
                                              else v for v in result.verdicts))
    bug = find_bug(_scaled(ctx, declared, g), produced, g, CONVENTION_REF, c.tol, c.tensors, c.first_bad)
    if bug is not None:
        bug = replace(bug, sentence=f"relative to {variant.words}: {bug.sentence}",
                      name=f"{bug.name} (the rest follows {variant.words})")
    return replace(result, verdicts=tuple(replace(_at(v, layer, c.first_bad[1]), bug=bug, diagnosis=bug.sentence if bug else "")
                                          if v.label == "ENGINE" else v for v in result.verdicts))


def _place(result: CheckResult, layer: int, how: str) -> CheckResult:
    """Every ENGINE verdict names layer (their diagnoses, each relative to its own reference, stay)."""
    return replace(result, verdicts=tuple(_at(v, layer, how) if v.label == "ENGINE" else v for v in result.verdicts))


def _at(v: Verdict, layer: int, how: str) -> Verdict:
    """v placed at layer; at no layer when none of that layer's tensors disagrees with v's reference: FD of a
    noisy loss_fn, whose error estimate covers the top layers, cannot say where the bug is (the others do)."""
    if how == "params" and not any(layer_of(t.name) == layer for t in v.failing_tensors):
        return replace(v, first_bad_layer=None, localised_by="")
    return replace(v, first_bad_layer=layer, localised_by=how)


def _scaled(ctx: CaseContext, declared: Gradients, g: Gradients) -> CaseContext:
    """ctx with the rounding scales E_t, made for the declared gradient, scaled with g (a multiple of it, or near)."""
    if g is declared:
        return ctx
    scales = dict(ctx.scales)
    for name, s in ctx.scales.items():
        d, h = declared.grads.get(name), g.grads.get(name)
        if d is not None and h is not None and norm(d) > 0:
            scales[name] = s * norm(h) / norm(d)
    return replace(ctx, scales=scales)
