"""How far a correct producer may be from an exact reference where a pre-activation straddles a kink.

    slack = straddle(case64, caches, fwd, units, dz, gamma, scales)   # {'W1': .., 'x': .., 'dz1': ..}, or {}
    slack = straddle(..., loss_rule=variant)        # against another loss's exact gradient (byo/conventions.py)

torch and jax give exact derivatives: for them a coordinate is at a kink only when some pre-activation
z_l[b, j] sits within its own rounding of the kink (rounding.ambiguous_units: the producer's z and the
reference's may lie on either side, or at exactly 0, where the slope is a convention). Masking every
coordinate such a unit reaches (rounding.ambiguous: the whole column of dW_l, every layer below for that
sample) hides a wrong mask taken from another array in the very layer it sits in. Finite differences need
the mask, as their step h crosses the kink; an exact reference does not: the slope at the unit can only
be one of the two one-sided slopes, so the producer's gradient can only differ from the reference's by

    dz_l[b, j] moves by at most  jump * (|da_l[b, j]| + E_da_l[b, j] + gamma E(da_l))
                                 jump = |right slope - left slope|

which the backward then carries down like any dz, in absolute values (|a_{l-1}|^T, |W_l|, the largest
slope on the window at every unit below, which may straddle too). That bound, per coordinate, is the
allowance the comparison subtracts from |a - b| (compare_tensors' slack), as FD's error estimate is
subtracted for FD. A unit whose one-sided slopes are equal (elu with alpha 1: only its second derivative
jumps) gets none: its slope is the same on both sides. The signed da come from the reference's dz trace,
never from the producer.

Rounding, from the tolerance's own model (tolerance.py): the tolerance's scales E_t follow the reference's
trace, which took the other slope (a relu's dz of exactly 0 carries no rounding there), so the producer's
rounding of what it passed through the unit is added here: gamma E(da_l), the rounding da_l may carry
(error_scales, norm-wise, so at least each entry's); the forward rounding of every value the carry reads,
gamma u_a and gamma u_z (forward_errors: a_{l-1} next to a kink is mostly rounding in float32); and gamma
relative at each step, as the E_t recursion adds one rounding per layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import ops
from ..ops import LOSS_RULES, Loss
from ..references.layered import targets
from ..spec import Case
from .forward import LayerCache
from .rounding import Forward


def straddle(case64: Case, caches: Sequence[LayerCache], fwd: Forward, units: dict[int, np.ndarray],
             dz: Sequence[np.ndarray], gamma: float, scales: dict[str, float],
             loss_rule: Loss | None = None) -> dict[str, np.ndarray]:
    """The allowance per coordinate (keys W1, b1, ..., x and dz1..) where the ambiguous units of each layer
    (units[layer]: bool, shaped like z_l) may take either one-sided slope; {} when no unit has a slope jump.

    dz: the reference's float64 dz trace, of the declared loss or of loss_rule's; fwd, gamma and scales: the
    producer's rounding (forward_errors, tolerance.gamma_for, error_scales, scaled to that reference)."""
    arch = case64.arch
    jumps = {layer: _jump(arch.activations[layer - 1]) for layer in units}
    if not any(jumps.values()):
        return {}
    n = arch.n_layers
    e_da = np.zeros_like(caches[-1].z)   # how far da_l may move, from the units above it
    out: dict[str, np.ndarray] = {}
    for layer in range(n, 0, -1):
        cache, w = caches[layer - 1], case64.params[f"W{layer}"]
        act = ops.rule(arch.activations[layer - 1])
        hit = units.get(layer)
        e_dz = _carry(act, cache, gamma * fwd[layer - 1][0], e_da, hit)
        if hit is not None and jumps[layer]:
            da = _da(case64, caches, dz, layer, loss_rule or LOSS_RULES[arch.loss])
            rounded = gamma * scales.get(f"da{layer}", 0.0)
            e_dz = e_dz + np.where(hit, jumps[layer] * (np.abs(da) + e_da + rounded), 0.0)
        e_dz = e_dz * (1.0 + gamma)
        out[f"dz{layer}"] = e_dz
        a_prev = np.abs(cache.a_prev) + (gamma * fwd[layer - 2][1] if layer > 1 else 0.0)  # x is exact
        out[f"W{layer}"] = (a_prev.T @ e_dz) * (1.0 + gamma)
        out[f"b{layer}"] = e_dz.sum(axis=0) * (1.0 + gamma)
        e_da = (e_dz @ np.abs(w).T) * (1.0 + gamma)
    out["x"] = e_da
    return out


def _jump(act: str) -> float:
    rule = ops.rule(act)
    left, right = rule.slopes or (0.0, 0.0)
    return abs(right - left)


def _da(case64: Case, caches: Sequence[LayerCache], dz: Sequence[np.ndarray], layer: int, rule: Loss) -> np.ndarray:
    """The reference's dL/da_l: dz_{l+1} W_{l+1}^T, or the loss's own backward at the output."""
    if layer < case64.arch.n_layers:
        return np.asarray(dz[layer], dtype=np.float64) @ case64.params[f"W{layer + 1}"].T
    if rule.from_logits:  # the loss reads z_L itself: its dz is the gradient at the output
        return np.asarray(dz[layer - 1], dtype=np.float64)
    return rule.backward(caches[-1].a, targets(case64))


def _carry(act: ops.Activation, cache: LayerCache, u_z: np.ndarray, e_da: np.ndarray,
           hit: np.ndarray | None) -> np.ndarray:
    """A bound on how far dz_l moves when da_l moves by at most e_da: |act'| elementwise, its largest on z +- u_z
    (z's rounding), the larger one-sided slope at an ambiguous unit; softmax's Jacobian a (e - <e, a>) is
    bounded by a (e + <e, a>)."""
    if not e_da.any():
        return np.zeros_like(e_da)
    if act.name == "softmax":
        a = np.abs(cache.a)
        return a * (e_da + (e_da * a).sum(axis=-1, keepdims=True))
    ones = np.ones_like(cache.z)
    with np.errstate(all="ignore"):
        gain = np.maximum.reduce([np.abs(act.backward(z, act.forward(z), ones))
                                  for z in (cache.z - u_z, cache.z + u_z)] + [np.abs(act.backward(cache.z, cache.a, ones))])
    gain = np.where(np.isnan(gain), np.inf, gain)
    if hit is not None and act.slopes is not None:
        gain = np.where(hit, max(abs(s) for s in act.slopes), gain)
    with np.errstate(invalid="ignore"):
        return np.where(e_da > 0, gain * e_da, 0.0)  # inf * 0 is no allowance, not NaN
