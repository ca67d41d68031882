"""The rounding of a float32 producer on a stack the dense rounding model does not cover, sampled by a re-run.

    scales, kinks = probe(case, case64, trace)   # E_t per tensor and trace, kink masks; ({}, {}) when not needed

rounding.py models a dense MLP's rounding norm-wise, layer by layer. Any other stack (convolutions, pools,
norms) gets this generic fallback instead, in either dtype (E_t is in units of the producer's eps):

  scales  torch runs the same stack once more in float32 (torch_ref.gradients(case, "float32")): a correct
          float32 implementation. Its distance to the float64 reference, tensor by tensor, is one sample of
          the error a correct float32 producer makes, E_t = PROBE ||g32_t - g64_t|| / eps32 + ||g64_t||
          + PROBE ||g64|| (PROBE samples of margin, the rounding of the result itself, and a floor from the
          whole gradient for tensors zero by a symmetry), in rounding.py's units.
  kinks   a layer whose piece (Layer.pattern: relu's sign, max-pool's argmax) changes when its input and
          params move by their rounding, +-gamma of each entry, and its input also by PROBE times the error
          the float32 run carried into it from the layers below, may land on either side in a correct
          producer: the samples it changes, and every param of that layer and below, are left out (every
          sample, below a layer whose backward mixes the rows, such as batchnorm).
  floors  compare/terms.py bounds the terms each backward adds, which the sample misses where it is exact.

Without torch a float32 stack gets a norm-wise bound instead of the sample (_unsampled), from whichever reference's
gradient is at hand (FD's, when it ran alone); a float64 one keeps rtol and terms.py's floors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..references.layered import is_mlp, plan
from ..spec import Case, Gradients
from .metrics import norm

PROBE = 8.0
_EPS32 = float(np.finfo(np.float32).eps)


def probe(case: Case, case64: Case, trace: Gradients | None, gamma: float) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """(scales, kinks) for a case of a stack without the dense model; ({}, {}) for an MLP.

    The scales are in units of eps, so the float32 sample serves a float64 case too: there it is what makes a
    gradient that is zero by a symmetry (a batchnorm's gamma before another norm layer) comparable at all, its
    float64 value being the cancellation of terms of the whole gradient's size."""
    if is_mlp(case.arch):
        return {}, {}
    g32 = _float32_run(case, trace)
    eps = _EPS32 if case.x.dtype == np.float32 else float(np.finfo(np.float64).eps)
    return _scales(case, trace, g32), _kinks(case64, gamma, _forward_errors(case64, g32, eps))


def _float32_run(case: Case, trace: Gradients | None) -> Gradients | None:
    """torch's Gradients of the case in float32 (one correct float32 implementation), or None without torch."""
    from ..references import status

    if trace is None or not status("torch").available:
        return None
    from ..references import torch_ref

    try:
        return torch_ref.gradients(case.astype("float32"), "float32")
    except Exception:  # noqa: BLE001  (a probe that cannot run leaves rtol alone, as without torch)
        return None


def _forward_errors(case64: Case, g32: Gradients | None, eps: float) -> list[np.ndarray | None]:
    """Per layer, PROBE times the float32 run's error on that layer's input (its forward values against the
    float64 forward), in the producer's eps: how far rounding may move what the layer's kink is decided on.
    None where the run gave no value (layer 1's input, the case's x, is exact)."""
    values = None if g32 is None else g32.meta.get("forward")
    steps = plan(case64.arch)
    if not values or len(values) != len(steps):
        return [None] * len(steps)
    out: list[np.ndarray | None] = [None]
    x = np.asarray(case64.x, dtype=np.float64)
    a = x
    from ..layers import LAYERS

    for step, (_, a32) in zip(steps[:-1], values[:-1]):
        local = {name: np.asarray(case64.params[key], dtype=np.float64)[None] for name, key in step.keys.items()}
        a = LAYERS[step.kind].reference(step.config, local, a[None])[0]
        with np.errstate(all="ignore"):
            err = PROBE * (np.asarray(a32, dtype=np.float64) - a) * (eps / _EPS32)
        out.append(np.where(np.isfinite(err), err, 0.0) if np.shape(err) == a.shape else None)
    return out


def _scales(case: Case, trace: Gradients | None, g32: Gradients | None) -> dict[str, float]:
    if trace is None:
        return {}
    if g32 is None:
        return _unsampled(case, trace)
    pairs: dict[str, tuple[Any, Any]] = {k: (g32.tensors().get(k), v) for k, v in trace.tensors().items()}
    pairs["loss"] = (g32.loss, trace.loss)
    for i, (a, b) in enumerate(zip(g32.dout or (), trace.dout or ()), start=1):
        pairs[f"da{i}"] = (a, b)
    # A gradient zero by a symmetry (dx of a layernorm over one feature, a gamma before another norm layer) is
    # the cancellation of terms of about the whole gradient's size: one probe sample may show nothing of it.
    whole = _whole(trace)
    out = {}
    for name, (a, b) in pairs.items():
        if a is None or b is None or np.shape(a) != np.shape(b):
            continue
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        with np.errstate(all="ignore"):
            e = PROBE * norm(a - b) / _EPS32 + norm(b) + (PROBE * whole if name != "loss" else 0.0)
        if math.isfinite(e):
            out[name] = e
        elif case.x.dtype == np.float32:  # the producer's own dtype overflows there too
            out[name] = math.inf
        # else a float32 overflow says nothing of a float64 producer: rtol alone holds that tensor
    return out


def _whole(trace: Gradients) -> float:
    """The norm of the trace's whole gradient, every tensor's entries as one vector."""
    tensors = trace.tensors().values()
    return norm(np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in tensors])) if tensors else 0.0


