"""The size of the terms a stack's backward sums, layer by layer: the floor under the float32 probe's sample.

    floors = terms(case64, trace)    # {tensor or trace name: a bound on the terms' norm}, {} when it cannot tell

The probe (probe.py) samples a float32 producer's rounding with one run, and a symmetric case makes that run exact:
two equal rows of a dense layer's input (a dropout that drops a whole row) cancel in dW to exactly 0, a layernorm
over one feature cancels its dx to exactly 0, a softmax that saturates to p = 1 cancels its backward. A correct
producer that forms the same sums in another order rounds at eps times the size of the terms it adds, not of the
result (Higham's a-priori bound: |fl(sum t) - sum t| <= gamma_n sum |t|), so a reference of exactly 0 next to an
engine's 1e-17 is no bug. This module bounds those terms, norm-wise and to first order, from the reference's own
forward values (Gradients.meta['forward']) and dout trace, never from the producer under test:

  dense       dz = f'(z) da, and its terms T_dz = || |f'(z)| |da| || plus how far f' moves when z carries its
              rounding u_z = |a| |W| + |b| (rounding._act_sensitivity: elu' = e^z at z = -300 moves by |z| eps);
              softmax: |p| (|g| + sum |g p|); a from-logits loss fused in: rounding._loss_terms.
              dW: ||a|| T_dz, db: sqrt(B) T_dz, dx: ||W|| T_dz (||A B|| <= ||A|| ||B||, term by term).
  activation  as dense's f', on the layer's input.
  layernorm,  dx = g/s (dy - mean dy - xhat mean(xhat dy)): each of the three terms, with |xhat| taken as
  batchnorm   (|x| + |mean|) / s, the rounding x - mean leaves in xhat (torch's kernel forms mean * sum(dy) -
              sum(dy x), which cancels at that size; 0 over a group of one value, where mean is x exactly);
              dgamma: sum (|x| + |mean|) / s |dy|, dbeta: sum |dy|.
  conv2d      dW: sqrt(kh kw) ||x|| ||dy||, dx: sqrt(kh kw) ||W|| ||dy||, db: sqrt(N OH OW) ||dy||.
  pools, dropout, flatten: dx: ||dy|| times the most any dy entry is scaled and added (kernel area; 1 / (1 - p)).

What rounding the layers above left in dy is carried down: each layer sees |dy| + C / sqrt(n), where C, the terms
of its dL/d(output), spreads evenly over its n coordinates. The result is in units of the producer's eps, like every
scale E_t (tolerance.py multiplies by gamma = safety eps sqrt(width)).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import ops
from ..ops import LOSS_RULES
from ..references.layered import fused_input, plan, targets
from ..spec import Case, Gradients
from .forward import LayerCache
from .loss_value import loss_scale
from .metrics import norm
from .rounding import _act_sensitivity, _loss_terms, _norm_product


def terms(case64: Case, trace: Gradients | None) -> dict[str, float]:
    """{name: bound} for every param, 'x' and 'da{i}' of a stack, from trace's forward values and dout; {} when
    trace lacks either (then the probe's sample and the whole-gradient floor stand alone)."""
    values = None if trace is None else trace.meta.get("forward")
    steps = plan(case64.arch)
    dout = None if trace is None else trace.dout
    if not values or len(values) != len(steps) or dout is None or len(dout) != len(steps):
        return {}
    out: dict[str, float] = {"loss": _loss(case64, values)}
    inputs = [np.asarray(case64.x, dtype=np.float64)] + [np.asarray(v[1], dtype=np.float64) for v in values[:-1]]
    carried = 0.0
    with np.errstate(all="ignore"):
        for k in range(len(steps) - 1, -1, -1):
            step, x = steps[k], inputs[k]
            local = {name: np.asarray(case64.params[key], dtype=np.float64) for name, key in step.keys.items()}
            z = values[k][0]
            if dout[k] is None:  # the last layer, fused with a from-logits loss: its dz (or dx) is the loss's
                found = _fused(case64, step, x, local, None if z is None else np.asarray(z, dtype=np.float64))
            else:
                dy = np.abs(np.asarray(dout[k], dtype=np.float64))
                dy = dy + carried / math.sqrt(max(dy.size, 1))
                found = _layer(step, local, x, None if z is None else np.asarray(z, dtype=np.float64),
                               np.asarray(values[k][1], dtype=np.float64), dy)
            for name, value in found.items():
                key = "x" if name == "x" else step.keys[name]
                out[key] = value if math.isfinite(value) else math.inf
            carried = out["x"]
            if k > 0:
                out[f"da{k}"] = carried
                del out["x"]
    return out


def _loss(case64: Case, values: Any) -> float:
    """The loss's own arithmetic on its terms (loss_value.loss_scale with the output taken as exact: what the layers
    below carry into it is the probe's to sample): bce's log(1 + e^-z) rounds at an ulp of 1 however small it is."""
    arch = case64.arch
    if LOSS_RULES[arch.loss].from_logits and fused_input(arch):
        last = values[-1][0]
        out = last if last is not None else (values[-2][1] if len(values) > 1 else case64.x)
    else:
        out = values[-1][1]
    out = np.asarray(out, dtype=np.float64)
    return loss_scale(arch.loss, out, np.zeros_like(out), targets(case64), case64.params, arch.weight_decay)


def _fused(case64: Case, step: Any, x: np.ndarray, local: dict[str, np.ndarray], z: np.ndarray | None) -> dict[str, float]:
    """The last layer when a from-logits loss is fused with its activation: dz is the loss's, softmax(z) - y."""
    y = targets(case64)
    logits = z if step.kind == "dense" else x
    rule = LOSS_RULES[case64.arch.loss]
    t_dz = norm(_loss_terms(case64.arch.loss, logits, y, rule.backward(logits, y)))
    if step.kind == "dense":
        return _affine(x, local, t_dz)
    return {"x": t_dz}


def _layer(step: Any, local: dict[str, np.ndarray], x: np.ndarray, z: np.ndarray | None, y: np.ndarray,
           dy: np.ndarray) -> dict[str, float]:
    """The terms of one layer's backward: its params' (local names) and 'x' (its input's)."""
    if step.kind == "dense":
        z = x @ local["W"] + local["b"] if z is None else z
        u_z = _norm_product(np.abs(x), local["W"]) + np.abs(local["b"])
        return _affine(x, local, _act_terms(step.act, z, y, dy, u_z))
    if step.kind == "activation":
        return {"x": _act_terms(step.config["fn"], x, y, dy, np.abs(x))}
    if step.kind in ("layernorm", "batchnorm"):
        return _norm_terms(step.kind, step.config, local, x, dy)
    if step.kind == "conv2d":
        area = math.sqrt(float(np.prod(local["W"].shape[2:])))
        return {"W": area * norm(x) * norm(dy), "b": math.sqrt(dy.size / dy.shape[1]) * norm(dy),
                "x": area * norm(local["W"]) * norm(dy)}
    gain = {"dropout": 1.0 / (1.0 - float(step.config.get("p", 0.0))), "flatten": 1.0}.get(step.kind)
    if gain is None:  # a pool: each dy entry is scaled by at most 1 and added into at most kernel-area places
        kernel = step.config.get("kernel", 1)
        gain = float(np.prod(kernel if isinstance(kernel, (list, tuple)) else (kernel, kernel)))
    return {"x": gain * norm(dy)}


def _act_terms(act: str, z: np.ndarray, a: np.ndarray, dy: np.ndarray, u_z: np.ndarray) -> float:
    """|| terms of act's backward on |dy| || plus how far it moves when z and a carry their rounding."""
    rule = ops.rule(act)
    if act == "softmax":
        own = np.abs(a) * (dy + (dy * np.abs(a)).sum(axis=-1, keepdims=True))
    else:
        own = np.abs(rule.backward(z, a, dy))
    moved = _act_sensitivity(act, LayerCache(None, z, a), dy, u_z, np.abs(a))
    return norm(own) + norm(np.where(np.isfinite(moved), moved, np.inf))


def _affine(x: np.ndarray, local: dict[str, np.ndarray], t_dz: float) -> dict[str, float]:
    return {"W": norm(x) * t_dz, "b": math.sqrt(x.shape[0]) * t_dz, "x": norm(local["W"]) * t_dz}


def _norm_terms(kind: str, config: dict[str, Any], local: dict[str, np.ndarray], x: np.ndarray,
                dy: np.ndarray) -> dict[str, float]:
    """layernorm normalises each sample over its own dims, batchnorm each channel over the batch (and space)."""
    axes = tuple(range(1, x.ndim)) if kind == "layernorm" else (0, *range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    sigma = np.sqrt(((x - mean) ** 2).mean(axis=axes, keepdims=True) + float(config.get("eps", 1e-5)))
    gamma = local["gamma"] if kind == "layernorm" else local["gamma"].reshape(-1, *([1] * (x.ndim - 2)))
    dxh = np.abs(gamma) * dy  # the gradient into xhat, whose terms the three parts of dx add
    group = int(np.prod([x.shape[a] for a in axes]))
    # x - mean rounds at eps (|x| + |mean|), so xhat at that over sigma; over a group of one, mean is x and xhat 0
    xhat = (np.abs(x) + np.abs(mean)) / sigma if group > 1 else np.zeros_like(x)
    dx = (dxh + dxh.mean(axis=axes, keepdims=True) + xhat * (xhat * dxh).mean(axis=axes, keepdims=True)) / sigma
    params_axes = (0,) if kind == "layernorm" else axes
    return {"x": norm(dx), "gamma": norm((xhat * dy).sum(axis=params_axes)), "beta": norm(dy.sum(axis=params_axes))}
