"""Calling a user's gradient function: its output validated, its inputs watched, its memory tested.

    user = UserGrad(grad_fn, layout, timeout)
    out = user.call(case)               # -> Call(grads in bpcheck's layout, mutated)
    hidden_state(user, case, out)       # '' or how the answer depends on earlier calls (A, B, A)

Interface faults (not a dict, wrong or missing keys, wrong shapes, non-float dtype) raise
UserFunctionError naming the key, the shape or dtype found and the one expected; behaviour faults
(NaN or Inf, arguments modified in place, an answer that depends on earlier calls) are returned as
messages, so that the check can go on and report them with the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..spec import Arch, Case, Grads, UsageError, UserFunctionError, suggest
from .layouts import Layout
from .loading import call_user, positional_arity

# The same function on the same arrays must give the same answer to within a few roundings
# (BLAS may reorder a sum between calls); past this many eps of the tensor's largest entry it has state.
STALE_EPS = 16


def takes_arch(fn: Callable[..., Any], what: str) -> bool:
    """True for fn(arch, params, x, y), False for fn(params, x, y); other arities are a UserFunctionError."""
    n = positional_arity(fn)
    if n is None or n in (3, 4):
        return n == 4
    raise UserFunctionError(f"{what} takes {n} positional argument(s): write it as {what}(params, x, y), "
                            f"or {what}(arch, params, x, y) to be checked over many architectures")


@dataclass(frozen=True)
class Call:
    grads: Grads           # bpcheck's layout, the user's dtype
    mutated: str           # '' or what the call modified in place
    loss: float | None = None  # the loss value, when the function returns one under the key 'loss'


def user_targets(case: Case, labels: bool) -> np.ndarray:
    """The y a user's function is handed: the target rows (case.targets), or with labels (--targets labels) the
    integer class index of each row of a cross_entropy case, as CS231n's softmax_loss(x, y) takes them (a case
    that holds integer labels hands them over as they are)."""
    if labels and case.arch.loss == "cross_entropy":
        return case.y if case.labels else np.argmax(case.y, axis=1)
    return case.targets


def type_name(value: Any) -> str:
    """The type's name, also for a value the worker process could only describe (worker.Foreign)."""
    return getattr(value, "type_name", None) if type(value).__name__ == "Foreign" else type(value).__name__


def function_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


