"""The bugs of one dense layer's backward in an MLP, tested at the first bad layer m as hypotheses under the
comparison's own tolerance (BugTest.fits): act' missing, act' in one of its known wrong forms (ops.RULES[act].wrong),
the backward multiplying by W instead of W^T. diagnose.py tries them first and names the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import ops
from ..ops import LOSS_RULES
from ..references.layered import targets
from ..results import Diagnosis, Tolerance
from ..spec import Gradients
from .metrics import compare_tensor
from .tolerance import CaseContext


@dataclass(frozen=True)
class BugTest:
    """One diagnosis: the producer E against reference R (named ref) on ctx's case, under tol."""

    ctx: CaseContext
    mine: Gradients
    ref: Gradients
    ref_name: str
    tol: Tolerance

    def fits(self, name: str, e: np.ndarray | None, h: np.ndarray, *, k: float = 1.0,
             env_key: str | None = None, err: np.ndarray | None = None, kink: np.ndarray | None = None) -> bool:
        """Does E's tensor e agree with hypothesis h = k * (something of R) under the verdict's tolerance?"""
        if e is None:
            return False
        scale = abs(k) * self.ctx.scales.get(env_key or name, 0.0)
        err = None if err is None or err.shape != h.shape else abs(k) * err
        return compare_tensor(name, np.asarray(e), h, self.tol, scale, err=err, kink=kink).ok

    def err(self, name: str) -> np.ndarray | None:
        return (self.ref.error or {}).get(name)

    def kink(self, name: str) -> np.ndarray | None:
        """FD's kink mask for name, joined with the rounding-ambiguity mask (CaseContext.kinks)."""
        masks = [m for m in ((self.ref.kink or {}).get(name), self.ctx.kinks.get(name)) if m is not None]
        return None if not masks else np.logical_or.reduce([np.asarray(m, dtype=bool) for m in masks])


def layer_patterns(t: BugTest, m: int) -> Diagnosis | None:
    """Bugs in the backward of one layer, at the first bad layer m (0: only dL/dx is wrong).

    Every derivative hypothesis for layer m is tried (missing, and each known wrong form of its
    activation); when several fit, the case cannot tell them apart and the diagnosis says so.
    """
    ctx, ref = t.ctx, t.ref
    arch = ctx.case64.arch
    if not ctx.caches:  # a stack without the dense model: the layer's kind has its own bug shapes (Layer.bug_shapes)
        return None
    n = arch.n_layers
    if ref.dz is None or len(ref.dz) != n:
        return None
    params = ctx.case64.params
    dz_err = ref.meta.get("dz_error") or (None,) * n
    if m >= 1:
        found = _derivative_forms(t, m, dz_err)
        if found is not None:
            return found
    if m < n:
        w = params[f"W{m + 1}"]
        if w.shape[0] == w.shape[1]:
            da = ref.dz[m] @ w  # the bug: W, not W^T
            err = None if dz_err[m] is None else dz_err[m] @ np.abs(w)
            if m == 0:
                ok = t.fits("x", t.mine.dx, da, err=err, kink=t.kink("x"))
            else:
                ok = _below(t, m, da, err, from_da=True)
            if ok:
                where = "dL/dx" if m == 0 else f"dL/da{m}"
                name = f"the backward of layer {m + 1} multiplies by W{m + 1} instead of W{m + 1}^T"
                return Diagnosis("transposed_backward", name, f"{name} ({where} = dz{m + 1} @ W{m + 1}); every "
                                 "tensor below inherits it", (("layer", m + 1),))
    return None


