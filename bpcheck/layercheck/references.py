"""The references for a case, in float64, keyed by the course's argument names.

    refs = Oracle(kind, case)          # a known kind (registry) or a loss layer; dropout with the user's mask
    refs.output()                      # the layer's output by the registry's independent numpy reference
    refs.gradients("torch", dout)      # {'x': dx, 'w': dw, 'b': db} by torch's autograd of the registry's form
    refs.fd(dout)                      # {name: FDTensor}: FD of <reference(theta), dout>, kinks by Layer.pattern
    refs.rounding(dout)                # {name: E}: how far float32 moves the registry's backward (a rounding scale)

torch and jax are imported here only when their reference runs. Dropout's mask is the user's (only their
forward knows their RNG): read back from their output as out / x, so the layer is x * m with m fixed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .cases import LayerCase
from .course import CourseKind, course_grads, registry_params, registry_x
from .fd import FDTensor, fd_gradients

EPS64, EPS32 = float(np.finfo(np.float64).eps), float(np.finfo(np.float32).eps)
JITTERS = 2


class Oracle:
    def __init__(self, kind: CourseKind, case: LayerCase, mask: np.ndarray | None = None) -> None:
        from ..layers import LAYERS

        self.kind, self.case, self.mask = kind, case, mask
        self.layer = LAYERS[kind.registry] if kind.registry and kind.name != "dropout" else None
        self.reg = case.registry[0] if case.registry else None
        self.arrays = {k: np.asarray(v, dtype=np.float64) for k, v in case.arrays.items()}

    @property
    def analytic(self) -> tuple[str, ...]:
        return ("torch", "jax") if self.layer is not None or self.kind.loss else ()

    # --- forward ---------------------------------------------------------------------------------------
    def stacked_output(self, stacked: dict[str, np.ndarray]) -> np.ndarray:
        """The output for K stacked copies of the arrays (name -> (K, *shape)) -> (K, N, ...)."""
        if self.kind.name == "dropout":
            return stacked["x"] * self.mask[None]
        if self.kind.loss:
            return np.array([_softmax_loss(x, self.case.y) for x in stacked["x"]])
        x = stacked["x"]
        x = x.reshape(x.shape[0], x.shape[1], -1) if self.kind.name == "affine" else x
        params = {local: stacked[name] for name, local in self.kind.params.items()}
        return self.layer.reference(self.reg, params, x)

    def output(self) -> np.ndarray:
        return self.stacked_output({k: v[None] for k, v in self.arrays.items()})[0]

    def terms(self) -> np.ndarray:
        """The output at |arrays|: the size of the terms the output sums (its rounding scale)."""
        if self.kind.loss:
            return np.asarray(_loss_terms(self.arrays["x"]))
        return self.stacked_output({k: np.abs(v)[None] for k, v in self.arrays.items()})[0]

    # --- gradients -------------------------------------------------------------------------------------
    def fd(self, dout: np.ndarray | None) -> dict[str, FDTensor]:
        pattern = None
        if self.layer is not None and self.layer.pattern is not None:
            def pattern(theta: dict[str, np.ndarray]) -> Any:
                return self.layer.pattern(self.reg, registry_params(self.kind, theta), registry_x(self.kind, theta["x"]))
        terms = _loss_terms(self.arrays["x"]) if self.kind.loss else None
        return fd_gradients(self.stacked_output, self.arrays, np.ones(()) if dout is None else dout, pattern,
                            terms=terms)

    def gradients(self, name: str, dout: np.ndarray | None) -> dict[str, np.ndarray]:
        """torch's or jax's VJP of the registry's form (or of the softmax loss) with dout."""
        if self.kind.loss:
            return {"x": _loss_grad(name, self.arrays["x"], self.case.y)}
        x = registry_x(self.kind, self.arrays["x"])
        params = registry_params(self.kind, self.arrays)
        dx, grads = (_torch_vjp if name == "torch" else _jax_vjp)(self.layer, self.reg, params, x, dout)
        return course_grads(self.kind, self.arrays, dx, grads)

    def engine(self, dout: np.ndarray, dtype: Any = np.float64, arrays: dict | None = None) -> dict[str, np.ndarray]:
        """The registry's own numpy backward (bpcheck's engine) in dtype, on the case's arrays or others: the
        diagnosis's and the rounding probe's, never a judge."""
        arrays = {k: v.astype(dtype) for k, v in (self.arrays if arrays is None else arrays).items()}
        if self.kind.name == "dropout":
            return {"x": dout.astype(dtype) * self.mask.astype(dtype)}
        if self.kind.loss:
            return {"x": _loss_grad("numpy", arrays["x"], self.case.y)}
        params = registry_params(self.kind, arrays)
        x = registry_x(self.kind, arrays["x"])
        _, cache = self.layer.forward(self.reg, params, x)
        dx, grads = self.layer.backward(self.reg, params, cache, dout.astype(dtype))
        return course_grads(self.kind, arrays, dx, grads)

    def rounding(self, dout: np.ndarray | None) -> dict[str, float]:
        """E per argument: the float64 rounding of this case's backward, large where its terms cancel (batchnorm's
        and layernorm's dx at 2 values: 1e-11 of the terms). The larger of ||backward in float32 - in float64|| *
        eps64 / eps32, float64's own rounding noise, sampled (the backward again on the case with every input and
        dout moved by a random ulp, JITTERS times), and float64's error against np.longdouble (float32 alone
        saturates there: it gives 0, and the scaled difference says nothing; one jitter or one measured error can be
        small by luck). A jitter that moves a kink's pattern (a max-pool tie broken) is not used."""
        d = np.ones(()) if dout is None else dout
        g64, g32 = self.engine(d), self.engine(d, np.float32)
        out = {k: float(np.linalg.norm((g32[k].astype(np.float64) - g64[k]).ravel())) * EPS64 / EPS32 for k in g64}
        rng = np.random.default_rng([self.case.seed, 17])
        base = self._pattern(self.arrays)
        for _ in range(JITTERS):
            moved = {k: v * (1 + EPS64 * rng.uniform(-1, 1, v.shape)) for k, v in self.arrays.items()}
            if base is not None and not np.array_equal(self._pattern(moved), base):
                continue
            g = self.engine(d * (1 + EPS64 * rng.uniform(-1, 1, np.shape(d))), arrays=moved)
            for k in out:
                out[k] = max(out[k], float(np.linalg.norm((g[k] - g64[k]).ravel())))
        if np.finfo(np.longdouble).eps < EPS64:  # and float64's error against extended precision, where there is one
            try:
                ext = self.engine(d, np.longdouble)
            except (TypeError, ValueError):  # an operation without a longdouble loop
                ext = {}
            for k, g in ext.items():
                with np.errstate(all="ignore"):
                    out[k] = max(out[k], float(np.linalg.norm((g64[k] - g).astype(np.float64).ravel())))
        if self.kind.loss:  # 1 - p at a saturated softmax is ~eps of 1 whatever float32 says: each entry of p and
            x = self.arrays["x"]  # the one-hot row is <= 1, divided by N
            out["x"] = max(out["x"], EPS64 * np.sqrt(x.size) / len(x))
        return out

    def _pattern(self, arrays: dict[str, np.ndarray]) -> Any:
        if self.layer is None or self.layer.pattern is None:
            return None
        return self.layer.pattern(self.reg, registry_params(self.kind, arrays), registry_x(self.kind, arrays["x"]))