def _unsampled(case: Case, trace: Gradients) -> dict[str, float]:
    """Without torch there is no float32 sample; a float32 stack then gets a norm-wise bound in its place: each
    layer may round at PROBE of the whole gradient, so E_t = ||g_t|| + PROBE (layers + 1) ||g||, and the loss at PROBE
    (layers + 1) |L|. Looser than the sample (it cannot see where rounding is small), it still holds a 1e-4 relative
    error far above it."""
    if case.x.dtype != np.float32:
        return {}
    whole, depth = _whole(trace), len(plan(case.arch)) + 1
    out = {name: norm(np.asarray(v, dtype=np.float64)) + PROBE * depth * whole for name, v in trace.tensors().items()}
    if trace.loss is not None:  # the forward rounds layer by layer too
        out["loss"] = PROBE * depth * abs(float(trace.loss))
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _kinks(case64: Case, gamma: float, errors: list[np.ndarray | None]) -> dict[str, np.ndarray]:
    """Masks of what a kink within rounding reaches (see the module docstring); {} when no layer has one.

    A layer's input may move by its own rounding (+-gamma of each entry, as its params) and by what the layers
    below carried into it (errors, the float32 run's sample: a leaky_relu's z of 7e-9 that float32 rounding
    carries 5e-9 from below lands on either side). The rows a flip reaches pass down unchanged through layers whose
    rows do not interact; a layer that mixes them (batchnorm) passes them to every row below it."""
    from ..layers import LAYERS

    x = np.asarray(case64.x, dtype=np.float64)
    batch = x.shape[0]
    flips: dict[int, np.ndarray] = {}  # position -> the rows whose piece may flip there
    a = x
    steps = plan(case64.arch)
    for step, carried in zip(steps, errors):
        layer = LAYERS[step.kind]
        local = {name: np.asarray(case64.params[key], dtype=np.float64) for name, key in step.keys.items()}
        if layer.pattern is not None:
            home = layer.pattern(step.config, local, a)
            if home is not None:
                rows = np.zeros(batch, dtype=bool)
                for sign in (1.0, -1.0):
                    moved_x, moved_p = _moved(a, sign * gamma), {k: _moved(v, sign * gamma) for k, v in local.items()}
                    if carried is not None:
                        moved_x = moved_x + sign * carried
                    flipped = np.asarray(layer.pattern(step.config, moved_p, moved_x)) != np.asarray(home)
                    rows |= flipped.reshape(batch, -1).any(axis=1) if flipped.ndim else bool(flipped)
                # XLA on CPU reads a subnormal as 0 (as rounding.ambiguous says): a bias of 1e-323 over an input of
                # 0 is relu's z = 0 there, on the other side of the kink
                if any(_has_subnormal(v) for v in (a, *local.values())):
                    flushed = layer.pattern(step.config, {k: _flushed(v) for k, v in local.items()}, _flushed(a))
                    flipped = np.asarray(flushed) != np.asarray(home)
                    rows |= flipped.reshape(batch, -1).any(axis=1) if flipped.ndim else bool(flipped)
                if rows.any():
                    flips[step.position] = rows
        a = layer.reference(step.config, {k: v[None] for k, v in local.items()}, a[None])[0]
    if not flips:
        return {}
    lowest = max(flips)  # the highest position whose piece may flip: its params and everything below are reached
    masks = {key: np.ones(shape, dtype=bool) for key, shape in case64.arch.param_shapes().items()
             if _position(key) <= lowest}
    rows = np.zeros(batch, dtype=bool)
    for step in reversed(steps[:lowest]):  # rows reached in dL/d(input of each layer), from the top kink down
        rows = rows | flips.get(step.position, False)
        if rows.any() and not LAYERS[step.kind].per_sample:
            rows = np.ones(batch, dtype=bool)
        name = "x" if step.position == 1 else f"da{step.position - 1}"
        masks[name] = _rows(rows, x.shape if step.position == 1 else (batch, *step.in_shape))
    return masks


_TINY64 = float(np.finfo(np.float64).tiny)


def _has_subnormal(v: np.ndarray) -> bool:
    return bool(np.any((v != 0) & (np.abs(v) < _TINY64)))


def _flushed(v: np.ndarray) -> np.ndarray:
    """v with its subnormal entries read as 0 (denormals-are-zero)."""
    return np.where(np.abs(v) < _TINY64, 0.0, v)


def _rows(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(rows.reshape(shape[0], *([1] * (len(shape) - 1))), shape).copy()


def _moved(v: np.ndarray, step: float) -> np.ndarray:
    """v with every entry moved by step of its own size, the sign alternating (roundings are independent)."""
    signs = np.where(np.indices(v.shape).sum(axis=0) % 2, -1.0, 1.0) if v.ndim else 1.0
    return v * (1.0 + step * signs)


def _position(key: str) -> int:
    return int(key.lstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"))
