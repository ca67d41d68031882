"""The user's loss_fn as a fourth oracle: its FD verdict, and its place in the blame vote.

    result = with_user_fd(result, ctx, declared, produced, loss, case, name)

The user's gradient is compared with FD of the user's own loss (user_fd.py: kinks found by bpcheck's
forward, noise measured from the user's evaluations). Then the vote, with torch and jax (or, when
neither ran, bpcheck's engine) judging the gradient of the declared loss:

  FD of loss_fn agrees                -> the analytic ENGINE verdicts become CONVENTION: the gradient is
                                         right for the user's loss, which is not the declared one; unless
                                         FD's own error estimate is wider than the difference it would have
                                         to resolve (from the declared gradient; or, when loss_fn computes a
                                         known convention's loss that the gradient follows in most tensors,
                                         from that loss's exact gradient): then it abstains, says so, and
                                         torch's and jax's ENGINE stands.
  the analytic references agree       -> FD of loss_fn alone cannot make it ENGINE: FD_NOISE when the
                                         loss_fn's value is the declared loss's (the loss is noisy here),
                                         else CONVENTION naming the factor between the two losses.
  both disagree, and the gradient is  -> the same two answers relative to that convention's loss: FD_NOISE
  exactly a known convention's           when loss_fn's value is that loss's, else ENGINE (the gradient
                                         is not that of the user's own loss).
  both disagree otherwise             -> ENGINE: a real bug, localised and diagnosed relative to the
                                         convention the gradient follows (relocalise.py).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import engine
from ..compare import CaseContext, compare, compare_gradients, factor_name, first_bad_layer, kind_of, merge_masks
from ..compare.metrics import norm
from ..ops import LOSS_RULES
from ..references.layered import n_layers, n_out
from ..results import CheckResult, Verdict, worst_label
from ..spec import Case, Gradients
from .conventions import Explanation, explain, model_forward
from .user_fd import SOURCE, NonFiniteLoss, user_gradients

ENGINE_REF = "engine"       # the verdict name of bpcheck's engine on the declared loss (when no torch or jax ran)
SAME_VALUE = 1e-3           # loss_fn's value within this fraction of a loss's value: the same loss, here
AGREEING = ("AGREE", "KINK", "CONVENTION")


def with_user_fd(result: CheckResult | None, ctx: CaseContext, declared: Gradients, produced: Gradients, loss,
                 case: Case) -> list[Verdict]:
    """The verdicts of result (torch, jax; or bpcheck's engine when neither ran), relabelled by the vote,
    with the verdict against FD of the user's loss last."""
    verdicts = list(result.verdicts) if result is not None else []
    if not any(kind_of(v.reference) == "analytic" and v.label not in ("SKIPPED", "ERROR") for v in verdicts):
        # bpcheck's engine (checked against torch and jax in its own tests) gives the declared loss's gradient.
        c = compare(ctx, produced, declared, ENGINE_REF)
        verdicts.append(Verdict(ENGINE_REF, "AGREE" if c.agree else "ENGINE", c.tensors + c.traces, c.tol,
                                *(c.first_bad if not c.agree else (None, "")), c.kinks,
                                reason="" if c.agree else f"differs from bpcheck's engine on the declared {case.arch.loss}"))
    try:
        fd = user_gradients(loss, ctx.case64, with_x=produced.dx is not None)
    except NonFiniteLoss as exc:
        mine = Verdict(SOURCE, "ERROR", reason=str(exc))
        found = explain(ctx, {k: np.asarray(v) for k, v in produced.grads.items()})
        if found.variant is not None and not found.unmatched:
            # No FD of the user's loss here, but the gradient is exactly a known convention's: not a bug.
            return [_convention(v, found.sentence) for v in verdicts] + [mine]
        return verdicts + [mine]
    metrics, tol = _compare(ctx, declared, produced, fd)
    agree = all(m.ok for m in metrics)
    kinks = sum(m.kinks for m in metrics)
    analytic = [v for v in verdicts if kind_of(v.reference) == "analytic" and v.label not in ("SKIPPED", "ERROR")]
    analytic_agree = all(v.label in AGREEING for v in analytic)
    if agree:
        mine = Verdict(SOURCE, "KINK" if kinks else "AGREE", metrics, tol, kinks=kinks,
                       reason="coordinates whose finite difference crosses a kink are left out" if kinks else "")
        found = None if analytic_agree else explain(ctx, {k: np.asarray(v) for k, v in produced.grads.items()})
        exact = None if found is None else _exact_for_loss_fn(ctx, fd, found)
        if exact is not None and not _resolves(ctx, declared, produced, exact, fd):
            # loss_fn computes a known convention's loss, whose exact gradient the user's differs from in some
            # tensors: FD of loss_fn, whose error is wider than that difference, cannot outvote torch and jax.
            return verdicts + [replace(mine, reason=(
                f"abstains: agrees within its error estimate, which is wider than the difference between the gradient "
                f"and the exact gradient of {found.variant.words} (the loss loss_fn computes here) in "
                f"{', '.join('d' + n for n in found.unmatched)}"))]
        if analytic_agree or not all(m.ok for m in _compare(ctx, declared, declared, fd)[0]):
            return [_convention(v, "the user's loss_fn is not the declared "
                                f"{case.arch.loss}; the gradient is right for the user's loss") for v in verdicts] + [mine]
        # FD of loss_fn cannot tell the user's gradient from the declared one here (its error is wider than their
        # difference): it vouches for no convention; a known convention that explains every tensor still does.
        mine = replace(mine, reason="agrees within its error estimate, which is too wide here to tell the gradient "
                       f"from the declared {case.arch.loss}'s")
        if found.variant is not None and not found.unmatched and _same_value(fd, found.variant, ctx):
            return [_convention(v, found.sentence) for v in verdicts] + [mine]
        return verdicts + [mine]
    layer, how = first_bad_layer(_resolved(metrics, ctx, declared, fd, verdicts), (), n_layers(case.arch))
    head = dict(tensors=metrics, tolerance=tol, first_bad_layer=layer, localised_by=how, kinks=kinks)
    output = loss_input(ctx, LOSS_RULES[case.arch.loss])
    if analytic_agree:
        return verdicts + [_noise_or_factor(head, fd, declared.loss, f"the declared {case.arch.loss}",
                                            "torch, jax" if any(v.reference != ENGINE_REF for v in analytic)
                                            else "bpcheck's engine", case)]
    found = explain(ctx, {k: np.asarray(v) for k, v in produced.grads.items()})
    if found.variant is not None and not found.unmatched:
        variant = found.variant
        value = variant_value(ctx, variant, output)
        mine = _noise_or_factor(head, fd, value, variant.words, "the gradient of that loss", case)
        if mine.label == "FD_NOISE" and variant.assumes:
            # loss_fn is the declared loss (or its sum); the gradient assumes something of the data: not noise.
            reason = f"the gradient assumes {variant.assumes}: {found.sentence}"
            return [_convention(v, reason) for v in verdicts] + [replace(mine, label="CONVENTION", reason=reason)]
        if mine.label == "FD_NOISE":
            return [_convention(v, found.sentence) for v in verdicts] + [mine]
        return verdicts + [replace(mine, label="ENGINE", reason=f"{found.sentence}; but the user's loss_fn is not "
                                   f"that loss ({fd.loss:.6g} against {value:.6g}): the gradient is not that of loss_fn")]
    reason = "differs from finite differences of the user's loss_fn"
    if found.variant is not None and found.unmatched:
        reason += f"; the gradient follows {found.variant.words} except in {', '.join('d' + n for n in found.unmatched)}"
    return verdicts + [Verdict(SOURCE, "ENGINE", **head, reason=reason)]


def assumption(result: CheckResult, found: Explanation, loss: str) -> CheckResult:
    """ENGINE -> CONVENTION when the gradient is exactly the declared loss's under a valid assumption about the
    data that these targets break (the textbook softmax(z) - y on rows not summing to 1). The same assumption
    with another scaling (summed) stays ENGINE without a loss_fn saying so, as any scaling does."""
    variant = found.variant
    if result.label != "ENGINE" or variant is None or found.unmatched or variant.value is not LOSS_RULES[loss]:
        return result
    verdicts = tuple(_convention(v, f"the gradient assumes {variant.assumes}") for v in result.verdicts)
    labels = [v.label for v in verdicts]
    return replace(result, verdicts=verdicts, label=worst_label(labels), ok=not set(labels) & set(result.fail_on))


def loss_input(ctx: CaseContext, rule) -> np.ndarray:
    """What rule reads on ctx's case: the comparison's own forward for an MLP (z_L from logits, else a_L); for a
    stack, which has none, the layers' forward (the output, or the last dense layer's z)."""
    if ctx.caches:
        last = ctx.caches[-1]
        return last.z if rule.from_logits else last.a
    c64 = ctx.case64
    out, caches = engine.forward(c64.arch, c64.params, c64.x)
    return caches[-1].z if rule.from_logits else out


def variant_value(ctx: CaseContext, variant, out: np.ndarray | None = None) -> float:
    """The value of the loss a variant's gradient is of, on ctx's case: its loss (or variant.value) on out, by
    default on the comparison's forward (loss_input); for another net (a gelu layer in its other form,
    variant.arch), that net's own forward and loss."""
    c64 = ctx.case64
    if variant.arch is not None:
        return engine.loss(variant.arch, c64.params, c64.x, c64.targets)
    rule = variant.value or variant.rule
    return float(rule.forward(loss_input(ctx, rule) if out is None else out, c64.targets))


def _exact_for_loss_fn(ctx: CaseContext, fd: Gradients, found: Explanation) -> Gradients | None:
    """The exact gradient of the loss loss_fn computes, when the user's gradient follows a known convention in most
    tensors but not all (a bug under that convention) and loss_fn's value is that convention's loss; else None."""
    if found.variant is None or not found.unmatched or found.complete or not _same_value(fd, found.variant, ctx):
        return None
    return _gradient_of(ctx, found.variant)


def _gradient_of(ctx: CaseContext, variant) -> Gradients:
    """The exact gradient of variant's loss on ctx's case, on the comparison's own forward (a stack's: the layers'),
    or, for another net (variant.arch), on that net's own forward."""
    c64 = ctx.case64
    if variant.arch is not None:
        out, caches = engine.forward(variant.arch, c64.params, c64.x)
        return engine.backward(variant.arch, c64.params, caches, c64.targets, output=out)
    caches, out = (list(ctx.caches), None) if ctx.caches else model_forward(c64)
    return engine.backward(c64.arch, c64.params, caches, c64.targets, loss_rule=variant.rule, output=out)


def _resolves(ctx: CaseContext, declared: Gradients, produced: Gradients, exact: Gradients, fd: Gradients) -> bool:
    """Is FD of loss_fn fine enough to see the gradient differ from exact? Its own error estimate and kink mask,
    laid on exact's values: when they explain the whole difference, FD cannot tell the two apart."""
    laid = replace(fd, grads=exact.grads, dx=exact.dx if fd.dx is not None else None)
    return not all(m.ok for m in _compare(ctx, declared, produced, laid)[0])


def _same_value(fd: Gradients, variant, ctx: CaseContext) -> bool:
    """Is loss_fn's value that of the variant's loss (or of the loss its assumption leaves, variant.value)?"""
    return _close(fd.loss, variant_value(ctx, variant))


def _close(a: float, b: float) -> bool:
    # Relative only: a noise estimate is no bound on a loss that is garbage (nan_to_num of log(0) is 1.8e308).
    return abs(a - b) <= SAME_VALUE * max(abs(a), abs(b))


def _compare(ctx: CaseContext, declared: Gradients, produced: Gradients, fd: Gradients):
    # The rounding scales were made for the declared loss; the user's may be a multiple of it.
    scales = {}
    for key, s in ctx.scales.items():
        d = norm(declared.grads[key]) if key in declared.grads else 0.0
        mine = fd.grads.get(key) if key != "x" else fd.dx
        scales[key] = s * (norm(mine) / d if d > 0 and mine is not None else 1.0)
    tol = ctx.tolerance(SOURCE)
    return compare_gradients(produced, fd, tol, scales, kink=merge_masks(fd.kink, ctx.kinks)), tol


def _resolved(metrics, ctx: CaseContext, declared: Gradients, fd: Gradients, verdicts: list[Verdict]):
    """metrics for localisation: a tensor FD of loss_fn agrees with only because its error estimate also covers the
    declared gradient, which the analytic references find the user's tensor differs from, is not cleared by it
    (a float32 loss_fn's noise hides the top layers): it counts as disagreeing, as they say."""
    loose = {m.name for m in _compare(ctx, declared, declared, fd)[0] if m.ok}
    differs = {t.name for v in verdicts if kind_of(v.reference) == "analytic" for t in v.failing_tensors}
    return tuple(replace(m, ok=False) if m.ok and m.name in loose and m.name in differs else m for m in metrics)


def _convention(v: Verdict, reason: str) -> Verdict:
    return replace(v, label="CONVENTION", reason=reason) if v.label == "ENGINE" else v


def _noise_or_factor(head: dict, fd: Gradients, value: float, what: str, judges: str, case: Case) -> Verdict:
    """FD of loss_fn differs while the gradient is exactly that of a loss of this value: which is it?"""
    if _close(fd.loss, value):
        return Verdict(SOURCE, "FD_NOISE", **head, reason=(
            f"the user's loss_fn is noisy here: its value is that of {what} ({fd.loss:.6g}), whose gradient "
            f"{judges} confirm, but its finite differences differ beyond their estimate (noise per evaluation "
            f"{fd.meta.get('noise', 0.0):.2g}, e.g. float32 internals or log(1 - a) at saturation)"))
    k = fd.loss / value if value else float("inf")
    label = factor_name(k, case.batch, n_out(case.arch), 1e-6) if np.isfinite(k) else ""
    text = f"{k:.6g}" + (f" ({label})" if label else "")
    return Verdict(SOURCE, "CONVENTION", **head, reason=(
        f"the user's loss_fn is {text} x {what} here ({fd.loss:.6g} against {value:.6g}); the gradient is that of "
        f"{what}, which {judges} confirm, not of loss_fn"))