class UserGrad:
    """A user's grad_fn(params, x, y) (or grad_fn(arch, params, x, y)) in a given layout."""

    def __init__(self, fn: Callable[..., Any], layout: Layout, timeout: float | None = None,
                 name: str | None = None, labels: bool = False) -> None:
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not 0 < timeout < float("inf")):
            raise UsageError(f"timeout={timeout!r} is not a number of seconds: give a finite number > 0, or None")
        self.fn, self.layout, self.timeout, self.labels = fn, layout, timeout, labels
        self.name = name or function_name(fn)
        self.with_arch = takes_arch(fn, self.name)

    def call(self, case: Case, params: dict[str, np.ndarray] | None = None) -> Call:
        arch = case.arch
        args = self.layout.to_user(arch, case.params if params is None else params, case.x, user_targets(case, self.labels))
        before = _snapshot(args)
        prefix = (arch,) if self.with_arch else ()
        # In the worker process the call changes the worker's copies: they come back as `after`.
        out, after = call_user(self.fn, prefix + tuple(args), name=self.name, timeout=self.timeout,
                               returned_args=True)
        mutated = _mutated(tuple(after)[len(prefix):], before)
        loss, out = self.split_loss(out)
        return Call(self.validate(arch, out, (np.shape(args[1]), case.x.shape)), mutated, loss)

    def split_loss(self, out: Any) -> tuple[float | None, Any]:
        """(the loss value, the rest) of a returned dict with an optional 'loss': its forward's loss, compared with
        the references' like any tensor, so that a wrong forward shows. Not a real number: a UserFunctionError."""
        if not isinstance(out, dict) or "loss" not in out:
            return None, out
        value = out["loss"]
        try:
            arr = np.asarray(value)
            ok = arr.size == 1 and (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer))
        except Exception:  # odd objects: say what it was
            ok = False
        if not ok:
            raise UserFunctionError(f"{self.name} returned 'loss' = {type_name(value)} {value!r:.60}: return the loss "
                                    "value as one real number (a float), or leave 'loss' out")
        return float(arr.reshape(())), {k: v for k, v in out.items() if k != "loss"}

    def validate(self, arch: Arch, out: Any, x_shapes: tuple[tuple[int, ...], tuple[int, ...]] | None = None) -> Grads:
        """The user's output as bpcheck-layout arrays, or a UserFunctionError naming what is wrong.

        An optional 'x' (dL/dx, shaped like the x the function was handed: x_shapes = (the user's, bpcheck's))
        is checked like any tensor."""
        name, layout = self.name, self.layout
        expected = dict(arch.param_shapes())
        if isinstance(out, dict) and "x" in out and x_shapes is not None:
            expected["x"] = x_shapes[1]
        if not isinstance(out, dict):
            raise UserFunctionError(f"{name} returned {type_name(out)}, not a dict: return "
                                    f"{{'W1': dL/dW1, 'b1': dL/db1, ...}} with keys {', '.join(expected)}")
        missing = [k for k in expected if k not in out]
        extra = [k for k in out if k not in expected]
        if missing or extra:
            bits = []
            if missing:
                bits.append(f"no {', '.join(map(repr, missing))}")
            if extra:
                bits.append("unexpected " + ", ".join(f"{k!r}{suggest(k, missing or list(expected))}" for k in extra))
            raise UserFunctionError(f"{name} returned {' and '.join(bits)}: return exactly the keys "
                                    f"{', '.join(expected)} for arch {arch.label()}")
        user_shapes = {**layout.shapes(arch), "x": x_shapes[0] if x_shapes else None} if layout.shapes else None
        arrays = {}
        for key in expected:
            value = out[key]
            try:
                arr = np.asarray(value)
            except Exception:  # ragged lists and odd objects: say what it was
                arr = np.asarray(None)
            if not (np.issubdtype(arr.dtype, np.floating)):
                raise UserFunctionError(f"{name} returned {key!r} of dtype {arr.dtype} ({type_name(value)}): "
                                        "return float arrays (float32 or float64)")
            if user_shapes is not None and arr.shape != tuple(user_shapes[key]):
                raise UserFunctionError(f"{name} returned {key!r} of shape {arr.shape}, but {key} is "
                                        f"{tuple(user_shapes[key])} in the {layout.hint}")
            arrays[key] = arr
        try:
            grads = layout.from_user(arch, arrays)
        except Exception as exc:  # a user's conversion can fail in any way
            raise UserFunctionError(f"from_user of the {layout.name} layout raised {type(exc).__name__}: {exc}") from None
        converted = {}
        for key, shape in expected.items():
            arr = np.asarray(grads.get(key)) if isinstance(grads, dict) else None
            if arr is None or arr.shape != shape or not np.issubdtype(arr.dtype, np.floating):
                got = None if arr is None else (arr.shape, arr.dtype.name)
                raise UserFunctionError(f"{name}'s {key!r} is {got} after the {layout.name} layout's from_user, but "
                                        f"bpcheck needs shape {shape}, float: fix the gradient or the conversion")
            converted[key] = arr
        return converted


def nonfinite(name: str, grads: Grads) -> str:
    """'' or "dW1 has nan at (0, 1) (3 non-finite entries in all)": where the first NaN or Inf is."""
    for key, g in grads.items():
        bad = ~np.isfinite(g)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            total = int(bad.sum())
            return (f"{name} returned d{key} with {g[where]} at {where} ({total} non-finite entr"
                    f"{'y' if total == 1 else 'ies'} in d{key}): look for an overflow, a log of 0 or a 0/0")
    return ""


def narrower(name: str, grads: Grads, dtype: np.dtype) -> str:
    """'' or which gradient came back in a float type with fewer bits than the case's (float16 for a float64
    case): its rounding, not the function's math, would decide the comparison."""
    for key, g in grads.items():
        if np.finfo(g.dtype).bits < np.finfo(dtype).bits:
            return (f"{name} returned d{key} as {g.dtype.name} for a {np.dtype(dtype).name} case, which keeps about "
                    f"{np.finfo(g.dtype).precision} significant digits: compute and return {np.dtype(dtype).name}")
    return ""


