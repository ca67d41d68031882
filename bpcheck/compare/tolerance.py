"""The one tolerance table, and the rounding model that turns it into a bound per tensor.

A tensor t of the producer (a) agrees with a reference (b) when

    ||u_t|| <= rtol * max(||a_t||, ||b_t||) + gamma * E_t + atol * sqrt(n_t),
    u_i = max(|a_i - b_i| - fd_mult * err_i - fd_floor, 0)        (u = |a - b| for torch and jax)

rtol is what two correct float64 implementations reach (1e-12; they measure ~1e-15). err is FD's
own per-coordinate error estimate (Gradients.error) and fd_floor a tiny floor relative to the
largest gradient entry; atol is where the dtype underflows. gamma * E_t is the rounding error the producer's dtype allows:
gamma = safety * eps(dtype) * sqrt(width), the typical error of a dot product of length width,
and E_t (`error_scales`) follows the backward pass from the output down, norm-wise:

    E(dL/dout) = || T + s ||                        T >= |g|: the terms the loss backward rounds
                                                    (softmax(z) sum(y) and y for cross_entropy,
                                                    sigmoid(z) and y for bce), not just its result;
                                                    s: how far g moves when out carries its
                                                    forward rounding error (forward_errors)
    E(dz_l)    = E(da_l) * max(rms act', ||dz_l|| / ||da_l||) + || s_l || + ||dz_l||
    E(W_l)     = rms(a_{l-1}) E(dz_l) + || |a_{l-1}|^T |dz_l| || + || u_a^T |dz_l| ||
                                                                  (rms: the rms singular value,
    E(b_l)     = sqrt(B) E(dz_l) + || sum_b |dz_l| ||                 how a random-direction error
    E(da_{l-1}) = rms(W_l) E(dz_l) + || |dz_l| |W_l|^T ||             passes through a matrix)

Each layer adds its own rounding (the |.| products: the terms of each dot product, large where they
cancel; s_l: how far act's backward moves when z or a is rounded, large where a sigmoid
saturates) to the error it passes on. The signed values come from a reference's dz trace, never from
the producer under test, so a wrong producer cannot widen its own bound; z_l and a_l come from the
comparison's own forward (forward.py: the trace reference's forward values, else the layers' independent
numpy forward), never from the engine's.
The loss value is a tensor like the others, named 'loss', with its own scale E_loss (loss_value.py). References run in float64 on
the (exactly representable) float64 copy of the case, so the table is keyed by the producer's dtype.
The model lives in rounding.py, with the masks of coordinates that rounding can push across a kink.
A stack that is not a dense MLP has no such model: its E_t is the float32 probe's sample (probe.py) plus a
bound on the terms each layer's backward adds (terms.py), which the sample misses where it happens to be exact.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from ..ops import LOSS_RULES, Loss
from ..references.layered import targets, width
from ..results import Tolerance
from ..spec import Case, Gradients
from .forward import LayerCache, forward_of
from .loss_value import loss_scale
from .metrics import norm
from .probe import probe
from .rounding import ambiguous, ambiguous_units, error_scales, forward_errors
from .straddle import straddle
from .terms import terms


@dataclass(frozen=True)
class Rule:
    """One row of TOLERANCES: rtol, the rounding safety factor, FD's error multiple and floor."""

    rtol: float
    safety: float
    fd_mult: float = 0.0
    fd_floor: float = 0.0             # times the largest gradient entry of the case
    fd_rtol_no_estimate: float = 0.0  # replaces rtol when an FD reference gives no error estimate
    atol: float = 0.0                 # per sqrt(coordinate): gradients below it underflow in the dtype


