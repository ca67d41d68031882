"""Subgradient conventions at exact zeros of a kink: CONVENTION rather than ENGINE.

At z == 0 a kinked activation (ops.RULES with .kink) has two one-sided slopes, `slopes`, and
bpcheck declares one subgradient, `at_zero` (torch's and jax's: relu'(0) = 0). An engine that
picks another one (relu'(0) = 1, or the midpoint 1/2) is not wrong, only different. To tell that
from a bug, the gradient is recomputed by engine.backward on the case with the other slope at the
exact zeros, and the engine must match that recomputation under the same tolerance.

The engine's backward serves here as a model of a convention, not as a judge: it is run on the comparison's
own forward values (CaseContext.caches, the layers' independent forward), and a recomputation only ever
turns ENGINE into CONVENTION when the producer matches it on every tensor. Whether the gradient is right
is decided by the references alone.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np

from .. import engine, ops
from ..ops import RULES, Activation
from ..references.layered import targets
from ..results import Tolerance
from ..spec import Gradients
from .metrics import agrees, compare_gradients
from .tolerance import CaseContext


def exact_zeros(ctx: CaseContext) -> dict[str, int]:
    """Kinked activation name -> number of pre-activations exactly at 0 in the layers that use it,
    leaving out zeros that came from cancellation (CaseContext.kinks: another order may not cancel)."""
    out: dict[str, int] = {}
    if not ctx.caches:  # a stack without the dense model: its kinks are left to the references (KINK via FD)
        return out
    for layer, (act, cache) in enumerate(zip(ctx.case64.arch.activations, ctx.caches), start=1):
        if ops.rule(act).kink:
            ambiguous = ctx.kinks.get(f"dz{layer}")
            zero = cache.z == 0 if ambiguous is None else (cache.z == 0) & ~ambiguous
            n = int(np.count_nonzero(zero))
            if n:
                out[act] = out.get(act, 0) + n
    return out


def slope_choices(act: str) -> tuple[float, ...]:
    """The subgradients one could use at 0: both one-sided slopes and their midpoint, declared one first."""
    rule = ops.rule(act)
    left, right = rule.slopes or (rule.at_zero, rule.at_zero)
    out = [rule.at_zero]
    for s in (left, right, (left + right) / 2):
        if s not in out:
            out.append(s)
    return tuple(out)


def _with_slope(rule: Activation, slope: float) -> Activation:
    def backward(z: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
        return np.where(z == 0, slope * g, rule.backward(z, a, g))

    return replace(rule, backward=backward, at_zero=slope)


def gradients_with(ctx: CaseContext, slopes: dict[str, float]) -> Gradients:
    """The float64 gradient of ctx's case with act'(0) = slopes[act] at exact zeros."""
    rules = {**RULES, **{act: _with_slope(ops.rule(act), s) for act, s in slopes.items()}}
    case = ctx.case64
    return engine.backward(case.arch, case.params, list(ctx.caches), targets(case), rules=rules)


def find_convention(ctx: CaseContext, produced: Gradients, tol: Tolerance,
                    kink: dict[str, np.ndarray] | None = None) -> str:
    """A sentence naming the convention the producer follows at exact zeros, or '' when none explains it.

    Every combination of slope choices for the kinked activations that have exact zeros is tried,
    except the declared one; the producer must agree with the recomputation on every tensor, kink
    (the rounding-ambiguity masks, CaseContext.kinks) left out.
    """
    zeros = exact_zeros(ctx)
    if not zeros:
        return ""
    acts = sorted(zeros)
    for combo in itertools.product(*(slope_choices(a) for a in acts)):
        if all(s == ops.rule(a).at_zero for a, s in zip(acts, combo)):
            continue
        choice = {a: s for a, s in zip(acts, combo) if s != ops.rule(a).at_zero}
        expected = gradients_with(ctx, choice)
        if agrees(compare_gradients(produced, expected, tol, ctx.scales, kink=kink)):
            used = ", ".join(f"{a}'(0) = {s:g}" for a, s in choice.items())
            declared = ", ".join(f"{a}'(0) = {ops.rule(a).at_zero:g}" for a in choice)
            n = sum(zeros[a] for a in choice)
            return (f"the producer uses {used} at {n} exact zero(s) of z, where torch and jax use {declared}; "
                    "both are valid subgradients")
    return ""
