"""User-style mutants: gradient functions as a person writes them, fn(arch, params, x, y) -> grads,
whose bug is hidden state or a side effect rather than a wrong line of math.

as_producer(fn) turns one into a Case -> Gradients producer for check_case. It hands fn writable
copies (as a user's code would get), and runs the two checks bpcheck.byo is to own, in their
smallest form until byo lands: fn must not change its inputs (compared after the call), and two
calls on the same inputs must agree (hidden state). Either failure raises UserFunctionError
naming the array or the state, so check_case reports ERROR with that message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import engine
from ..spec import Arch, Case, Gradients, UserFunctionError

GradFn = Callable[[Arch, dict, np.ndarray, np.ndarray], dict]


def _engine_grads(arch: Arch, params: dict, x: np.ndarray, y: np.ndarray, caches=None) -> dict:
    if caches is None:
        _, caches = engine.forward(arch, params, x)
    return dict(engine.backward(arch, params, caches, y, input_grad=False).grads)


def call_checked(fn: GradFn, case: Case) -> dict:
    """fn on writable copies of the case; UserFunctionError when it mutates them or is not repeatable."""
    params = {k: np.array(v) for k, v in case.params.items()}
    x, y = np.array(case.x), np.array(case.y)
    grads = fn(case.arch, params, x, y)
    for name, before, after in [*((k, case.params[k], params[k]) for k in params), ("x", case.x, x), ("y", case.y, y)]:
        if not np.array_equal(before, after):
            at = tuple(int(i) for i in np.argwhere(before != after)[0])
            raise UserFunctionError(f"the gradient function changed {name} in place (at {at}: {before[at]!r} -> "
                                    f"{after[at]!r}): work on a copy, or return new arrays")
    again = fn(case.arch, {k: np.array(v) for k, v in case.params.items()}, np.array(case.x), np.array(case.y))
    for k in grads:
        if not np.array_equal(grads[k], again.get(k)):
            raise UserFunctionError(f"the gradient function returned another d{k} when called again on the same "
                                    "inputs: it keeps hidden state (an accumulator or a cache); reset it per call")
    return grads


def as_producer(fn: GradFn, name: str) -> Callable[[Case], Gradients]:
    def produce(case: Case) -> Gradients:
        grads = call_checked(fn, case)
        return Gradients(engine.loss(case.arch, case.params, case.x, case.y), grads, None, source=name)

    produce.__qualname__ = name
    produce.fn = fn  # type: ignore[attr-defined]  # the raw function, for the baselines
    return produce


class StaleCache:
    """Memoises the forward pass per architecture and batch shape "to save time": a later batch of
    the same shape reuses the first one's activations, so only the first call is right."""

    def __init__(self) -> None:
        self.memo: dict[str, Any] = {}

    def reset(self) -> None:
        self.memo.clear()

    def __call__(self, arch: Arch, params: dict, x: np.ndarray, y: np.ndarray) -> dict:
        key = f"{arch.label()} {x.shape}"
        if key not in self.memo:
            self.memo[key] = engine.forward(arch, params, x)[1]
        return _engine_grads(arch, params, x, y, self.memo[key])


class Accumulates:
    """Keeps one gradient buffer and adds into it, never zeroing it: torch's forgotten zero_grad()."""

    def __init__(self) -> None:
        self.buffer: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        self.buffer.clear()

    def __call__(self, arch: Arch, params: dict, x: np.ndarray, y: np.ndarray) -> dict:
        for k, g in _engine_grads(arch, params, x, y).items():
            self.buffer[k] = self.buffer[k] + g if k in self.buffer and self.buffer[k].shape == g.shape else g
        return {k: self.buffer[k].copy() for k in params}


def update_in_place(arch: Arch, params: dict, x: np.ndarray, y: np.ndarray) -> dict:
    """Returns the gradient and, "to save a step", applies params -= 0.1 * grad to the caller's arrays."""
    grads = _engine_grads(arch, params, x, y)
    for k, g in grads.items():
        params[k] -= 0.1 * g
    return grads


def normalise_x_in_place(arch: Arch, params: dict, x: np.ndarray, y: np.ndarray) -> dict:
    """Centres the batch in place (x -= x.mean(0)) before the forward: the gradient is for other inputs,
    and the caller's x is changed."""
    x -= x.mean(axis=0)
    return _engine_grads(arch, params, x, y)


def reset(produce: Callable) -> None:
    """Clear a user-style mutant's hidden state, so that a run starts from a fresh function."""
    fn = getattr(produce, "fn", None)
    if hasattr(fn, "reset"):
        fn.reset()