# Keyed by (reference kind, producer dtype). Measured (see tests/test_compare.py and the report):
# a float64 engine is within 1e-15 of torch/jax; FD's error estimate is honest to a factor ~3; a
# correct float32 engine uses a small fraction of its float32 budget.
# atol: 1e4 x the smallest normal number, so products of underflowed factors with moderate gains pass.
_TINY32, _TINY64 = float(np.finfo(np.float32).tiny), float(np.finfo(np.float64).tiny)
TOLERANCES: dict[tuple[str, str], Rule] = {
    ("analytic", "float64"): Rule(rtol=1e-12, safety=4.0, atol=1e4 * _TINY64),
    ("analytic", "float32"): Rule(rtol=0.0, safety=4.0, atol=1e4 * _TINY32),
    ("fd", "float64"): Rule(rtol=1e-12, safety=4.0, fd_mult=10.0, fd_floor=1e-13, fd_rtol_no_estimate=1e-6,
                            atol=1e4 * _TINY64),
    ("fd", "float32"): Rule(rtol=0.0, safety=4.0, fd_mult=10.0, fd_floor=1e-13, fd_rtol_no_estimate=1e-6,
                            atol=1e4 * _TINY32),
}
EPS: dict[str, float] = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}
ANALYTIC: frozenset[str] = frozenset({"torch", "jax"})


def kind_of(reference: str) -> str:
    """'fd' for finite differences (any name starting with 'fd'), 'analytic' for torch, jax and the rest."""
    return "fd" if reference.startswith("fd") else "analytic"


@functools.cache
def dtype_name(dtype: np.dtype) -> str:
    """dtype.name, which numpy works out in Python on every read (a microsecond, several times a check)."""
    return dtype.name


def tolerance_for(reference: str, case: Case, *, has_estimate: bool = True, scale: float = 1.0) -> Tolerance:
    """The Tolerance for comparing a producer's output on case (its dtype) with reference.

    scale is the largest gradient entry of the case (CaseContext.scale), which fd_floor multiplies.
    """
    dtype = dtype_name(case.x.dtype)
    kind = kind_of(reference)
    rule = TOLERANCES[(kind, dtype)]
    gamma = gamma_for(case, dtype, kind)
    if kind == "fd" and not has_estimate:
        return Tolerance(kind, dtype, max(rule.rtol, rule.fd_rtol_no_estimate), gamma, atol=rule.atol)
    return Tolerance(kind, dtype, rule.rtol, gamma, rule.fd_mult, rule.fd_floor * scale, rule.atol)


def gamma_for(case: Case, dtype: str, kind: str = "analytic") -> float:
    """safety * eps(dtype) * sqrt(width): the rounding of one dot product over the widest axis."""
    return TOLERANCES[(kind, dtype)].safety * EPS[dtype] * math.sqrt(max(width(case.arch), case.batch))


