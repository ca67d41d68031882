"""The rounding model: how large an error a correct producer may make, and where a kink makes it moot.

Everything is in units of eps (the producer's dtype's), computed in float64 on the case:

forward_errors   u_z, u_a per layer: the rounding error z_l and a_l carry, root-sum-square
                 (roundings are independent, so they add in quadrature, not in magnitude).
error_scales     E_t per tensor: the error the backward pass may accumulate, norm-wise, from the
                 output down (see tolerance.py for the recursion), from a reference's dz trace.
ambiguous        where |z| is within rounding of a kink (|z| <= gamma u_z), a correct producer
                 may land on either side, so its slope there, and every coordinate downstream of
                 it, is not comparable to FD's: those coordinates are left out, as FD's kink mask
                 is. Against torch and jax the same units (ambiguous_units) bound the difference
                 instead (straddle.py).
                 That includes a z that cancels to exactly 0 (another order, or an FMA, gives an ulp
                 either side); a structural zero, every term 0 (u_z = 0), stays in: every
                 implementation computes exactly 0 there, and the declared subgradient (or a
                 CONVENTION) applies.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from .. import ops
from ..ops import GELU_C, GELU_K, LOSS_RULES, _count, normal_cdf, sigmoid, softmax
from ..references.layered import targets
from ..spec import Case
from .forward import LayerCache
from .metrics import norm

_DELTA = 2.0**-20  # relative step of the first-order sensitivities; only their magnitude matters
_EPS32 = float(np.finfo(np.float32).eps)
Forward = list[tuple[np.ndarray, np.ndarray]]


@functools.lru_cache(maxsize=64)
def _signs(shape: tuple[int, ...]) -> np.ndarray:
    """A +-1 checkerboard: roundings are independent, so neighbours must not move together (softmax
    ignores a common shift of its inputs, and would hide a same-sign perturbation). Cached, read-only:
    np.indices costs more than the rest of a small case's rounding model, and the shapes repeat."""
    signs = np.where(np.indices(shape).sum(axis=0) % 2, -1.0, 1.0)
    signs.flags.writeable = False
    return signs


@functools.cache
def _tiny(dtype: str) -> float:
    return np.finfo(dtype).tiny


def _rule_rounding(fn, fine: np.ndarray, *args: np.ndarray) -> np.ndarray:
    """|fn in float32 - fn in float64| / eps32, elementwise: a rule's own rounding in units of eps.

    Run once in a coarser precision, a rule shows the rounding of its inputs and of every step inside
    it, such as the cancellation in gelu's 1 + tanh(.) for negative z, which no perturbation of its
    inputs reveals. Where float32 overflows or underflows to nothing, the entry is 0. fine is
    fn(*args) in float64, which every caller has at hand (the forward cache's a, the backward's result).
    """
    with np.errstate(all="ignore"):
        coarse = fn(*(a.astype(np.float32) for a in args)).astype(np.float64)
        diff = np.abs(coarse - fine) / _EPS32
    return np.where(np.isfinite(diff), diff, 0.0)


def _rms(m: np.ndarray) -> float:
    """The rms singular value, ||m||_F / sqrt(min(shape)): the typical gain of a random direction."""
    return norm(m) / math.sqrt(max(1, min(m.shape)))