def _loss_terms(x: np.ndarray) -> float:
    """A softmax loss's rounding scale: log-sum-exp and the label's logit, each about max |x| of its row."""
    return float(2.0 * np.mean(np.abs(x).max(axis=1)) + 1.0)


def _softmax_loss(x: np.ndarray, y: np.ndarray) -> float:
    """Mean over the batch of -log softmax(x)[y], by log-sum-exp."""
    m = x.max(axis=1, keepdims=True)
    log_z = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
    return float(np.mean(log_z - x[np.arange(len(y)), y]))


def _loss_grad(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if name == "torch":
        import torch

        with _one_thread(torch):
            t = torch.tensor(x, requires_grad=True)
            torch.nn.functional.cross_entropy(t, torch.tensor(y)).backward()
        return t.grad.numpy()
    if name == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
        jnp = jax.numpy

        def loss(z):
            return -jnp.mean(jax.nn.log_softmax(z, axis=1)[jnp.arange(len(y)), y])

        return np.asarray(jax.grad(loss)(jnp.asarray(x, dtype=jnp.float64)))
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return p / len(y)


@contextlib.contextmanager
def _one_thread(torch: Any) -> Iterator[None]:
    """A layer's tensors are small: torch's threads cost more than they save (50 ms a backward on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _torch_vjp(layer, config, params, x, dout):
    import torch

    with _one_thread(torch):
        tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        tx = torch.tensor(x, requires_grad=True)
        out = layer.torch(config, tp, tx, torch)
        grads = torch.autograd.grad(out, [tx, *tp.values()], torch.tensor(np.reshape(dout, tuple(out.shape))),
                                    allow_unused=True)
    arrays = [np.zeros(t.shape) if g is None else g.numpy() for t, g in zip([tx, *tp.values()], grads)]
    return arrays[0], dict(zip(tp, arrays[1:]))


_JITTED: dict = {}


def _jax_vjp(layer, config, params, x, dout):
    """One jitted VJP per (kind, config, shapes): jax's op-by-op dispatch compiles every primitive per shape,
    0.6 s a case on a small affine; one compile of the whole VJP costs a fraction of that."""
    import json

    import jax

    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    key = (layer.kind, json.dumps(config, sort_keys=True), x.shape, tuple((k, v.shape) for k, v in params.items()))
    fn = _JITTED.get(key)
    if fn is None:
        def vjp(xx, pp, dd):
            out, pullback = jax.vjp(lambda a, b: layer.jax(config, b, a, jax), xx, pp)
            return pullback(jnp.reshape(dd, out.shape))

        fn = _JITTED[key] = jax.jit(vjp)
    dx, grads = fn(jnp.asarray(x), {k: jnp.asarray(v) for k, v in params.items()}, jnp.asarray(dout))
    return np.asarray(dx), {k: np.asarray(v) for k, v in grads.items()}
