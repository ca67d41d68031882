"""Name the bug: which known wrong backward the user's gradients match.

First the registry's bug shapes for the kind (Layer.bug_shapes: each a wrong backward, recomputed here on
the case and compared with the user's gradient), then generic shapes every layer can have: dout assumed
all ones (the upstream gradient ignored), every row's gradient written to row 0, a missing gradient (all
zeros), a factor (sign flipped, a batch mean instead of a sum, a missing 1/p), a transposed gradient.
A shape matches when it explains every wrong argument to MATCH (norm-relative) and changes at least one.
"""

from __future__ import annotations

import numpy as np

from ..layers.bugs import applicable
from .course import CourseKind, course_grads, registry_params, registry_x
from .references import Oracle

MATCH = 1e-6


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return np.inf
    denom = max(np.linalg.norm(a.ravel()), np.linalg.norm(b.ravel()))
    return 0.0 if denom == 0 else float(np.linalg.norm((a - b).ravel()) / denom)


def diagnose(kind: CourseKind, oracle: Oracle, user: dict[str, np.ndarray], right: dict[str, np.ndarray],
             wrong: tuple[str, ...], dout: np.ndarray | None) -> str:
    """A sentence naming the bug shape the user's gradients follow, or '' when none fits."""
    if not wrong:
        return ""
    found = _registry_shapes(kind, oracle, user, right, wrong, dout)
    return found or _generic(kind, oracle, user, right, wrong, dout)


def _matches(user: dict, candidate: dict, right: dict, wrong: tuple[str, ...]) -> bool:
    return all(a in candidate and _rel(user[a], candidate[a]) <= MATCH for a in wrong) and \
        any(_rel(candidate[a], right[a]) > MATCH for a in wrong if a in candidate)


def _registry_shapes(kind, oracle, user, right, wrong, dout) -> str:
    layer = oracle.layer
    if layer is None or dout is None:
        return ""
    reg, in_shape = oracle.case.registry
    params = registry_params(kind, oracle.arrays)
    x = registry_x(kind, oracle.arrays["x"])
    for bug in applicable(layer.kind, reg, in_shape):
        try:
            _, cache = layer.forward(reg, params, x)
            dx, grads = bug.backward(reg, params, cache, np.asarray(dout, dtype=np.float64))
            candidate = course_grads(kind, oracle.arrays, dx, grads)
        except Exception:  # a bug shape that does not apply to this shape of input
            continue
        if _matches(user, candidate, right, wrong):
            return bug.says
    return ""


def _generic(kind, oracle, user, right, wrong, dout) -> str:
    name = kind.name
    if dout is not None and oracle.layer is not None or (dout is not None and name == "dropout"):
        ones = oracle.engine(np.ones_like(dout))
        if _matches(user, ones, right, wrong):
            return (f"{', '.join('d' + a for a in wrong)} of {name} as if dout were all ones: the upstream gradient "
                    "is ignored")
    x = user.get("x")
    if "x" in wrong and x is not None and x.ndim and x.shape[0] >= 2 and not np.any(x[1:]):
        rows = np.asarray(right["x"])
        if _rel(x[0], rows.sum(axis=0)) <= MATCH or any(_rel(x[0], r) <= MATCH for r in rows):
            return f"dx of {name}: every row's gradient written to row 0 (a batch index fixed at 0)"
    parts = []
    for a in wrong:
        u, r = np.asarray(user[a], dtype=np.float64), np.asarray(right[a], dtype=np.float64)
        if not np.any(u) and np.any(r):
            parts.append(f"d{a} of {name} is all zeros (a gradient never computed)")
            continue
        rr = float(np.vdot(r, r))
        k = float(np.vdot(u, r)) / rr if rr else 0.0
        if k and _rel(u, k * r) <= MATCH:
            parts.append(f"d{a} of {name} is {_factor(k, oracle.case.batch, oracle)} the right one")
            continue
        if u.ndim == 2 and u.shape[0] == u.shape[1] and _rel(u, r.T) <= MATCH:
            parts.append(f"d{a} of {name} is transposed")
    return "; ".join(parts)


def _factor(k: float, batch: int, oracle: Oracle) -> str:
    names = {-1.0: "the negative of", float(batch): "N (the batch size) times",
             1.0 / max(batch, 1): "1/N (a batch mean for a sum) times"}
    cfg = oracle.case.config or {}
    if oracle.kind.name == "dropout" and "p" in cfg:
        p = float(cfg["p"])
        names.update({p: "p times (the 1/p scaling missing)", p * p: "p^2 times"})
    for value, text in names.items():
        if abs(k - value) <= 1e-6 * max(abs(value), 1e-300):
            return text
    return "a constant factor times"