def _norm_product(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """sqrt(a^2 @ w^2) for a >= 0, scaled by max a and each column's max |w| so that no square underflows or
    overflows: a weight of 1e-166 squares to 0, which once made a z within rounding of a relu's kink look exact."""
    ma, mw = float(a.max(initial=0.0)), np.abs(w).max(axis=0, initial=0.0)
    if ma == 0.0 or not np.isfinite(ma):
        return np.sqrt(a**2 @ w**2)
    safe = np.where(mw > 0, mw, 1.0)
    return (ma * mw) * np.sqrt((a / ma) ** 2 @ (w / safe) ** 2)


def forward_errors(case64: Case, caches: Sequence[LayerCache]) -> Forward:
    """(u_z, u_a) per layer, shaped like z_l: the rounding error of z_l and a_l in units of eps.

    u_z = sqrt((a_{l-1}^2 + u_a_{l-1}^2) @ W_l^2) + |b_l| (each product rounds, and so does its input;
    computed without squares underflowing, _norm_product);
    u_a = |act(z + u_z s) - act(z)| + max(|a|, act's own rounding) (to first order, by a finite
    difference of ops.RULES, and _rule_rounding; for gelu_tanh at least 0.5 |z| |t|, the rounding of 1 + t,
    which float32's probe cannot show once its t is -1 and its gelu 0, from z ~ -4.5 on; for gelu the same
    with t = erf(z / sqrt 2), since torch computes 0.5 z (1 + erf(z / sqrt 2)) however accurate ops' Phi is).
    x is exact, so u_a_0 = 0.
    """
    u_a = None
    out = []
    for layer, (act, cache) in enumerate(zip(case64.arch.activations, caches), start=1):
        w, b = case64.params[f"W{layer}"], case64.params[f"b{layer}"]
        carried = np.abs(cache.a_prev) if u_a is None else np.hypot(cache.a_prev, u_a)  # x is exact: u_a_0 = 0
        u_z = _norm_product(carried, w) + np.abs(b)
        step, forward = _DELTA * u_z * _signs(u_z.shape), ops.rule(act).forward
        # Both directions: on the flat side of a kink (relu's z < 0) a one-sided step sees no error, though
        # a z within rounding of the kink may land on the other side (so a carries up to u_z, not 0).
        moved = np.maximum(np.abs(forward(cache.z + step) - cache.a), np.abs(forward(cache.z - step) - cache.a))
        own = _rule_rounding(forward, cache.a, cache.z)
        if act in ("gelu", "gelu_tanh"):  # 0.5 z (1 + t): 1 + t carries eps |t| however small (_gelu_cancellation)
            own = np.maximum(own, 0.5 * np.abs(cache.z) * np.abs(_gelu_t(act, cache.z)))
        u_a = moved / _DELTA + np.maximum(np.abs(cache.a), own)
        out.append((u_z, u_a))
    return out


def error_scales(case64: Case, caches: Sequence[LayerCache], dz: tuple[np.ndarray, ...],
                 fwd: Forward) -> dict[str, float]:
    """E_t for every tensor (W1, b1, ..., x) and trace (dz1.., da1..), from the float64 dz trace."""
    arch, params, y = case64.arch, case64.params, targets(case64)
    rule = LOSS_RULES[arch.loss]
    n = arch.n_layers
    logits = rule.from_logits
    out = caches[-1].z if logits else caches[-1].a
    u_out = fwd[-1][0] if logits else fwd[-1][1]
    g = rule.backward(out, y)
    e = norm(np.maximum(_loss_terms(arch.loss, out, y, g), _rule_rounding(rule.backward, g, out, y))
             + np.abs(rule.backward(out + _DELTA * u_out * _signs(out.shape), y) - g) / _DELTA)
    scales: dict[str, float] = {} if logits else {f"da{n}": e}  # the output's dL/da, which the loss backward rounds
    for layer in range(n, 0, -1):
        cache, w, d = caches[layer - 1], params[f"W{layer}"], np.asarray(dz[layer - 1], dtype=np.float64)
        act = arch.activations[layer - 1]
        abs_d = np.abs(d)
        if not (layer == n and logits):
            da = g if layer == n else np.asarray(dz[layer], dtype=np.float64) @ params[f"W{layer + 1}"].T
            if layer < n:
                scales[f"da{layer}"] = e
            norm_d = norm(d)
            e = e * _gain(act, cache, norm_d, norm(da)) + norm(_act_sensitivity(act, cache, da, *fwd[layer - 1])) + norm_d
        scales[f"dz{layer}"] = e
        # dW = a^T dz: the error of dz, the terms of each sum, and the forward error a carries (none for x,
        # which is exact: its term would be 0, or non-finite only where dz is, when every E_t is inf anyway).
        scales[f"W{layer}"] = _rms(cache.a_prev) * e + norm(np.abs(cache.a_prev).T @ abs_d)
        if layer > 1:
            scales[f"W{layer}"] += norm(fwd[layer - 2][1].T @ abs_d)
        if arch.weight_decay:  # the L2 term's lambda W, rounded once in the product and once in the sum
            scales[f"W{layer}"] += 2.0 * arch.weight_decay * norm(w)
        scales[f"b{layer}"] = math.sqrt(case64.batch) * e + norm(abs_d.sum(axis=0))
        e = _rms(w) * e + norm(abs_d @ np.abs(w).T)
    scales["x"] = e
    return {k: (v if math.isfinite(v) else math.inf) for k, v in scales.items()}


def _loss_terms(loss: str, out: np.ndarray, y: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The size of the terms the loss backward rounds, per eps: at least |g|, the rounding of the result.

    A loss fused with its activation subtracts y from that activation's output, which it computes inside
    the backward (so forward_errors never sees its rounding): cross_entropy's softmax(z) sum(y) - y and
    bce's sigmoid(z) - y. The output carries eps times its size, so where it nearly equals y the
    difference carries eps times the terms, however small the difference is: relative to the result, the
    error grows without bound. _rule_rounding should show that, but it is one sample of float32's
    rounding and can be lucky (0.06 eps32 on a softmax of 0.5 + 2.4e-5, where float64's own error is
    ~0.5 eps64: a false REFERENCE, torch vs jax in dx). Bound: (|softmax(z) sum(y)| + |y|) / B and
    (|sigmoid(z)| + |y|) / (B n_out). mse and huber subtract y from a_L, whose rounding u_a >= |a_L| is
    already in the sensitivity term of error_scales.
    """
    if loss == "cross_entropy":
        return (np.abs(softmax(out) * y.sum(axis=-1, keepdims=True)) + np.abs(y)) / out.shape[-2]
    if loss == "bce":
        return (sigmoid(out) + np.abs(y)) / _count(out)
    return np.abs(g)


def _gain(act: str, cache: LayerCache, norm_dz: float, norm_da: float) -> float:
    """How an error in dL/da_l passes to dL/dz_l: the gain of act's backward on a +-1 direction (the
    rms of act' when elementwise; softmax's Jacobian kills the all-ones direction, so ones would not
    do), or ||dz|| / ||da||, the larger. The norms come from the caller, which needs ||dz|| too."""
    s = _signs(cache.z.shape)
    # norm(s) is sqrt(s.size) exactly: a sum of ones, exact in any order.
    return max(norm(ops.rule(act).backward(cache.z, cache.a, s)) / math.sqrt(s.size), norm_dz / norm_da if norm_da > 0 else 0.0)


def _act_sensitivity(act: str, cache: LayerCache, da: np.ndarray, u_z: np.ndarray, u_a: np.ndarray) -> np.ndarray:
    """How far act's backward moves when its cached z and a carry their rounding (per eps).

    sigmoid's backward a (1 - a) loses its digits when a rounds toward 1: the term in a shows it;
    gelu's 1 + tanh(.) cancels for negative z: the rule's own rounding shows that. A kinked rule
    reads z only through its sign, which is the kink masks' business, not rounding's.
    """
    rule = ops.rule(act)
    base = rule.backward(cache.z, cache.a, da)
    s = _signs(cache.z.shape)
    moved = np.abs(rule.backward(cache.z, cache.a + _DELTA * u_a * s, da) - base)
    if not rule.kink:
        moved = moved + np.abs(rule.backward(cache.z + _DELTA * u_z * s, cache.a, da) - base)
        # z's sign decides a kinked rule, and float32 may round a tiny z to 0: no own-rounding term there.
        moved = moved + _rule_rounding(rule.backward, base, cache.z, cache.a, da) * _DELTA
        if act in ("gelu", "gelu_tanh"):
            moved = moved + _gelu_cancellation(act, cache.z, da) * _DELTA
    return moved / _DELTA


def _gelu_cancellation(act: str, z: np.ndarray, da: np.ndarray) -> np.ndarray:
    """The rounding of gelu_tanh's backward in 1 + t and 1 - t^2 (t = tanh(u), u = C (z + K z^3)), per eps;
    for gelu, of 1 + t in Phi = (1 + t) / 2, t = erf(z / sqrt 2), as torch computes it: |da| |t| / 2.

    The computed t carries eps |t|, so 1 + t carries eps |t| however small 1 + t is: relative to the
    result, the error grows without bound as z goes negative. float32's t reaches -1 exactly near
    z = -4.5, float64's only near z = -7.5, so between them _rule_rounding sees float32 lose every digit
    and reports |result| / eps32, far below float64's own error (a false REFERENCE against jax, whose
    tanh rounds differently, on two gelu outputs in 10,000 sweep cases). Bound: |da| |t| (1/2 + |z| C
    (1 + 3 K z^2)), the two terms' coefficients times the error of 1 + t (1 - t^2 = (1 - t)(1 + t)).
    """
    t = _gelu_t(act, z)
    if act == "gelu":  # Phi + z phi: phi is an exp, with no cancellation of its own
        return 0.5 * np.abs(da) * np.abs(t)
    return np.abs(da) * np.abs(t) * (0.5 + np.abs(z) * GELU_C * (1.0 + 3.0 * GELU_K * z * z))


def _gelu_t(act: str, z: np.ndarray) -> np.ndarray:
    if act == "gelu":
        return 2.0 * normal_cdf(z) - 1.0  # erf(z / sqrt 2)
    return np.tanh(GELU_C * (z + GELU_K * z**3))


def ambiguous_units(case64: Case, caches: Sequence[LayerCache], fwd: Forward, gamma: float,
                    dtype: str = "float64") -> dict[int, np.ndarray]:
    """layer -> bool mask, shaped like z_l, of the kinked units within rounding of the kink (only layers with one).

    A unit (b, j) of layer l is ambiguous when |z_l[b, j]| <= gamma * u_z and u_z > 0, or z is subnormal
    in dtype (flushed to 0 by some implementations).
    """
    hit: dict[int, np.ndarray] = {}  # most cases have none
    for layer, (act, cache) in enumerate(zip(case64.arch.activations, caches), start=1):
        if ops.rule(act).kink:
            z = cache.z
            u_z = fwd[layer - 1][0]
            abs_z = np.abs(z)
            # A subnormal z is 0 to an implementation that flushes denormals (XLA on CPU does).
            subnormal = (z != 0) & (abs_z < _tiny(dtype))
            mask = ((u_z > 0) & (abs_z <= gamma * u_z)) | subnormal
            if mask.any():
                hit[layer] = mask
    return hit


def ambiguous(case64: Case, caches: Sequence[LayerCache], hit: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
    """Bool masks (keys W1, b1, ..., x, dz1..) of coordinates downstream of the kinked units within rounding
    of 0 (hit: ambiguous_units). Empty when none.

    The unit's slope reaches dz_l[b, j], hence dW_l[:, j] and db_l[j]; through the dense W_l it reaches
    every unit of sample b in the layers below, so every column of their dW and db and the row dx[b].
    """
    arch = case64.arch
    if not hit:
        return {}
    masks: dict[str, np.ndarray] = {}
    rows = np.zeros(case64.batch, dtype=bool)  # samples contaminated from above
    for layer in range(arch.n_layers, 0, -1):
        dz = (hit[layer] if layer in hit else np.zeros(caches[layer - 1].z.shape, dtype=bool)) | rows[:, None]
        masks[f"dz{layer}"] = dz
        masks[f"W{layer}"] = np.broadcast_to(dz.any(axis=0), case64.params[f"W{layer}"].shape).copy()
        masks[f"b{layer}"] = dz.any(axis=0)
        rows = dz.any(axis=1)
    masks["x"] = np.broadcast_to(rows[:, None], case64.x.shape).copy()
    return masks
