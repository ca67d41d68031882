"""One case through the user's layer: the calls (one round trip), their output validated, mutations found.

run_case returns a CaseRun: the user's gradients for the case's cotangent (course names, the user's dtype),
what the properties need (the gradients for d2, a d1 + b d2 and zeros; the same call again; after a call on
other arrays; with the batch permuted), the references' Oracle (None for --layer none, whose finite
differences of the user's own forward are in `fd`), and problems found on the way as (check, arg, message).
Interface faults (not (out, cache), a wrong number of gradients, a wrong shape, not floats) raise
UserFunctionError: the layer cannot be checked until they are fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..spec import UserFunctionError
from .cases import LayerCase
from .course import CourseKind
from .fd import FDTensor, fd_gradients
from .properties import mutated
from .references import Oracle
from .remote import UserLayer, forwards, losses, pair

FORWARD_RTOL = {"float64": 1e-8, "float32": 1e-4}
MEMORY_EVERY = 10


class ShapeError(UserFunctionError):
    """A gradient of the wrong shape: a bug in the backward (this case fails), not an unusable interface."""

    def __init__(self, message: str, arg: str) -> None:
        super().__init__(message)
        self.arg = arg


@dataclass
class CaseRun:
    case: LayerCase
    grads: dict[str, np.ndarray]
    dout: np.ndarray | None
    oracle: Oracle | None
    rounding: dict[str, float]
    again: list | None          # the same call again (None: not on this case)
    after_other: list | None    # the call again after one on other arrays
    other: list | None = None   # the call on other arrays (B)
    float32: list | None = None  # a framework function's gradients on the case cast to float32
    linear: tuple | None = None
    permuted: tuple | None = None
    fd: dict[str, FDTensor] | None = None
    problems: list[tuple[str, str, str]] = field(default_factory=list)


def _other(case: LayerCase, rng: np.random.Generator) -> tuple:
    return tuple(v * 1.5 + 0.25 * np.abs(v).max(initial=1.0) * rng.standard_normal(v.shape) for v in case.arrays.values())


def _grads(user: UserLayer, kind: CourseKind, names: list[str], shapes: list[tuple], raw: Any) -> list[np.ndarray]:
    """The backward's return value as one float array per forward array, or a UserFunctionError naming the fault."""
    who = f"{user.backward_name} (backward of {kind.name})"
    order = ", ".join("d" + n for n in names)
    items = list(raw) if isinstance(raw, (tuple, list)) else [raw]
    if len(items) != len(names):
        raise UserFunctionError(f"{who} returned {len(items)} gradient(s), but the forward takes {len(names)} array(s) "
                                f"({', '.join(names)}): return {order} in the forward's order")
    out = []
    for name, shape, g in zip(names, shapes, items):
        arr = np.asarray(g) if type(g).__name__ != "Foreign" else np.asarray(None)
        if not np.issubdtype(arr.dtype, np.floating):
            raise UserFunctionError(f"{who} returned d{name} of type {getattr(g, 'type_name', type(g).__name__)}"
                                    f" ({arr.dtype}): return a float array for each of {order}")
        if arr.shape != tuple(shape):
            raise ShapeError(f"{who} returned d{name} of shape {arr.shape}, but {name} is {tuple(shape)}: "
                                    f"return {order} in the forward's order, each shaped like its array", name)
        out.append(arr)
    return out


def _output(user: UserLayer, kind: CourseKind, value: Any) -> np.ndarray:
    arr = np.asarray(value) if type(value).__name__ != "Foreign" else np.asarray(None)
    if not np.issubdtype(arr.dtype, np.floating):
        raise UserFunctionError(f"{user.name} (forward of {kind.name}) returned out of type {type(value).__name__}: "
                                "return (out, cache) with out a float array")
    return arr


