"""Each returned gradient against each reference, with the project's one comparison rule and blame.

A tensor agrees when ||u|| <= rtol * max(||a||, ||b||) + gamma * E + atol * sqrt(n) (compare.metrics):
rtol, fd_mult, fd_floor and atol from compare.tolerance.TOLERANCES (float64 rows), u the error FD's own
estimate does not explain, and E the rounding scale of this argument's backward (Oracle.rounding: how far
float32 moves it, times eps64 / eps32) with gamma = PROBE_SAFETY: a generic stand-in for the MLP's
norm-wise rounding model, which knows only dense layers. Coordinates whose finite difference crosses a
kink (Layer.pattern) are left out of the FD comparison; a gradient that differs from torch and jax only
there is CONVENTION (another valid one-sided slope, or another tied maximum), unless it moves the total
of a max-pool's gradient (the gradient sent to every tied maximum is a bug, not a choice).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..compare.blame import blame
from ..compare.metrics import compare_tensor
from ..compare.tolerance import TOLERANCES
from ..results import LABELS, TensorMetrics, Tolerance
from .fd import FDTensor

# The probe is one sample of float32 rounding; rounding errors of a correct float64 implementation measured
# against it stay within a few units (tests/test_check_layer.py runs 200 cases per correct layer).
PROBE_SAFETY = 16.0
PASSING = ("AGREE", "KINK", "CONVENTION", "FD_NOISE", "SKIPPED")


@dataclass(frozen=True)
class ArgVerdict:
    """One argument's gradient against one reference."""

    arg: str
    reference: str
    label: str
    reason: str
    metrics: TensorMetrics


def tolerance(kind: str, scale: float) -> Tolerance:
    rule = TOLERANCES[(kind, "float64")]
    return Tolerance(kind, "float64", rule.rtol, PROBE_SAFETY, rule.fd_mult, rule.fd_floor * scale, rule.atol)


def judge(user: dict[str, np.ndarray], refs: dict[str, dict[str, np.ndarray]], fd: dict[str, FDTensor] | None,
          rounding: dict[str, float], pool: bool = False) -> list[ArgVerdict]:
    """Verdicts for every argument the references cover, against every reference (fd included when given)."""
    names = {**refs, **({"fd": {k: v.grad for k, v in fd.items()}} if fd is not None else {})}
    entries = [float(np.max(np.abs(g))) for r in names.values() for g in r.values() if np.size(g)]
    scale = max(entries, default=0.0) or 1.0
    out = []
    for arg in user:
        ran = [r for r in names if arg in names[r]]
        if not ran:
            continue
        e = rounding.get(arg, 0.0)
        kink = fd[arg].kink if fd is not None and arg in fd else None
        metrics = {r: _compare(arg, user[arg], names[r][arg], r, scale, e, fd, kink) for r in ran}
        pairs = {frozenset((a, b)): _compare(arg, names[a][arg], names[b][arg], "fd" if "fd" in (a, b) else a,
                                             scale, e, fd, kink).ok
                 for i, a in enumerate(ran) for b in ran[i + 1:]}
        convention = {r: kink is not None and bool(kink.any()) and not metrics[r].ok and r != "fd"
                      and _compare(arg, user[arg], names[r][arg], r, scale, e, None, kink).ok
                      and (not pool or _same_total(user[arg], names[r][arg], e, scale)) for r in ran}
        kinked = {r: metrics[r].kinks > 0 for r in ran}
        labels = blame({r: metrics[r].ok for r in ran}, pairs, convention=convention, kinked=kinked)
        out += [ArgVerdict(arg, r, labels[r][0], labels[r][1], metrics[r]) for r in ran]
    return out


def _compare(arg: str, a: np.ndarray, b: np.ndarray, ref: str, scale: float, e: float, fd: dict | None,
             kink: np.ndarray | None) -> TensorMetrics:
    kind = "fd" if ref == "fd" else "analytic"
    err = fd[arg].err if kind == "fd" and fd is not None else None
    return compare_tensor(f"d{arg}", np.asarray(a), np.asarray(b), tolerance(kind, scale), e, err=err,
                          kink=kink if kind == "fd" or fd is None else None)


def _same_total(a: np.ndarray, b: np.ndarray, e: float, scale: float) -> bool:
    """Another tied maximum moves the gradient, not its total; every tied maximum adds to it."""
    return abs(float(np.sum(a)) - float(np.sum(b))) <= 1e-9 * scale * max(np.size(a), 1) ** 0.5 + PROBE_SAFETY * e


def worst(labels: list[str]) -> str:
    return min(labels, key=LABELS.index) if labels else "SKIPPED"
