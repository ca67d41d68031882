"""Directional FD of any layer stack, for the fast check: the derivative of L along k directions over all params
(and x), with fd_directional.DirectionalFD's interface (values, steps, errors(full=...)).

L(theta + s u) runs every layer's reference on 4k copies (+-s, +-s/2 per direction), each with its own params
p + s u: one batched forward a direction instead of one pass per coordinate. Kinks: a copy at +-s whose input to a
layer gives another pattern, or whose output moves the loss's region, makes that direction's error inf (it cannot
be judged). Error: finite_diff's model, with the rounding scale of fd_stack.rounding_scales for a change that
recomputes every layer.
"""

from __future__ import annotations

import numpy as np

from ..spec import Case
from .directions import checked_directions, directional_steps
from .fd_mlp import _float64, _loss_base
from .fd_stack import rounding_scales, stack_layers
from .fd_stack_model import Moved, Stack, differs
from .finite_diff import (
    REL_STEP,
    STEP_FACTORS,
    changes_rounding,
    richardson,
    rounding_error,
)


class StackDirectionalFD:
    """values (k,) and errors() of the directional FD along each direction; errors(full=False) is a lower bound
    (the loss's own rounding terms only), as fd_directional's."""

    def __init__(self, case: Case, directions: dict[str, np.ndarray], *, rel_step: float = REL_STEP) -> None:
        case = _float64(case)
        layers, in_shape = stack_layers(case.arch)
        st = Stack(layers, in_shape, case.params, case.x, getattr(case, "targets", case.y), case.arch.loss)
        shapes = {key: st.p[i][name].shape for i in range(st.n) for name, key in st.keys[i].items()}
        u, k = checked_directions(directions, shapes, {"x": st.x.shape})
        theta = {key: st.p[i][name] for i in range(st.n) for name, key in st.keys[i].items()}
        s = directional_steps({**theta, "x": st.x}, u, rel_step)
        steps = STEP_FACTORS[:, None] * s[None, :]  # (4, k), +-s first
        flat = steps.reshape(-1)  # copy c = (step row) * k + direction

        def moved(value: np.ndarray, key: str) -> np.ndarray:
            if key not in u:
                return np.broadcast_to(value, (len(flat), *value.shape))
            along = np.tile(u[key], (4, *(1,) * value.ndim))
            return value + flat.reshape(-1, *(1,) * value.ndim) * along

        crossed = np.zeros(2 * k, dtype=bool)
        mv = Moved(moved(st.x, "x"))
        for i in range(st.n):
            params = {name: moved(st.p[i][name], key) for name, key in st.keys[i].items()}
            if st.layers[i].pattern is not None:
                head = {name: v[:2 * k] for name, v in params.items()}
                crossed |= differs(st.pattern(i, head, mv.values[:2 * k]), st.home_pattern(i))
            mv = Moved(st.reference(i, params, mv.values))
        change, crossed = st.finish(mv, crossed)
        change = change.reshape(4, k)
        lam = getattr(case.arch, "weight_decay", 0.0)
        if lam:  # lambda/2 ||W + s U||^2 - lambda/2 ||W||^2, exactly
            dot = sum(np.tensordot(u[key], theta[key], axes=theta[key].ndim) for key in u if key.startswith("W"))
            sq = sum((u[key].reshape(k, -1) ** 2).sum(axis=1) for key in u if key.startswith("W"))
            change = change + lam * (steps * dot + 0.5 * steps * steps * sq)
        self.values, trunc = richardson(change, steps)
        self.steps = s
        self._trunc = trunc + changes_rounding(change, s)
        self._crossed = crossed.reshape(2, k).any(axis=0)
        self._st, self._rel_step, self._full = st, rel_step, None

    def errors(self, full: bool = True) -> np.ndarray:
        """(k,) absolute error estimates, inf where +-s crossed a kink; full=False: the lower bound."""
        if not full:
            return self._estimate(float(_loss_base(self._st).sum()))
        if self._full is None:
            self._full = self._estimate(float(rounding_scales(self._st, self._rel_step)[1]))
        return self._full

    def _estimate(self, scale: float) -> np.ndarray:
        return np.where(self._crossed, np.inf, self._trunc + rounding_error(scale, self.steps))
