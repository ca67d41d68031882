"""The finite-difference reference for any layer stack: every coordinate of dL/dparams and dL/dx.

Each family (one param of one layer, or x) runs finite_diff.family_difference on the climbs of
fd_stack_model.Stack: Richardson central differences, a retry at h/32 where +-h crossed a kink or the step
is long for the curvature, and kink=True where even the retry crosses one. The error per coordinate is the
same model as finite_diff's: the truncation estimate, the rounding of the loss changes at their own size
(changes_rounding), and 3 * ROUNDING_SAFETY * eps * S / h, with S the rounding scale of one evaluation
from the perturbed layer up.

S, per layer output m, is sum_j |dL/dout_m,j| M_m,j: M bounds an entry's rounding in units of eps (for dense
and conv the sum of |terms| of each dot product, found by running the layer's reference on |x| and |params|;
else |out| + |in|). dL/dout_m is not trusted to any backward: ||dL/dout_m * M_m||_2 is estimated by FD along
DIRECTIONS random sign vectors (E[(g . r M)^2] = ||g M||^2 over r), and sqrt(size) times it bounds the sum
(Cauchy-Schwarz). The loss's own terms are fd_mlp's (|l_b| / B, and for logits their internal terms).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..ops import weight_decay
from ..spec import Case, Gradients
from .fd_mlp import _float64, _loss_base
from .fd_stack_model import LINEAR, ROW_COUPLED_FNS, Moved, Stack
from .fd_stack_perturb import perturb
from .finite_diff import (
    CHUNK_BYTES,
    PASS_ARRAYS,
    REL_STEP,
    family_difference,
    relative_steps,
    rounding_error,
)

X_COORDS = 2048  # stack_gradients' default: dL/dx by FD up to this many input entries
DIRECTIONS = 4  # random sign vectors per layer output for the rounding scale
SAMPLING_SAFETY = 2.0  # the mean of DIRECTIONS squared projections can fall below ||g M||^2; this covers it
REFINE = 1e-8  # a coordinate whose error estimate exceeds this of |its derivative| is redone at shorter steps
REFINE_STEPS = (1 / 8, 1 / 64)  # Richardson's truncation falls as h^4; rounding grows as 1/h
SLOPE_BOUND = 1.2  # |act'| <= this for every activation in ops (gelu's peaks at ~1.13, at z = sqrt 2)


def stack_layers(arch) -> tuple[tuple[tuple[str, dict], ...], tuple[int, ...]]:
    """(layers, in_shape) of an Arch: its stack, or for the MLP shorthand one dense layer per size."""
    if getattr(arch, "layers", None) is not None:
        return tuple(arch.layers), tuple(arch.in_shape)
    return tuple(("dense", {"n": n, "activation": a}) for n, a in zip(arch.sizes[1:], arch.activations)), (arch.sizes[0],)


def stack_gradients(case: Case, *, rel_step: float = REL_STEP, chunk_bytes: int = CHUNK_BYTES,
                    include_x: bool | None = None) -> Gradients:
    """The "fd" reference for a case whose arch is any stack (the MLP shorthand too, though fd_mlp is faster).

    include_x None: dL/dx too when x has at most X_COORDS entries. Each x coordinate costs a forward of its
    sample through every layer (no channel to cut it to), so a CNN's input (8 x 1 x 28 x 28) would take ~7x
    the time of all its 10k params; above X_COORDS dx is None (meta['x'] says so) and torch/jax check it.
    """
    case = _float64(case)
    layers, in_shape = stack_layers(case.arch)
    targets = getattr(case, "targets", case.y)
    return layered_gradients(layers, in_shape, case.arch.loss, case.params, case.x, targets,
                             getattr(case.arch, "weight_decay", 0.0), rel_step=rel_step, chunk_bytes=chunk_bytes,
                             include_x=case.x.size <= X_COORDS if include_x is None else include_x)


def layered_gradients(layers, in_shape, loss: str, params: dict[str, np.ndarray], x: np.ndarray,
                      targets: np.ndarray, weight_decay_lambda: float = 0.0, *, rel_step: float = REL_STEP,
                      chunk_bytes: int = CHUNK_BYTES, include_x: bool = True) -> Gradients:
    """Every coordinate of dL/dparams (keys 'W1', 'gamma3', ...) and, with include_x, dL/dx, in float64.

    Returns Gradients(source="fd") with error (absolute estimate per coordinate) and kink (True where even
    the retried step changed some layer's pattern or the loss's region). meta: rel_step, the evaluations,
    the coordinates redone with a smaller step, the rounding scale S per entry layer, and the seconds.
    """
    start = time.perf_counter()
    st = Stack(layers, in_shape, params, x, targets, loss)
    above = rounding_scales(st, rel_step)
    grads, error, kink = {}, {}, {}
    counts = [0, 0]

    def family(values: np.ndarray, run, per_copy: int, scale: float, group: int = 0):
        chunk = max(1, int(chunk_bytes // (4 * 8 * PASS_ARRAYS * per_copy)))

        def differences(h, coords):
            g, t, k, used = family_difference(h, lambda idx, s, n: run(coords[idx], s, n), chunk, group)
            counts[0] += 4 * (h.size + int((used != h).sum()))
            counts[1] += int((used != h).sum())
            return g, t, t + rounding_error(scale, used), k, used

        coords = np.arange(values.size)
        h = relative_steps(values.ravel(), rel_step)
        g, t, err, k, used = differences(h, coords)
        for factor in REFINE_STEPS:
            # A step long for the curvature (batchnorm of a channel with a small gamma) leaves a truncation
            # estimate far above the rounding: a shorter step, where it has the smaller estimate, wins. Where
            # rounding at the shorter step would exceed the truncation now, nothing is redone.
            redo = np.flatnonzero((t > REFINE * np.abs(g)) & (t > rounding_error(scale, used * factor)) & ~k)
            if not len(redo):
                break
            g2, t2, err2, k2, used2 = differences(used[redo] * factor, redo)
            better = (err2 < err[redo]) & ~k2
            g[redo[better]], t[redo[better]], err[redo[better]] = g2[better], t2[better], err2[better]
            used[redo[better]] = used2[better]
        return g.reshape(values.shape), err.reshape(values.shape), k.reshape(values.shape)

    for i in range(st.n):
        for name, theta in st.p[i].items():
            def run(idx, s, n_kink, i=i, name=name):
                crossed = np.zeros(n_kink, dtype=bool)
                return st.climb(i + 1, perturb(st, i, name, idx, s, crossed), crossed)

            sliced = st.kinds[i] in LINEAR and name in ("W", "b") and st.configs[i].get("activation") not in ROW_COUPLED_FNS
            key = st.keys[i][name]
            grads[key], error[key], kink[key] = family(theta, run, st.per_copy(i + 1, False, sliced), above[i + 1])
    dx = None
    if not include_x:
        meta_x = f"dL/dx left out: {st.x.size} coordinates (include_x=False, or above {X_COORDS})"
    else:
        meta_x = "dL/dx by FD"
        per = math.prod(st.shapes[0])

        def run_x(idx, s, n_kink):
            b, flat = idx // per, idx % per
            values = st.x.reshape(st.B, per)[b]  # a copy (fancy indexing)
            values[np.arange(len(idx)), flat] += s
            return st.climb(0, Moved(values.reshape(len(idx), 1, *st.shapes[0]), b), np.zeros(n_kink, dtype=bool))

        dx, error["x"], kink["x"] = family(st.x, run_x, st.per_copy(0, True, False), above[1], group=per)
    loss = st.loss
    lam = weight_decay_lambda
    if lam:
        # lambda/2 ||W||^2 is separable and quadratic per coordinate: its central difference lambda w is exact.
        value, decay = weight_decay(lam, {k: np.asarray(params[k], dtype=np.float64) for k in grads})
        loss += value
        grads.update({k: grads[k] + g for k, g in decay.items()})
    meta = {"rel_step": rel_step, "richardson": True, "evaluations": counts[0], "retried": counts[1],
            "rounding_scale": tuple(float(v) for v in above), "x": meta_x, "seconds": time.perf_counter() - start}
    return Gradients(loss, grads, dx, dz=None, da=None, error=error, kink=kink, source="fd", meta=meta)


def magnitude(st: Stack, i: int) -> np.ndarray:
    """M (B, ...): eps * M bounds the rounding of each entry of layer i's output (0-based i)."""
    out = np.abs(st.acts[i + 1])
    kind = st.kinds[i]
    if kind in ("dense", "conv2d"):
        config = {**st.configs[i], "activation": "identity"} if kind == "dense" else st.configs[i]
        absolute = {k: np.abs(v)[None] for k, v in st.p[i].items()}
        terms = np.asarray(st.layers[i].reference(config, absolute, np.abs(st.acts[i])[None]), dtype=np.float64)[0]
        if kind == "dense":  # z rounds at its terms' size, carried through act' (<= SLOPE_BOUND); act(z) rounds at |z|
            return out + SLOPE_BOUND * terms + np.abs(st.reference_as(i, {"activation": "identity"})[0])
        return out + terms
    return out + np.abs(st.acts[i]) if st.acts[i].shape == out.shape else out