@dataclass(frozen=True)
class CaseContext:
    """What every comparison of one case shares: the float64 copy and its forward caches (the comparison's
    own forward, forward.py; () for a stack that is not an MLP); the error scales E_t (from a reference's dz
    trace; E_loss from the forward alone); scale, the largest entry of that reference's gradient;
    the rounding-ambiguity kink masks for the producer's dtype (kinks) and for float64 (kinks64,
    used between references); and slack, what the same ambiguous units allow a producer against an exact
    reference (torch, jax) instead of those masks (straddle.py; None without a dz trace: the masks apply)."""

    case: Case
    case64: Case
    caches: tuple[LayerCache, ...]
    scales: dict[str, float]
    scale: float
    kinks: dict[str, np.ndarray]
    kinks64: dict[str, np.ndarray]
    slack: dict[str, np.ndarray] | None = None
    units: dict[int, np.ndarray] = field(default_factory=dict)   # the straddled units slack is built from
    fwd: tuple = ()                                               # forward_errors, for slack_for
    trace_dz: tuple | None = None                                 # the dz trace slack was built from

    @classmethod
    def build(cls, case: Case, trace: Gradients | None, case64: Case | None = None) -> CaseContext:
        """trace: a reference's Gradients with a dz trace (torch or jax preferred, FD will do). Without
        one, every E_t is 0 and only rtol (and FD's estimate) bound the error. case64: the float64 copy
        of case, when the caller has made it already."""
        if case64 is None:
            case64 = case if case.dtype is np.float64 else case.astype(np.float64)
        caches = forward_of(case64, trace)
        dtype = dtype_name(case.x.dtype)
        if not caches:  # no dense rounding model for this stack: the float32 probe, or rtol alone in float64
            scales, kinks = probe(case, case64, trace, gamma_for(case64, dtype))
            for name, floor in terms(case64, trace).items():  # what the probe's one sample may have missed
                scales[name] = scales.get(name, 0.0) + floor
            return cls(case, case64, (), scales, _largest(trace), kinks, {})
        fwd = forward_errors(case64, caches)
        scales: dict[str, float] = {}
        if trace is not None and trace.dz is not None and len(trace.dz) == len(caches):
            scales = error_scales(case64, caches, trace.dz, fwd)
        logits = LOSS_RULES[case64.arch.loss].from_logits
        out, u_out = (caches[-1].z, fwd[-1][0]) if logits else (caches[-1].a, fwd[-1][1])
        scales["loss"] = loss_scale(case64.arch.loss, out, u_out, targets(case64), case64.params, case64.arch.weight_decay)
        units64 = ambiguous_units(case64, caches, fwd, gamma_for(case64, "float64"))
        units = units64 if dtype == "float64" else ambiguous_units(case64, caches, fwd, gamma_for(case64, dtype), dtype)
        kinks64 = ambiguous(case64, caches, units64)
        kinks = kinks64 if dtype == "float64" else ambiguous(case64, caches, units)
        slack, dz = None, None
        if not units:
            slack = {}
        elif trace is not None and trace.dz is not None and len(trace.dz) == len(caches):
            dz = tuple(trace.dz)
            slack = straddle(case64, caches, fwd, units, dz, gamma_for(case64, dtype), scales)
        return cls(case, case64, caches, scales, _largest(trace) if len(scales) > 1 else 1.0, kinks, kinks64, slack,
                   units, tuple(fwd), dz)

    @property
    def traced(self) -> bool:
        """Were the gradients' scales E_t built from a reference's trace (E_loss needs none)?"""
        return bool(self.scales.keys() - {"loss"})

    @property
    def dtype(self) -> str:
        return dtype_name(self.case.x.dtype)

    def tolerance(self, reference: str, *, has_estimate: bool = True) -> Tolerance:
        return tolerance_for(reference, self.case, has_estimate=has_estimate, scale=self.scale)

    def at_kinks(self, reference: str, grads: Gradients | None = None,
                 loss_rule: Loss | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        """(masks, slack) for comparing a producer with reference (its Gradients grads, of the declared loss or
        of loss_rule's): an exact reference (torch, jax, an exact hypothesis) bounds what a straddled kink can
        change (slack) and masks nothing of its own; FD leaves the coordinates out."""
        slack = self.slack_for(grads, loss_rule) if kind_of(reference) == "analytic" else None
        return ({}, slack) if slack is not None else (self.kinks, None)

    def slack_for(self, grads: Gradients | None = None, loss_rule: Loss | None = None) -> dict[str, np.ndarray] | None:
        """straddle.py's allowances against an exact gradient grads (None: the trace's, ctx.slack), from its own
        dz trace, with the rounding scaled to it; None when there is no model for it (the masks apply then)."""
        if not self.slack or grads is None:
            return self.slack
        dz = grads.dz
        if dz is None or self.trace_dz is None or len(dz) != len(self.caches):
            return None
        if loss_rule is None and all(a is b for a, b in zip(dz, self.trace_dz)):  # the trace itself
            return self.slack
        mine, theirs = norm(np.asarray(dz[-1])), norm(np.asarray(self.trace_dz[-1]))
        ratio = mine / theirs if theirs > 0 and math.isfinite(mine / theirs) else 1.0
        return straddle(self.case64, self.caches, list(self.fwd), self.units, dz, gamma_for(self.case64, self.dtype),
                        {k: ratio * v for k, v in self.scales.items()}, loss_rule)


def _largest(trace: Gradients | None) -> float:
    """The largest gradient entry of the trace reference (1 without one): what FD's floor is relative to."""
    if trace is None:
        return 1.0
    entries = [float(np.abs(v).max()) for v in trace.tensors().values() if np.size(v)]
    return max(entries, default=0.0) or 1.0
