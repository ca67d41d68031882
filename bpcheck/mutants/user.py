"""User-style mutants: gradient functions as a person writes them, fn(arch, params, x, y) -> grads,
whose bug is hidden state or a side effect rather than a wrong line of math.

as_producer(fn) turns one into a Case -> Gradients producer for check_case, calling fn as
bpcheck.byo calls a user's function (byo.calls.UserGrad: writable copies, the output validated)
and running byo's own checks on each call: the inputs must be left unmodified, and the A, B, A calls
must show no hidden state (byo.calls.hidden_state). Either failure raises UserFunctionError with
byo's message, naming the array or the state, so check_case reports ERROR with that message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import engine
from ..byo.calls import UserGrad, hidden_state
from ..byo.layouts import ROW
from ..spec import Arch, Case, Gradients, UserFunctionError

GradFn = Callable[[Arch, dict, np.ndarray, np.ndarray], dict]


def _engine_grads(arch: Arch, params: dict, x: np.ndarray, y: np.ndarray, caches=None) -> dict:
    if caches is None:
        _, caches = engine.forward(arch, params, x)
    return dict(engine.backward(arch, params, caches, y, input_grad=False).grads)


def as_producer(fn: GradFn, name: str) -> Callable[[Case], Gradients]:
    """A producer calling fn through byo; UserFunctionError when fn mutates its inputs or keeps state."""
    user = UserGrad(fn, ROW, name=name)

    def produce(case: Case) -> Gradients:
        call = user.call(case)
        fault = f"{name} {call.mutated}" if call.mutated else hidden_state(user, case, call)
        if fault:
            raise UserFunctionError(fault)
        return Gradients(call.loss, call.grads, None, source=name)  # the function's own loss, if it returns one

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