def rounding_scales(st: Stack, rel_step: float = REL_STEP) -> np.ndarray:
    """above[e] (n+1,): S for a perturbation that recomputes the outputs of layers e.. (1-based e; x: e = 1)."""
    rng = np.random.default_rng(0)  # a fixed draw: the estimate is part of a deterministic result
    terms = np.zeros(st.n + 2)
    for m in range(1, st.n + 1):
        mag = magnitude(st, m - 1)
        top = float(mag.max(initial=0.0))
        if not top > 0 or not math.isfinite(top):
            continue
        signs = rng.integers(0, 2, size=(DIRECTIONS, *mag.shape)) * 2.0 - 1.0
        u = signs * (mag / top)
        t = rel_step * max(1.0, float(np.abs(st.acts[m]).max(initial=0.0)))
        # a scale, not a value to compare: the plain central difference (+-t) is enough
        values = st.acts[m][None] + np.concatenate([t * u, -t * u])
        change, _ = st.climb(m, Moved(values), np.zeros(0, dtype=bool))
        d = (change[:DIRECTIONS] - change[DIRECTIONS:]) / (2 * t)
        terms[m] = SAMPLING_SAFETY * top * math.sqrt(mag.size * float(np.mean(d * d)))
    base = float(_loss_base(st).sum())
    return np.array([base + terms[max(e, 1):].sum() for e in range(st.n + 1)])