def run_case(kind: CourseKind, user: UserLayer, case: LayerCase, per_sample: bool) -> CaseRun:
    if kind.loss:
        return _run_loss(kind, user, case, per_sample)
    rng = np.random.default_rng([case.seed, 1])
    names, values, cfg = list(case.arrays), tuple(case.arrays.values()), case.config
    dout = case.dout
    if dout is None:  # --layer none: the output's shape is the forward's
        out = user.run([forwards([values], cfg)])[0]["outs"][0]
        dout = rng.standard_normal(_output(user, kind, out).shape) * (1e-4 if case.regime == "tiny" else 1.0)
    d2 = rng.standard_normal(dout.shape) * np.abs(dout).max(initial=1.0)
    a, b = float(rng.uniform(0.5, 2.0)), -float(rng.uniform(0.5, 2.0))
    # The same call again, then after a call on other arrays (A, A, B, A): on every MEMORY_EVERY-th case, as a
    # state bug shows on any case; the rest of the calls are the comparison's and the linearity's.
    memory = case.meta.get("index", 0) % MEMORY_EVERY == 0
    steps = [pair(values, cfg, [dout, d2, a * dout + b * d2, np.zeros_like(dout)])]
    if memory:
        steps += [pair(values, cfg, [dout]), pair(_other(case, rng), cfg, [d2]), pair(values, cfg, [dout])]
    perm = None
    if per_sample and case.batch >= 2:
        perm = np.roll(np.arange(case.batch), 1)[rng.permutation(case.batch)]
        steps.append(pair((values[0][perm], *values[1:]), cfg, [dout[perm]]))
    at_perm = len(steps) - 1
    at_32 = None
    if user.form in ("torch", "jax"):  # a framework function is also checked in its own dtype, float32
        steps.append(pair(tuple(v.astype(np.float32) for v in values), cfg, [dout.astype(np.float32)]))
        at_32 = len(steps) - 1
    if kind.name == "dropout":
        steps.append(forwards([(np.ones_like(values[0]),)], cfg))
    results = user.run(steps, calls=4 * len(steps) + 4)
    for r in results:
        if "bad_forward" in r:
            raise UserFunctionError(f"{user.name} (forward of {kind.name}) returned {r['bad_forward']}, not (out, cache): "
                                    "return out, cache")
    shapes = [v.shape for v in values]
    first = [_grads(user, kind, names, shapes, g) for g in results[0]["grads"]]
    out = _output(user, kind, results[0]["out"])
    problems = _mutations(user, case, values, results[0], [dout, d2, a * dout + b * d2, np.zeros_like(dout)])
    oracle = None
    if kind.registry is not None:
        mask = None
        if kind.name == "dropout":
            mask = np.asarray(results[-1]["outs"][0], dtype=np.float64)
            problems += _dropout_mask(kind, case, mask)
        oracle = Oracle(kind, case, mask)
        problems += _forward_check(kind, out, oracle.output(), user.name, oracle.terms())
    grads = dict(zip(names, first[0]))
    problems += _values(kind, grads, values)
    run = CaseRun(case, grads, dout, oracle, oracle.rounding(dout) if oracle is not None else {},
                  _grads(user, kind, names, shapes, results[1]["grads"][0]) if memory else None,
                  _grads(user, kind, names, shapes, results[3]["grads"][0]) if memory else None,
                  linear=(first[0], first[1], first[2], a, b, first[3]), problems=problems,
                  other=_grads(user, kind, names, shapes, results[2]["grads"][0]) if memory else None)
    if perm is not None:
        run.permuted = (perm, _grads(user, kind, names, shapes, results[at_perm]["grads"][0]))
    if at_32 is not None:
        run.float32 = _grads(user, kind, names, shapes, results[at_32]["grads"][0])
    if oracle is None:
        run.fd = _user_fd(user, names, case, dout)
    return run


def _user_fd(user: UserLayer, names: list[str], case: LayerCase, dout: np.ndarray) -> dict[str, FDTensor]:
    """FD of <forward(theta), dout> through the user's own forward (a layer of no known kind)."""
    def evaluate(stacked: dict[str, np.ndarray]) -> np.ndarray:
        k = len(next(iter(stacked.values())))
        arglists = [tuple(np.array(stacked[n][j]) for n in names) for j in range(k)]
        outs = user.run([forwards(arglists, case.config)], calls=k)[0]["outs"]
        return np.stack([np.asarray(o, dtype=np.float64) for o in outs])

    return fd_gradients(evaluate, case.arrays, dout)


def _mutations(user: UserLayer, case: LayerCase, values: tuple, result: dict, douts: list) -> list:
    before = dict(zip(case.arrays, values))
    text = mutated(case.kind, before, dict(zip(case.arrays, result["args"])), f"{user.name} or {user.backward_name}")
    if not text:
        text = mutated(case.kind, {f"dout #{i}": d for i, d in enumerate(douts)},
                       {f"dout #{i}": d for i, d in enumerate(result["douts"])}, user.backward_name)
    if not text:
        for old, new in zip(result["cache_before"], result["cache_after"]):
            text = mutated(case.kind, dict(old), dict(new), user.backward_name)
            if text:
                break
    return [("mutation", "", text)] if text else []


