"""Finite differences of the user's own loss_fn, with the discipline of bpcheck's FD reference.

    fd = user_gradients(loss, case64, with_x=False)    # Gradients, source "fd:loss_fn", error and kink per coordinate

The user's loss is opaque, but the net is not: bpcheck knows the architecture, so its own forward
at theta +- h tells which coordinates' steps cross a kink (a relu's z changing sign, a huber loss
changing branch), whatever code computes the loss. Those are redone at a smaller step and, if
still crossing, masked, exactly as the MLP-aware reference does (finite_diff.family_difference).

Error per coordinate = Richardson's truncation estimate + rounding, where the rounding is measured
from the user's own evaluations rather than assumed: eps * max |L| (a float64 loss), and the noise
the evaluations show. Each coordinate's five values L(theta + k h/2), k = -2..2, have a fourth
difference L'''' h^4 / 16 for a smooth loss (negligible at h = 1e-4) but of the order of the noise
for a loss that rounds coarsely (float32 internals, log(1 - a) at saturation): its largest value
over the smooth coordinates bounds the noise of one evaluation.
"""

from __future__ import annotations

import numpy as np

from .. import engine, ops
from ..ops import LOSS_RULES
from ..references.finite_diff import EPS, family_difference, relative_steps, rounding_error
from ..spec import Case, Gradients

SOURCE = "fd:loss_fn"
# The fourth difference of iid noise of size e per evaluation has spread sqrt(70) e ~ 8.4 e and
# bound 16 e: its largest value over many coordinates divided by this is a fair bound on e.
FOURTH_DIFFERENCE = 4.0
CHUNK = 64  # coordinates per family_difference chunk: the user's loss is called once per evaluation anyway


class NonFiniteLoss(ValueError):
    """The user's loss is not finite at the case (or a step from it): its FD cannot run here."""


def _kinked(arch) -> bool:
    """Has the net a kink: a kinked activation (an MLP), a layer with a pattern (a stack), or a kinked loss?"""
    if LOSS_RULES[arch.loss].kink:
        return True
    if arch.is_mlp:
        return any(ops.rule(a).kink for a in arch.activations)
    return any(step.layer.pattern is not None for step in engine.plan(arch))


def _stack_regions(case: Case, params: dict[str, np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """_regions for a stack: each layer's pattern (Layer.pattern: relu's sign, max-pool's argmax) on its input."""
    out, regions = x, []
    for step in engine.plan(case.arch):
        local = {name: params[key] for name, key in step.keys.items()}
        if step.layer.pattern is not None:  # the pattern takes a leading axis of perturbed copies: one here
            regions.append(np.asarray(step.layer.pattern(step.config, {k: v[None] for k, v in local.items()}, out[None])))
        out, cache = step.layer.forward(step.config, local, out)
    rule = LOSS_RULES[case.arch.loss]
    if rule.kink:
        regions.append(rule.regions(cache[1] if rule.from_logits else out, case.targets))
    return regions


def _regions(case: Case, params: dict[str, np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """Which side of each kink every kinked pre-activation (and a kinked loss) lies on, by bpcheck's forward."""
    arch = case.arch
    if not arch.is_mlp:
        return _stack_regions(case, params, x)
    _, caches = engine.forward(arch, params, x)
    out = [ops.rule(act).regions(c.z) for act, c in zip(arch.activations, caches) if ops.rule(act).kink]
    rule = LOSS_RULES[arch.loss]
    if rule.kink:
        out.append(rule.regions(caches[-1].z if rule.from_logits else caches[-1].a, case.y))
    return out


def user_gradients(loss, case64: Case, *, with_x: bool = False) -> Gradients:
    """FD of loss(params, x) -> float around case64 (float64), for every param (and x when with_x).

    Raises NonFiniteLoss when the loss is not a finite number at the case or at a step from it.
    """
    names = list(case64.arch.param_shapes()) + (["x"] if with_x else [])
    theta = {**case64.params, "x": case64.x}
    sizes = [theta[n].size for n in names]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    flat = np.concatenate([theta[n].ravel() for n in names])
    owner = np.repeat(np.arange(len(names)), sizes)
    base = _value(loss, case64.params, case64.x)
    kinked = _kinked(case64.arch)
    home = _regions(case64, case64.params, case64.x) if kinked else []
    last: dict[int, np.ndarray] = {}     # coordinate -> its last five values (changes), at -h, -h/2, 0, h/2, h
    largest = [abs(base)]

    def moved(i: int, s: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
        name = names[owner[i]]
        arr = theta[name].copy()
        arr.ravel()[i - starts[owner[i]]] += s
        params = {k: (arr if k == name else v) for k, v in case64.params.items()}
        return params, (arr if name == "x" else case64.x)

    def run(idx: np.ndarray, s: np.ndarray, n_kink: int):
        change = np.empty(len(idx))
        crossed = np.zeros(n_kink, dtype=bool)
        for k, (i, step) in enumerate(zip(idx, s)):
            params, x = moved(int(i), float(step))
            change[k] = _value(loss, params, x) - base
            if k < n_kink and home:
                crossed[k] = any((r != h).any() for r, h in zip(_regions(case64, params, x), home))
        largest.append(float(np.abs(change).max(initial=0.0)) + abs(base))
        c = change.reshape(4, -1)  # +h, -h, +h/2, -h/2 per coordinate
        for j, i in enumerate(idx[: len(idx) // 4]):
            last[int(i)] = np.array([c[1, j], c[3, j], 0.0, c[2, j], c[0, j]])
        return change, crossed

    grad, err, kink, h = family_difference(relative_steps(flat), run, CHUNK)
    # The noise of one evaluation, seen in the fourth differences of the coordinates that crossed no kink
    # (a kink's slope jump shows there too); dead coordinates (all five values equal) say nothing.
    smooth = [abs(float(v @ np.array([1.0, -4.0, 6.0, -4.0, 1.0]))) for i, v in last.items() if not kink[i]]
    noise = max(smooth, default=0.0) / FOURTH_DIFFERENCE
    scale = max(max(largest), noise / EPS)
    err = err + rounding_error(scale, h)
    g, e, m = ({n: v[starts[j]:starts[j + 1]].reshape(theta[n].shape) for j, n in enumerate(names)}
               for v in (grad, err, kink))
    dx = g.pop("x", None)  # Gradients keeps dL/dx apart; its error and kink stay under "x", as compare reads them
    meta = {"noise": noise, "scale": scale, "kinks": int(kink.sum())}
    return Gradients(base, g, dx, error=e, kink=m, source=SOURCE, meta=meta)


def _value(loss, params: dict[str, np.ndarray], x: np.ndarray) -> float:
    value = loss(params, x)
    try:
        out = float(np.asarray(value, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        from ..spec import UserFunctionError

        raise UserFunctionError(f"loss_fn returned {type(value).__name__} {np.shape(value)}, not one number: "
                                "return the loss as a float") from None
    if not np.isfinite(out):
        raise NonFiniteLoss(f"loss_fn returned {out} at these params (or a step of 1e-4 from them): its finite "
                            "differences cannot run here (a log of 0 or an overflow; compute log(1 - sigmoid(z)) as "
                            "-softplus(z), or clip)")
    return out
