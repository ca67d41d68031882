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
    import jax

    jax.config.update("jax_enable_x64", True)

    def forward(*args: Any):
        arrays = [a for a in args if isinstance(a, np.ndarray)]
        rest = [a for a in args if not isinstance(a, np.ndarray)]
        out, pullback = jax.vjp(lambda *a: fn(*a, *rest), *(jax.numpy.asarray(a) for a in arrays))
        return np.array(out), pullback

    def backward(dout: np.ndarray, pullback: Any):
        grads = pullback(jax.numpy.asarray(dout))
        return tuple(np.array(g) for g in grads)

    return forward, backward
