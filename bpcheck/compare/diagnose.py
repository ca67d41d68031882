"""Diagnosis: test a disagreement against the shapes that backprop bugs leave, in one sentence.

Each bug shape is a hypothesis H about what the producer computed, built from the reference's
own gradients (and its dz trace); the producer's tensor must agree with H under the same
tolerance as the comparison itself (compare_tensor), so a diagnosis is as strict as a verdict:
  all zeros            E_t = 0 while R_t is not
  missing act'         the first bad layer m has dz_m = dL/da_m (R's), i.e. E/R = 1/act'(z_m)
  wrong act'           dz_m = w(z_m, a_m, dL/da_m) for one of the activation's known wrong forms w
                       (ops.RULES[act].wrong: tanh' written 1 - a, sigma' applied to a, ...)
  transposed backward  dL/da_{m} = dz_{m+1} @ W_{m+1} instead of dz_{m+1} @ W_{m+1}^T (square W)
  transposed dW        E_W = R_W^T
  bias averaged        every wrong tensor is a b, and E_b = R_b / batch (weights summed)
  uniform scale        E_t = k R_t, k named when it is 1/batch, batch, 2, 1/2, -1 (a sign flip); never k = 1,
                       and a k that several names fit (batch = 2) is said to be ambiguous
The answer is a results.Diagnosis: a code, its parameters, a name without the case's numbers (what a
summary groups by) and the sentence for this case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import ops
from ..ops import LOSS_RULES
from ..references.layered import is_mlp, targets
from ..references.layered import n_out as output_width
from ..results import Diagnosis, TensorMetrics, Tolerance
from ..spec import Gradients
from .layer_bugs import located, stack_bug
from .metrics import compare_tensor
from .tolerance import CaseContext


@dataclass(frozen=True)
class _Test:
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


FACTOR_NAMES = ("1/batch", "batch", "2", "1/2", "a sign flip", "n_out", "1/n_out")


def named_factors(k: float, batch: int, n_out: int, rel: float) -> list[str]:
    """The names k fits (within rel): several when the case cannot tell them apart (batch = 2 = n_out);
    none for k = 1, which is no factor at all, whatever batch = n_out = 1 would make of it."""
    if abs(k - 1.0) <= rel:
        return []
    values = (1.0 / batch, float(batch), 2.0, 0.5, -1.0, float(n_out), 1.0 / n_out)
    found = [label for value, label in zip(values, FACTOR_NAMES) if abs(k - value) <= rel * abs(value)]
    return list(dict.fromkeys(found))


def factor_name(k: float, batch: int, n_out: int, rel: float) -> str:
    """'1/batch' for k = 1/batch (within rel), and so on; '' for a factor with no name (or k = 1).

    A factor several names fit says so: '2 or batch (this case cannot tell them apart)'."""
    found = named_factors(k, batch, n_out, rel)
    if len(found) > 1:
        return " or ".join(found) + " (this case cannot tell them apart)"
    return found[0] if found else ""


def _fmt(k: float) -> str:
    return f"{k:.6g}"


def _join(names: list[str]) -> str:
    return ", ".join(f"d{n}" for n in names)


def diagnose(ctx: CaseContext, mine: Gradients, ref: Gradients, ref_name: str, tol: Tolerance,
             metrics: tuple[TensorMetrics, ...], first_bad: tuple[int | None, str]) -> str:
    """One plain sentence on what the disagreement looks like; '' when nothing disagrees."""
    found = find_bug(ctx, mine, ref, ref_name, tol, metrics, first_bad)
    return "" if found is None else found.sentence


def find_bug(ctx: CaseContext, mine: Gradients, ref: Gradients, ref_name: str, tol: Tolerance,
             metrics: tuple[TensorMetrics, ...], first_bad: tuple[int | None, str]) -> Diagnosis | None:
    """The diagnosis as data (results.Diagnosis); None when nothing disagrees. A stack's names the layer (its
    position and kind) and, when one fits, that layer's bug shape (layer_bugs.py)."""
    bad = [m.name for m in metrics if not m.ok and not m.name.startswith(("dz", "da")) and m.name != "loss"]
    if not bad:
        return _loss_only(metrics, ref_name)
    t = _Test(ctx, mine, ref, ref_name, tol)
    if not is_mlp(ctx.case64.arch):
        found = stack_bug(ctx, mine, ref, ref_name, tol, bad, first_bad, t.kink)
        return found or located(ctx.case64.arch, _shapes(t, bad, first_bad), bad, first_bad, mine.dout is not None)
    return _shapes(t, bad, first_bad)


