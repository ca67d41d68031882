"""torch.autograd.Function subclasses and jax.custom_vjp functions, as course-form forward and backward.

    form_of(obj) -> "torch" | "jax" | None           (without importing torch or jax)
    forward, backward = adapters("torch", MyFn)       (in the worker: imports the framework there)

The adapted forward takes the course arguments (arrays, then the config dict if the kind has one): the
arrays become float64 tensors (torch, requires_grad) or jax arrays (x64 enabled), the config is passed
through as the last positional argument. The backward is the framework's own: torch.autograd.grad of
the output with the cotangent (the Function's backward runs), or the pullback jax.vjp returns (the
custom_vjp's bwd rule runs). A gradient the Function gives as None counts as zeros.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def form_of(obj: Any) -> str | None:
    """'torch' for a torch.autograd.Function subclass, 'jax' for a jax.custom_vjp function, else None."""
    if isinstance(obj, type) and any(c.__name__ == "Function" and c.__module__.startswith("torch.autograd")
                                     for c in obj.__mro__):
        return "torch"
    if type(obj).__name__ == "custom_vjp" and type(obj).__module__.startswith("jax"):
        return "jax"
    return None


def adapters(form: str, fn: Any) -> tuple[Callable, Callable]:
    return _torch(fn) if form == "torch" else _jax(fn)


def _torch(fn: Any) -> tuple[Callable, Callable]:
    import torch

    torch.set_num_threads(1)  # the worker's own torch: small tensors, a busy machine

    def forward(*args: Any):
        given = [torch.tensor(a, requires_grad=True) if isinstance(a, np.ndarray) else a for a in args]
        tensors = [t for t in given if isinstance(t, torch.Tensor)]
        out = fn.apply(*given)
        return out.detach().numpy().copy(), (tensors, out)

    def backward(dout: np.ndarray, cache: Any):
        tensors, out = cache
        grads = torch.autograd.grad(out, tensors, torch.as_tensor(dout, dtype=out.dtype), retain_graph=True,
                                    allow_unused=True)
        return tuple(np.zeros(t.shape, dtype=np.float64) if g is None else g.detach().numpy().copy()
                     for t, g in zip(tensors, grads))

    return forward, backward


def _jax(fn: Any) -> tuple[Callable, Callable]:
    """Jitted once per shape and config: jax's op-by-op dispatch compiles every primitive for every new shape."""
    import json

    import jax

    jax.config.update("jax_enable_x64", True)
    jitted: dict = {}

    def compiled(rest: list, what: str) -> Callable:
        key = (what, json.dumps(rest, sort_keys=True, default=repr))
        if key not in jitted:
            def apply(*a):
                return fn(*a, *rest)

            jitted[key] = jax.jit(apply) if what == "out" else jax.jit(lambda arrays, g: jax.vjp(apply, *arrays)[1](g))
        return jitted[key]

    def forward(*args: Any):
        arrays = tuple(jax.numpy.asarray(a) for a in args if isinstance(a, np.ndarray))
        rest = [a for a in args if not isinstance(a, np.ndarray)]
        return np.array(compiled(rest, "out")(*arrays)), (arrays, rest)

    def backward(dout: np.ndarray, cache: Any):
        arrays, rest = cache
        return tuple(np.array(g) for g in compiled(rest, "vjp")(arrays, jax.numpy.asarray(dout)))

    return forward, backward


def by_name(obj: Any) -> str | None:
    """'module:name' for an object its module holds under that name (a jax.custom_vjp, which cloudpickle cannot
    send by value): the worker imports it instead."""
    import sys

    module, name = getattr(obj, "__module__", None), getattr(obj, "__name__", None)
    if module and name and module != "__main__" and getattr(sys.modules.get(module), name, None) is obj:
        return f"{module}:{name}"
    return None
