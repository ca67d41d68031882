"""Which loss convention a user's gradients follow, and what the rest of their disagreement looks like.

A hand-written backprop often differentiates another loss than the one it reports: the sum instead
of the mean, half the sum of squares (the 2/N factor gone), or binary cross-entropy on a sigmoid
output while MSE is declared (the output delta y_hat - y). Each alternative is an ops.Loss built
from LOSS_RULES by a scale (as a function of the output's shape) or by swapping in another rule,
and its gradient comes from engine.backward(loss_rule=...) on the case: the backward is never
written twice. The user's tensors are matched against each alternative under the analytic
tolerance of the comparison (compare_tensor); the alternative that explains the most tensors is
named, and the tensors it leaves are tested against simple shapes relative to it (a bias averaged
over the batch, a weight-decay term, a uniform factor).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import engine
from ..compare import CaseContext, compare_tensor, factor_name
from ..compare.metrics import norm
from ..ops import LOSS_RULES, RULES, Loss
from ..references.layered import n_out as output_width
from ..spec import Arch, Grads

Factor = Callable[[np.ndarray], float]


def _n(out: np.ndarray) -> float:
    return float(out.shape[-1] * out.shape[-2])


def _batch(out: np.ndarray) -> float:
    return float(out.shape[-2])


def _outputs(out: np.ndarray) -> float:
    return float(out.shape[-1])


@dataclass(frozen=True)
class Variant:
    """An alternative loss: what the user may have differentiated, in plain words."""

    key: str
    words: str     # "the sum of squared errors (reduction='sum')"
    why: str       # what that means for the gradient, e.g. "the 2/N factor is missing"
    rule: Loss
    # A valid assumption about the data rather than another loss ("each target row sums to 1"): the gradient
    # is CONVENTION, and a user's loss_fn may compute `value` (the declared loss, maybe scaled) instead of rule.
    assumes: str = ""
    value: Loss | None = None
    # Another net rather than another loss (a gelu layer in its other form): its gradient is that arch's,
    # from its own forward, with the declared loss.
    arch: Arch | None = None


def _scaled(key: str, base: Loss, factor: Factor) -> Loss:
    return Loss(key, lambda o, y: factor(o) * base.forward(o, y), lambda o, y: factor(o) * base.backward(o, y),
                base.from_logits, base.kink)


def _textbook_ce(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """mean over the batch of logsumexp(z) - y.z: cross-entropy for rows summing to 1."""
    top = z.max(axis=-1, keepdims=True)
    lse = (top + np.log(np.exp(z - top).sum(axis=-1, keepdims=True)))[..., 0]
    return (lse - (y * z).sum(axis=-1)).mean(axis=-1)


def variants(arch: Arch) -> list[Variant]:
    """The common alternatives to arch.loss (mean reduction, as torch), most specific first."""
    last_kind, last_config = arch.layers[-1]
    loss, k = arch.loss, output_width(arch)
    out_act = last_config.get("activation", "identity") if last_kind == "dense" else ""
    base = LOSS_RULES[loss]
    found: list[Variant] = []
    if loss == "mse":
        if out_act == "sigmoid":
            bce = LOSS_RULES["bce"]
            found.append(Variant(
                "bce_sum", "binary cross-entropy summed over the batch, on the sigmoid output",
                "its output delta y_hat - y is the gradient of summed binary cross-entropy with respect to z, not of "
                "the MSE it reports, whose output delta is 2/N (y_hat - y) sigma'(z) (sigma' and the 2/N factor are "
                "missing)", _scaled("bce_sum", bce, _n)))
            found.append(Variant(
                "bce_mean", "binary cross-entropy (mean), on the sigmoid output",
                "its output delta (y_hat - y)/N is the gradient of binary cross-entropy with respect to z, not of the "
                "MSE it reports (sigma' and the factor 2 are missing)", _scaled("bce_mean", bce, lambda o: 1.0)))
        found.append(Variant("half_sum", "half the sum of squared errors, 1/2 sum (y_hat - y)^2",
                             "the 2/N factor of the MSE gradient is missing (dL/dy_hat = y_hat - y)",
                             _scaled("half_sum", base, lambda o: _n(o) / 2)))
        found.append(Variant("sum", "the sum of squared errors (reduction='sum')",
                             "the 1/N of the mean is missing (dL/dy_hat = 2 (y_hat - y))", _scaled("sum", base, _n)))
        found.append(Variant("half_mean", "half the mean squared error",
                             "the factor 2 of d(y_hat - y)^2/dy_hat is missing", _scaled("half_mean", base, lambda o: 0.5)))
    elif loss == "bce":
        found.append(Variant("mse_on_sigmoid", "the mean squared error on the sigmoid output",
                             "its output delta carries sigma'(z), which binary cross-entropy from logits cancels",
                             LOSS_RULES["mse"]))
        found.append(Variant("sum", "binary cross-entropy summed (reduction='sum')",
                             "the 1/N of the mean is missing (dL/dz = y_hat - y)", _scaled("sum", base, _n)))
    elif loss == "cross_entropy":
        found.append(Variant("sum", "cross-entropy summed over the batch (reduction='sum')",
                             "the 1/batch of the mean is missing (dL/dz = softmax(z) - y)", _scaled("sum", base, _batch)))
        # The textbook delta softmax(z) - y is d/dz of logsumexp(z) - y.z, which is cross-entropy when sum(y) = 1.
        why = ("its output delta softmax(z) - y is exact for one-hot and probability rows, but these rows do not sum "
               "to 1, where d/dz is softmax(z) sum(y) - y")
        textbook = Loss("rows_sum_to_1", _textbook_ce, lambda z, y: (RULES["softmax"].forward(z) - y) / z.shape[-2],
                        from_logits=True)
        found.append(Variant("rows_sum_to_1", "cross-entropy with each target row assumed to sum to 1", why, textbook,
                             "each target row sums to 1", base))
        found.append(Variant("rows_sum_to_1_sum", "cross-entropy summed over the batch, each target row assumed to "
                             "sum to 1", why, _scaled("rows_sum_to_1_sum", textbook, _batch), "each target row sums to 1",
                             _scaled("sum", base, _batch)))
    else:
        found.append(Variant("sum", f"{loss} summed (reduction='sum')", "the 1/N of the mean is missing",
                             _scaled("sum", base, _n)))
    if k > 1 and loss in ("mse", "bce", "huber"):
        found.append(Variant("batch_mean", f"{loss} summed over the outputs and averaged over the batch",
                             "the 1/n_out of the mean over all elements is missing", _scaled("batch_mean", base, _outputs)))
    return found + _gelu_forms(arch)


# The two gelu forms differ by ~1e-3 relative: a whole net written in the other form matches neither the
# declared gradient nor any wrong derivative (its forward differs too), so it is a variant of the net.
_OTHER_GELU = {"gelu": ("gelu_tanh", "the tanh approximation"), "gelu_tanh": ("gelu", "the exact z Φ(z)")}


def _gelu_forms(arch: Arch) -> list[Variant]:
    """Every gelu (gelu_tanh) layer of an MLP in the other form: all at once, then each alone if several."""
    if not arch.is_mlp:
        return []
    where = [i for i, a in enumerate(arch.activations) if a in _OTHER_GELU]
    out = []
    for chosen in ([where] + ([[i] for i in where] if len(where) > 1 else [])) if where else []:
        acts = tuple(_OTHER_GELU[a][0] if i in chosen else a for i, a in enumerate(arch.activations))
        layers = ", ".join(str(i + 1) for i in chosen)
        act = arch.activations[chosen[0]]
        other, words = _OTHER_GELU[act]
        s = "s" if len(chosen) > 1 else ""
        out.append(Variant(f"{act}_form", f"the net with layer{s} {layers}'s {act} as {other}",
                           f"layer{s} {layers}'s {act} {'are' if s else 'is'} {words}; declare {other}",
                           LOSS_RULES[arch.loss], arch=Arch(arch.sizes, acts, arch.loss, arch.weight_decay)))
    return out


@dataclass(frozen=True)
class Explanation:
    """variant: the alternative that explains the most tensors (None: the declared loss does);
    matched: the tensors it explains; sentence: plain words for the whole picture ('' if all agree)."""

    variant: Variant | None
    matched: tuple[str, ...]
    unmatched: tuple[str, ...]
    sentence: str
    complete: bool = False   # every tensor is explained (by the variant and simple shapes relative to it)


def _names(names: list[str] | tuple[str, ...]) -> str:
    d = [f"d{n}" for n in names]
    return d[0] if len(d) == 1 else ", ".join(d[:-1]) + f" and {d[-1]}"


class _Matcher:
    """Agreement of the user's tensor with a hypothesis, under the analytic tolerance of ctx's case."""

    def __init__(self, ctx: CaseContext, user: Grads) -> None:
        self.ctx, self.user = ctx, user
        self.tol = ctx.tolerance("torch")
        case = ctx.case64
        # The comparison's own forward for an MLP; a stack has none (ctx.caches is ()), so the layers' forward is
        # the model the conventions are recomputed on (only ever turning a disagreement into CONVENTION).
        self.caches, self.output = (list(ctx.caches), None) if ctx.caches else model_forward(case)
        self.rule: Loss | None = None
        self.declared = self.use(None)
        self.declared_size = self.size

    def use(self, variant: Variant | None) -> Grads:
        """variant's gradient (the declared loss's for None), the hypothesis the next fits() read."""
        case = self.ctx.case64
        if variant is not None and variant.arch is not None:  # another net: its own forward, the declared loss
            self.rule = None
            out, caches = engine.forward(variant.arch, case.params, case.x)
            self.trace = engine.backward(variant.arch, case.params, caches, case.targets, output=out)
        else:
            self.rule = None if variant is None else variant.rule
            self.trace = engine.backward(case.arch, case.params, self.caches, case.targets, loss_rule=self.rule,
                                         output=self.output)
        self.size = math.sqrt(sum(norm(v) ** 2 for v in self.trace.grads.values()))  # the whole gradient's norm
        return self.trace.grads

    def fits(self, name: str, h: np.ndarray, k: float = 1.0) -> bool:
        """Does the user's tensor match h, k x the current hypothesis's gradient (use()) plus terms no kink
        reaches? A straddled kink moves h as it moves that gradient (CaseContext.at_kinks, compare/straddle.py)."""
        u = self.user.get(name)
        if u is None or np.shape(u) != np.shape(h):
            return False
        # The rounding scale E_t was made for the declared gradient; scale it with the hypothesis: by the tensor's
        # own ratio, or the whole gradient's where that is larger (a tensor zero by a symmetry, such as a conv bias
        # under a batchnorm, is rounding noise in both, and their ratio says nothing of the hypothesis's scale).
        d = norm(self.declared[name])
        whole_ratio = self.size / self.declared_size if self.declared_size > 0 else 1.0
        ratio = max(norm(h) / d if d > 0 else 0.0, abs(k) * whole_ratio)
        scale = ratio * self.ctx.scales.get(name, 0.0)
        masks, slack = self.ctx.at_kinks("torch", self.trace, self.rule)
        allowed = None if slack is None or name not in slack else abs(k) * slack[name]
        return compare_tensor(name, np.asarray(u), h, self.tol, scale, kink=masks.get(name), slack=allowed).ok


def model_forward(case) -> tuple[list, np.ndarray]:
    out, caches = engine.forward(case.arch, case.params, case.x)
    return caches, out


def explain(ctx: CaseContext, user: Grads) -> Explanation:
    """Name the loss convention user's gradients (bpcheck layout) follow on ctx's case, and the rest.

    E.g. the essay's XOR script: 'dW1 and dW2 match the gradient of binary cross-entropy summed over
    the batch, on the sigmoid output, not of the declared mse: ...; db1 and db2 = 1/batch x that
    gradient: the bias gradients average over the batch while the weight gradients sum'.
    """
    m = _Matcher(ctx, user)
    names = list(ctx.case64.arch.param_shapes())
    best: tuple[Variant | None, list[str], Grads] = (None, [n for n in names if m.fits(n, m.declared[n])], m.declared)
    if len(best[1]) == len(names):
        return Explanation(None, tuple(names), (), "")
    for v in variants(ctx.case64.arch):
        g = m.use(v)
        matched = [n for n in names if m.fits(n, g[n])]
        if len(matched) > len(best[1]):
            best = (v, matched, g)
    variant, matched, g = best
    m.use(variant)  # the rest is read relative to it
    rest = [n for n in names if n not in matched]
    loss = ctx.case64.arch.loss
    parts = []
    if variant is not None:
        who = "every gradient" if not rest else _names(matched)
        verb = "matches" if not rest or len(matched) == 1 else "match"
        against = "" if variant.arch is not None else f", not of the declared {loss}"
        parts.append(f"{who} {verb} the gradient of {variant.words}{against}: {variant.why}")
        relative = "that gradient"
    else:
        relative = f"the declared {loss} gradient"
    complete = True
    if rest:
        text, complete = _remainder(m, rest, g, relative, whole=variant is None and not matched)
        parts.append(text)
    return Explanation(variant, tuple(matched), tuple(rest), "; ".join(p for p in parts if p), complete)


def _decay_sentence(who: str, relative: str, extra: float, declared: float) -> str:
    """The weight tensors = relative + extra x W, read against the declared L2 term lambda/2 ||W||^2 (declared)."""
    rel = 1e-6
    if declared > 0 and abs(extra - declared) <= rel * declared:
        return (f"{who} carry 2 lambda W where the declared L2 term lambda/2 sum ||W||^2 gives lambda W (lambda = "
                f"{declared:g}): the gradient is that of lambda sum ||W||^2, a factor 2 on the weight-decay term")
    if declared > 0 and abs(extra + declared) <= rel * declared:
        return (f"{who} lack the declared L2 term's lambda W (lambda = {declared:g}): the gradient is that of the "
                "loss without its weight decay")
    if declared > 0:
        return (f"{who} = {relative} + {extra:.6g} x W: the weight-decay term is {(declared + extra):.6g} W where the "
                f"declared lambda/2 sum ||W||^2 gives {declared:g} W")
    return (f"{who} = {relative} + {extra:.6g} x W: a weight-decay term (L2, lambda = {extra:.6g}) is in the gradient but "
            f"not in the declared loss; if your loss has lambda/2 ||W||^2, declare it (--weight-decay {extra:.6g}, "
            "weight_decay= in the API), else drop it from the gradient")


def _remainder(m: _Matcher, rest: list[str], g: Grads, relative: str, *, whole: bool) -> tuple[str, bool]:
    """The tensors the best loss leaves, against simple shapes relative to its gradient g; and whether
    those shapes explain every one of them."""
    case = m.ctx.case64
    batch, n_out = case.batch, output_width(case.arch)
    if batch > 1 and all(n.startswith("b") for n in rest) and all(m.fits(n, g[n] / batch, 1 / batch) for n in rest):
        return (f"{_names(rest)} = 1/batch x {relative}: the bias gradients average over the batch while the "
                "weight gradients sum"), True
    weights = [n for n in rest if n.startswith("W")]
    if weights and len(weights) == len(rest):
        num = sum(float(np.vdot(np.asarray(m.user[n], dtype=np.float64) - g[n], case.params[n])) for n in weights)
        den = sum(float(np.vdot(case.params[n], case.params[n])) for n in weights)
        lam = num / den if den > 0 else 0.0
        if lam != 0 and all(m.fits(n, g[n] + lam * case.params[n]) for n in weights):
            return _decay_sentence(_names(weights), relative, lam, case.arch.weight_decay), True
    groups: dict[str, list[str]] = {}
    odd = []
    for n in rest:
        u, h = np.asarray(m.user.get(n), dtype=np.float64), g[n]
        hh = float(np.vdot(h, h))
        k = float(np.vdot(u, h)) / hh if hh > 0 and u.shape == h.shape else 0.0
        rel = 1e-6 if case.x.dtype == np.float64 else 1e-4
        if k != 0 and abs(k - 1.0) > rel and m.fits(n, k * h, k):  # a factor of 1 is no convention
            label = factor_name(k, batch, n_out, rel)
            text = f"{k:.6g}" + (f" ({label})" if label and label != f"{k:.6g}" else "")
            groups.setdefault(text, []).append(n)
        else:
            odd.append(n)
    parts = []
    for text, names in groups.items():
        who = "every gradient" if whole and len(names) == len(g) else _names(names)
        tail = ": the user's loss is that multiple of the declared one" if who == "every gradient" else ""
        parts.append(f"{who} = {text} x {relative}{tail}")
    if odd:
        parts.append(f"{_names(odd)} fit{'s' if len(odd) == 1 else ''} no known convention relative to {relative}")
    return "; ".join(parts), not odd