def _dropout_mask(kind: CourseKind, case: LayerCase, mask: np.ndarray) -> list:
    keep = float(case.config["p"])
    bad = (mask != 0) & ~np.isclose(mask, 1.0 / keep, rtol=1e-12, atol=0)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        return [("forward", "x", f"dropout's forward scales a kept unit by {mask[where]:.6g} at {where}, not 1/p = "
                 f"{1 / keep:.6g} (inverted dropout with p the keep probability): the mask read back is not 0 or 1/p")]
    return []


def _forward_check(kind: CourseKind, out: np.ndarray, ref: np.ndarray, name: str, terms: np.ndarray) -> list:
    if out.shape != ref.shape:
        return [("forward", "", f"{name} returned out of shape {out.shape}, but {kind.name} gives {ref.shape}: "
                 "check the output's layout")]
    denom = max(float(np.linalg.norm(ref.ravel())), float(np.linalg.norm(np.ravel(terms))), 1e-300)
    with np.errstate(invalid="ignore", over="ignore"):
        rel = float(np.linalg.norm((out.astype(np.float64) - ref).ravel())) / denom
    if not rel <= FORWARD_RTOL["float32"]:
        diff = np.abs(out.astype(np.float64) - ref)
        where = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.where(np.isnan(diff), np.inf, diff))), out.shape))
        return [("forward", "", f"{name} computes another function than {kind.name}: out {out[where]:.6g} at {where}, "
                 f"the reference {ref[where]:.6g} (relative error {rel:.3g}); the gradients are checked against "
                 f"{kind.name}'s")]
    return []


def _values(kind: CourseKind, grads: dict[str, np.ndarray], values: tuple) -> list:
    out = []
    for (name, g), v in zip(grads.items(), values):
        bad = ~np.isfinite(g)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            out.append(("finite", name, f"d{name} of {kind.name} has {g[where]} at {where}: look for a 0/0 or an overflow"))
        if np.finfo(g.dtype).bits < np.finfo(v.dtype).bits:
            out.append(("dtype", name, f"d{name} of {kind.name} is {g.dtype} for {v.dtype} arrays: return the arrays' "
                        "dtype (its rounding, not the maths, would decide the comparison)"))
    return out


def _run_loss(kind: CourseKind, user: UserLayer, case: LayerCase, per_sample: bool) -> CaseRun:
    rng = np.random.default_rng([case.seed, 1])
    x, y = case.arrays["x"], case.y
    steps = [losses([x, x, _other(case, rng)[0], x], y)]
    perm = None
    if case.batch >= 2:
        perm = np.roll(np.arange(case.batch), 1)[rng.permutation(case.batch)]
        steps.append(losses([x[perm]], y[perm]))
    results = user.run(steps, calls=5)
    got = [_loss_pair(user, kind, r, x.shape) for r in results[0]["results"]]
    oracle = Oracle(kind, case)
    problems = _forward_check(kind, np.asarray(got[0][0]), np.asarray(oracle.output()), user.name, oracle.terms())
    grads = {"x": got[0][1]}
    problems += _values(kind, grads, (x,))
    run = CaseRun(case, grads, None, oracle, oracle.rounding(None), [got[1][1]], [got[3][1]], problems=problems)
    if perm is not None:
        run.permuted = (perm, [_loss_pair(user, kind, results[1]["results"][0], x.shape)[1]])
    return run


def _loss_pair(user: UserLayer, kind: CourseKind, value: Any, shape: tuple) -> tuple[float, np.ndarray]:
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise UserFunctionError(f"{user.name} ({kind.name}) returned {type(value).__name__}, not (loss, dx): "
                                "return loss, dx")
    loss, dx = value
    if np.ndim(loss) != 0 or not np.issubdtype(np.asarray(loss).dtype, np.number):
        raise UserFunctionError(f"{user.name} ({kind.name}) returned loss of shape {np.shape(loss)}: return a float")
    dx = np.asarray(dx) if type(dx).__name__ != "Foreign" else np.asarray(None)
    if not np.issubdtype(dx.dtype, np.floating) or dx.shape != tuple(shape):
        raise UserFunctionError(f"{user.name} ({kind.name}) returned dx of shape {dx.shape} ({dx.dtype}), but x is "
                                f"{tuple(shape)}: return dx shaped like x")
    return float(loss), dx
