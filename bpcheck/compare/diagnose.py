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
summary groups by) and the sentence for this case. The per-layer ones (act' missing or wrong, W for W^T) live in
dense_layer_bugs.py.
"""

from __future__ import annotations

import numpy as np

from ..references.layered import is_mlp
from ..references.layered import n_out as output_width
from ..results import Diagnosis, TensorMetrics, Tolerance
from ..spec import Gradients
from .dense_layer_bugs import BugTest, layer_patterns
from .layer_bugs import located, stack_bug
from .tolerance import CaseContext

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
    t = BugTest(ctx, mine, ref, ref_name, tol)
    if not is_mlp(ctx.case64.arch):
        found = stack_bug(ctx, mine, ref, ref_name, tol, bad, first_bad, t.kink)
        return found or located(ctx.case64.arch, _shapes(t, bad, first_bad), bad, first_bad, mine.dout is not None)
    return _shapes(t, bad, first_bad)


def _shapes(t: BugTest, bad: list[str], first_bad: tuple[int | None, str]) -> Diagnosis:
    ctx, mine, ref, ref_name = t.ctx, t.mine, t.ref, t.ref_name
    theirs, ours = ref.tensors(), mine.tensors()
    layer, how = first_bad
    # Layer patterns first: a wrong derivative can zero a layer's gradient (the leaky slope dropped where
    # every z < 0), and then it, not 'all zeros', is the bug's name.
    if how == "dz" or (how == "params" and mine.dz is None) or (layer is None and bad == ["x"]):
        found = layer_patterns(t, layer if layer is not None else 0)
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


def _scales(t: BugTest, bad: list[str], everything: list[str]) -> Diagnosis:
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