def stale(name: str, first: Grads, again: Grads) -> str:
    """'' or where the answer for the same case changed after a call on another case."""
    for key, a in first.items():
        b = again[key]
        finite = np.abs(a[np.isfinite(a)])
        scale = float(finite.max()) if finite.size else 0.0
        limit = STALE_EPS * float(np.finfo(a.dtype).eps) * scale
        with np.errstate(invalid="ignore"):  # inf - inf
            diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
        # the same NaN or Inf twice is the same answer (the finite-values check reports it), not state
        diff[(a == b) | (np.isnan(a) & np.isnan(b))] = 0.0
        if not np.all(diff <= limit):
            where = tuple(int(i) for i in np.unravel_index(int(np.nanargmax(np.where(np.isnan(diff), np.inf, diff))),
                                                           a.shape))
            return (f"{name} gave another d{key} for the same case after a call on another case ({a[where]:.6g} then "
                    f"{b[where]:.6g} at {where}): it keeps state between calls (a stale cache, a global); compute "
                    "everything from its arguments")
    return ""


def same_answer(name: str, first: Grads, other: Grads) -> str:
    """'' or a message when params far from the first call's gave bit for bit the same gradient."""
    if all(np.array_equal(first[k], other[k]) for k in first) and any(np.any(v) for v in first.values()):
        return (f"{name} returned the same gradient, bit for bit, for other params on the same data: it keeps state "
                "between calls (a cache keyed on the data or the shape, not the params); compute everything from "
                "its arguments")
    return ""


def hidden_state(user: UserGrad, case: Case, first: Call) -> str:
    """'' or a message when user's answer depends on earlier calls. first is user.call(case); then case B
    (A's data, other params), then A again: B's answer must differ from A's (a cache that ignores the
    params) and A's must not change (state kept between calls, e.g. an accumulator never zeroed)."""
    rng = np.random.default_rng(12345)
    other = {k: (v * 1.5 + 0.25 * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in case.params.items()}
    moved = user.call(case, other)
    again = user.call(case)
    return same_answer(user.name, first.grads, moved.grads) or stale(user.name, first.grads, again.grads)


def _snapshot(args: Any) -> list[tuple[str, np.ndarray]]:
    return [(label, np.array(arr, copy=True)) for label, arr in _arrays(args)]


def _arrays(args: Any) -> list[tuple[str, np.ndarray]]:
    params, x, y = args
    out = []
    if isinstance(params, dict):
        out += [(f"params[{k!r}]", v) for k, v in params.items() if isinstance(v, np.ndarray)]
    out += [(label, v) for label, v in (("x", x), ("y", y)) if isinstance(v, np.ndarray)]
    return out


def changed_in_place(label: str, old: np.ndarray, new: np.ndarray) -> str:
    """'' when new equals old, else 'reshaped label in place (old shape -> new)' or 'modified label in place
    (old value -> new at the first changed index)'; check_gradients and check_layer add their own advice."""
    if new.shape != old.shape:
        return f"reshaped {label} in place ({old.shape} -> {new.shape})"
    if np.array_equal(new, old, equal_nan=True):
        return ""
    where = tuple(int(i) for i in np.argwhere(new != old)[0])
    return f"modified {label} in place ({old[where]:.6g} -> {new[where]:.6g} at {where})"


def _mutated(args: Any, before: list[tuple[str, np.ndarray]]) -> str:
    now = dict(_arrays(args))
    params = args[0]
    for label, old in before:
        new = now.get(label)
        if new is None:
            return f"removed {label} from its arguments: copy the dict before changing it"
        change = changed_in_place(label, old, new)
        if change:
            return f"{change}: work on a copy" + ("" if new.shape != old.shape else ", e.g. W = W - lr * dW, not W -= lr * dW")
    if isinstance(params, dict) and set(params) != {label[8:-2] for label, _ in before if label.startswith("params")}:
        return "added keys to its params argument: leave the caller's dict alone"
    return ""
