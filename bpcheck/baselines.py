"""The checkers people already use, as baselines: torch.autograd.gradcheck and jax check_grads.

    result = torch_gradcheck(producer, case, fast_mode=False)   # BaselineResult(caught, seconds, message)
    result = jax_check_grads(producer, case)

Each wraps a gradient producer (Case -> Gradients) as a scalar function L(W1, b1, ..., WL, bL, x)
(x left out for a user-style function, which gives no dL/dx) whose forward is the engine's loss
and whose backward returns producer(case) for the current values: a torch.autograd.Function in
float64, or a jax.custom_vjp whose forward and backward are
jax.pure_callback calls. The checker then runs with its own default tolerances. Both run in
float64 on the float64 copy of the case (values as drawn, so a float32 case is checked at its
float32 values); a baseline "catches" when it raises. torch and jax are imported only at call time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import engine
from .spec import Case, Gradients

Producer = Callable[[Case], Gradients]
BASELINES: tuple[str, ...] = ("gradcheck", "gradcheck_fast", "check_grads")


@dataclass(frozen=True)
class BaselineResult:
    """caught: the checker raised; message: the first line of what it said (or why it could not run)."""

    name: str
    caught: bool
    seconds: float
    message: str = ""
    error: bool = False   # the wrapper itself failed to run (not a verdict on the gradient)


def _with_x(producer: Producer) -> bool:
    """A user-style gradient function (producer.fn, bpcheck.mutants.user) gives no dL/dx: check params only."""
    return getattr(producer, "fn", None) is None


def _inputs(case: Case, with_x: bool) -> list[np.ndarray]:
    arrays = [np.asarray(case.params[n], dtype=np.float64) for n in case.arch.param_shapes()]
    return arrays + [case.x.astype(np.float64)] if with_x else arrays


def _split(case: Case, arrays: list[np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    names = list(case.arch.param_shapes())
    x = arrays[len(names)] if len(arrays) > len(names) else case.x.astype(np.float64)
    return dict(zip(names, arrays[:len(names)], strict=True)), x


def _grads_of(producer: Producer, case: Case, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """producer's gradient for the checked arrays (params, then x when checked), in float64.

    A user-style function is called on the checker's own arrays, as a user's wrapper would call
    it, so that a function which changes its inputs in place changes what the checker sees.
    """
    params, x = _split(case, arrays)
    y = _targets(case)
    fn = getattr(producer, "fn", None)
    if fn is not None:
        grads = fn(case.arch, params, x, y)
        return [np.asarray(grads[n], dtype=np.float64) for n in case.arch.param_shapes()]
    g = producer(Case(case.arch, params, x, y, case.regime))
    out = [np.asarray(g.grads[n], dtype=np.float64) for n in case.arch.param_shapes()]
    if len(arrays) > len(out):
        out.append(np.zeros_like(x) if g.dx is None else np.asarray(g.dx, dtype=np.float64))
    return out


def _loss_at(case: Case, arrays: list[np.ndarray]) -> float:
    params, x = _split(case, arrays)
    return engine.loss(case.arch, params, x, _targets(case))


def _targets(case: Case) -> np.ndarray:
    """y in float64, but integer class labels (cross_entropy's (batch,)) as they are: cast to float they would be read
    as a (batch,) target row, which does not broadcast against the (batch, n_out) output."""
    return case.y if np.issubdtype(case.y.dtype, np.integer) else case.y.astype(np.float64)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]


def torch_gradcheck(producer: Producer, case: Case, *, fast_mode: bool = False) -> BaselineResult:
    """torch.autograd.gradcheck(L, (W1, b1, ..., x), fast_mode=fast_mode) with its defaults
    (eps=1e-6, atol=1e-5, rtol=1e-3); caught when it raises."""
    import torch

    name = "gradcheck_fast" if fast_mode else "gradcheck"
    arrays = _inputs(case, _with_x(producer))

    class Loss(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            ctx.save_for_backward(*tensors)
            return torch.tensor(_loss_at(case, [t.detach().numpy() for t in tensors]), dtype=torch.float64)

        @staticmethod
        def backward(ctx, grad_out):
            values = [t.detach().numpy() for t in ctx.saved_tensors]
            grads = _grads_of(producer, case, values)
            return tuple(grad_out * torch.from_numpy(np.ascontiguousarray(g)) for g in grads)

    tensors = tuple(torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays)
    start = time.perf_counter()
    try:
        torch.autograd.gradcheck(Loss.apply, tensors, fast_mode=fast_mode)
    except Exception as exc:  # GradcheckError, or the producer's own failure inside backward
        return BaselineResult(name, True, time.perf_counter() - start, _first_line(exc))
    return BaselineResult(name, False, time.perf_counter() - start)


def jax_check_grads(producer: Producer, case: Case) -> BaselineResult:
    """jax.test_util.check_grads(L, args, order=1, modes=["rev"]) with its defaults (eps=1e-4,
    float64 atol = rtol = 1e-5): one vjp against a numerical jvp along a random direction."""
    import jax

    jax.config.update("jax_enable_x64", True)  # as bpcheck's jax reference does (process-wide)
    from jax.test_util import check_grads

    arrays = _inputs(case, _with_x(producer))
    shapes = tuple(jax.ShapeDtypeStruct(a.shape, np.float64) for a in arrays)
    scalar = jax.ShapeDtypeStruct((), np.float64)

    # np.array copies: np.asarray of a callback's jax array is read-only, and a function under test that
    # writes to its inputs must meet the same writable arrays that torch's gradcheck hands it.
    def host_loss(*values):
        return np.float64(_loss_at(case, [np.array(v) for v in values]))

    def host_grads(*values):
        return tuple(_grads_of(producer, case, [np.array(v) for v in values]))

    @jax.custom_vjp
    def loss(*args):
        return jax.pure_callback(host_loss, scalar, *args)

    def loss_fwd(*args):
        return loss(*args), args

    def loss_bwd(saved, ct):
        return tuple(ct * g for g in jax.pure_callback(host_grads, shapes, *saved))

    loss.defvjp(loss_fwd, loss_bwd)
    start = time.perf_counter()
    try:
        check_grads(loss, tuple(arrays), order=1, modes=["rev"])
    except Exception as exc:  # AssertionError from the comparison, or the producer's failure in the callback
        return BaselineResult("check_grads", True, time.perf_counter() - start, _first_line(exc))
    return BaselineResult("check_grads", False, time.perf_counter() - start)


def run_baseline(name: str, producer: Producer, case: Case) -> BaselineResult:
    """One of BASELINES on one case; a missing framework is an error result, not a catch."""
    try:
        if name == "gradcheck":
            return torch_gradcheck(producer, case)
        if name == "gradcheck_fast":
            return torch_gradcheck(producer, case, fast_mode=True)
        if name == "check_grads":
            return jax_check_grads(producer, case)
    except ImportError as exc:
        return BaselineResult(name, False, 0.0, f"not available: {exc}", error=True)
    raise ValueError(f"baseline {name!r} is unknown: choose from {', '.join(BASELINES)}")


def available(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec("jax" if name == "check_grads" else "torch") is not None