def _shapes(t: _Test, bad: list[str], first_bad: tuple[int | None, str]) -> Diagnosis:
    ctx, mine, ref, ref_name = t.ctx, t.mine, t.ref, t.ref_name
    theirs, ours = ref.tensors(), mine.tensors()
    layer, how = first_bad
    # Layer patterns first: a wrong derivative can zero a layer's gradient (the leaky slope dropped where
    # every z < 0), and then it, not 'all zeros', is the bug's name.
    if how == "dz" or (how == "params" and mine.dz is None) or (layer is None and bad == ["x"]):
        found = _layer_patterns(t, layer if layer is not None else 0)
        if found is not None:
            return found
    zeros = [n for n in bad if n in ours and np.shape(ours[n]) == np.shape(theirs[n])
             and not np.any(ours[n]) and np.any(theirs[n])]
    if zeros and len(zeros) == len(bad):
        verb = "is" if len(zeros) == 1 else "are"
        name = f"{_join(zeros)} {verb} all zeros"
        return Diagnosis("zeros", name, f"{name} ({ref_name}'s {verb} not)", (("tensors", _join(zeros)),))
    transposed = [n for n in bad if n.startswith("W") and ours.get(n) is not None
                  and t.fits(n, ours[n], theirs[n].T, err=_t(t.err(n)), kink=_t(t.kink(n)))]
    if transposed and len(transposed) == len(bad):
        name = f"{_join(transposed)} transposed"
        return Diagnosis("transposed_dW", name, f"{_join(transposed)} = {ref_name}'s transposed: the weight gradient "
                         "must be a_prev^T @ dz, shaped like W", (("tensors", _join(transposed)),))
    batch = ctx.case.batch
    if batch > 1 and all(n.startswith("b") for n in bad) and all(
            t.fits(n, ours.get(n), theirs[n] / batch, k=1 / batch, err=t.err(n), kink=t.kink(n)) for n in bad):
        name = "the bias gradient is averaged over the batch while the weight gradient is summed"
        return Diagnosis("bias_averaged", name, f"{_join(bad)} = 1/batch x {ref_name}: {name}",
                         (("tensors", _join(bad)),))
    return _scales(t, bad, [n for n in theirs])


def _loss_only(metrics: tuple[TensorMetrics, ...], ref_name: str) -> Diagnosis | None:
    """Only the loss value differs, every gradient agrees: the forward computes another number than the loss
    it differentiates (a constant added, a term left out of the value, a wrong reduction in the value only)."""
    loss = next((m for m in metrics if m.name == "loss" and not m.ok), None)
    if loss is None or loss.worst is None:
        return None
    e = loss.worst
    name = "the loss value differs while every gradient agrees"
    return Diagnosis("loss_value", name, f"{name} (producer {e.engine:.6g}, {ref_name} {e.reference:.6g}): the forward "
                     "reports another number than the loss its backward differentiates", (("tensors", "loss"),))


def _t(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else a.T


def _scales(t: _Test, bad: list[str], everything: list[str]) -> Diagnosis:
    """Group the wrong tensors by a common factor k (E_t = k R_t everywhere); name k; the rest is unexplained.

    k = 1 is never a group: a tensor that only fits R itself fits no bug shape."""
    ours, theirs = t.mine.tensors(), t.ref.tensors()
    rel = 1e-6 if t.ctx.case.x.dtype == np.float64 else 1e-4
    batch, n_out = t.ctx.case.batch, output_width(t.ctx.case.arch)
    groups: list[tuple[float, list[str]]] = []
    unexplained = []
    for n in bad:
        e, r = ours.get(n), theirs[n]
        rr = float(np.vdot(r, r))
        if e is None or np.shape(e) != np.shape(r) or rr == 0:
            unexplained.append(n)
            continue
        k = float(np.vdot(np.asarray(e, dtype=np.float64), r)) / rr
        named = [v for v in (1 / batch, batch, 2.0, 0.5, -1.0, n_out, 1 / n_out) if abs(k - v) <= rel * abs(v)]
        k = float(named[0]) if named else k
        if abs(k - 1.0) <= rel or not t.fits(n, e, k * r, k=k, err=t.err(n), kink=t.kink(n)):
            unexplained.append(n)
            continue
        for group in groups:
            if abs(group[0] - k) <= rel * abs(k):
                group[1].append(n)
                break
        else:
            groups.append((k, [n]))
    parts, names, params = [], [], []
    for k, tensors in groups:
        label = factor_name(k, batch, n_out, rel)
        label = "" if label == _fmt(k) else label  # '2 x torch (2)' says nothing more
        who = "every gradient" if len(tensors) == len(everything) and len(everything) > 1 else _join(tensors)
        parts.append(f"{who} = {_fmt(k)} x {t.ref_name} everywhere" + (f" ({label})" if label else ""))
        # A named factor is the same bug on every case; an unnamed one differs from case to case.
        names.append(f"{who} = {label or 'a factor with no name'} x the reference")
        params.append((who, label or _fmt(k)))
    code = "factor" if parts else "unexplained"
    if unexplained:
        worst = max((m for m in unexplained), key=lambda n: np.size(theirs[n]))
        e, r = ours.get(worst), theirs[worst]
        if e is None or np.shape(e) != np.shape(r):
            shape = None if e is None else np.shape(e)
            parts.append(f"d{worst} has shape {shape}, but {t.ref_name}'s is {np.shape(r)}")
            names.append(f"d{worst} has the wrong shape")
            code = "shape"
        else:
            fit = f"{_join(unexplained)} fit{'s' if len(unexplained) == 1 else ''} no known bug shape"
            parts.append(f"{fit} ({_spread(e, r)})")
            names.append(fit)
            code = "unexplained" if code != "factor" else "factor+unexplained"
        params.append(("unexplained", _join(unexplained)))
    return Diagnosis(code, "; ".join(names), "; ".join(parts), tuple(params))


def _spread(e: np.ndarray, r: np.ndarray) -> str:
    """How much of a tensor is wrong: 'k of n coordinates differ by more than 1% of its scale'."""
    diff = np.abs(np.asarray(e, dtype=np.float64) - r)
    scale = max(float(np.abs(r).max()), float(np.abs(e).max()), 1e-300)
    n = int(np.count_nonzero(diff > 1e-2 * scale))
    return f"{n} of {diff.size} coordinates differ by more than 1% of its largest entry"


def _layer_patterns(t: _Test, m: int) -> Diagnosis | None:
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


def _derivative_forms(t: _Test, m: int, dz_err) -> Diagnosis | None:
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


def _below(t: _Test, m: int, da: np.ndarray, err: np.ndarray | None, *, from_da: bool) -> bool:
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