def _derivative_forms(t: BugTest, m: int, dz_err) -> Diagnosis | None:
    """Layer m's dz against act'(z) dropped and against each of ops.RULES[act].wrong, given the right dL/da_m."""
    ctx = t.ctx
    arch = ctx.case64.arch
    act = arch.activations[m - 1]
    rule = ops.rule(act)
    if act == "identity" or (m == arch.n_layers and LOSS_RULES[arch.loss].from_logits):
        return None
    da, err = _da(ctx, t.ref, m, dz_err)
    cache = ctx.caches[m - 1]
    act = act.partition(":")[0]  # 'leaky_relu:0.2' reads leaky_relu'; its slope is in rule.derivative
    fits = []
    if _below(t, m, da, err, from_da=False):
        fits.append(("missing_derivative", "", f"the derivative of {act} is missing in layer {m}"))
    for w in rule.wrong:
        dz = w.backward(cache.z, cache.a, da)
        dz_e = None if err is None else np.abs(w.backward(cache.z, cache.a, err))
        if _below(t, m, dz, dz_e, from_da=False):
            fits.append(("wrong_derivative", w.code, f"layer {m} computes {act}' as {w.written} (should be {rule.derivative})"))
    if not fits:
        return None
    inherit = "; every tensor below inherits it"
    base = (("layer", m), ("activation", act))
    if len(fits) > 1:
        name = " or ".join(f[2] for f in fits)
        return Diagnosis("ambiguous_derivative", name, f"{name}: this case cannot tell them apart{inherit}",
                         base + (("forms", ",".join(f[1] or "missing" for f in fits)),))
    code, form, name = fits[0]
    if code == "missing_derivative":
        return Diagnosis(code, name, f"dz{m} = dL/da{m} of {t.ref_name}: {name} "
                         f"(engine/{t.ref_name} = 1/{act}'(z{m})){inherit}", base)
    return Diagnosis(code, name, name + inherit, base + (("form", form),))


def _da(ctx: CaseContext, ref: Gradients, m: int, dz_err) -> tuple[np.ndarray, np.ndarray | None]:
    """The reference's dL/da_m: from its next layer's dz (m < L), or the loss's backward (m = L)."""
    n = ctx.case64.arch.n_layers
    if m == n:
        rule = LOSS_RULES[ctx.case64.arch.loss]
        return rule.backward(ctx.caches[-1].a, targets(ctx.case64)), None
    w = ctx.case64.params[f"W{m + 1}"]
    err = None if dz_err[m] is None else dz_err[m] @ np.abs(w).T
    return ref.dz[m] @ w.T, err


def _below(t: BugTest, m: int, da: np.ndarray, err: np.ndarray | None, *, from_da: bool) -> bool:
    """Does the producer's layer m match a hypothesised dL/da_m?

    from_da: da is what the producer received, so its dz_m = act'(z_m) * da (via ops.RULES);
    otherwise da is the hypothesised dz_m itself (the derivative was skipped). Checked on the
    producer's da/dz trace when it has one, else on its dW_m and db_m.
    """
    ctx, mine = t.ctx, t.mine
    cache = ctx.caches[m - 1]
    act = ctx.case64.arch.activations[m - 1]
    if from_da and mine.da is not None and len(mine.da) >= m and mine.da[m - 1] is not None:
        return t.fits(f"da{m}", mine.da[m - 1], da, err=err)
    dz = ops.rule(act).backward(cache.z, cache.a, da) if from_da else da
    dz_err = None if err is None else (np.abs(ops.rule(act).backward(cache.z, cache.a, err)) if from_da else err)
    if mine.dz is not None and len(mine.dz) >= m and mine.dz[m - 1] is not None:
        return t.fits(f"dz{m}", mine.dz[m - 1], dz, env_key=f"dz{m}", err=dz_err, kink=t.kink(f"dz{m}"))
    w_err = None if dz_err is None else np.abs(cache.a_prev).T @ dz_err
    b_err = None if dz_err is None else dz_err.sum(axis=0)
    dw = cache.a_prev.T @ dz + ctx.case64.arch.weight_decay * ctx.case64.params[f"W{m}"]  # the L2 term's, if declared
    return (t.fits(f"W{m}", mine.grads.get(f"W{m}"), dw, err=w_err, kink=t.kink(f"W{m}"))
            and t.fits(f"b{m}", mine.grads.get(f"b{m}"), dz.sum(axis=0), err=b_err, kink=t.kink(f"b{m}")))
