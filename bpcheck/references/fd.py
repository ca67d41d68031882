"""The "fd" reference: which finite-difference module handles a case's arch.

A dense MLP goes to fd_mlp / fd_directional (their rank-1 and one-pass paths), any other stack to fd_stack /
fd_stack_directional (the layers' reference forwards). All of them build on finite_diff's error model, which
imports none of them: the imports stay one-way (finite_diff <- fd_* <- fd).
"""

from __future__ import annotations

import numpy as np

from ..spec import Case, Gradients
from .finite_diff import REL_STEP


def gradients(case: Case) -> Gradients:
    """The "fd" reference: Case -> Gradients in float64, with error and kink per coordinate: a dense MLP by
    fd_mlp (its rank-1 and one-pass paths), any other stack by fd_stack (the layers' reference forwards)."""
    if getattr(case.arch, "is_mlp", True):
        from .fd_mlp import mlp_gradients

        return mlp_gradients(case)
    from .fd_stack import stack_gradients

    return stack_gradients(case)


def directional(case: Case, directions: dict[str, np.ndarray], *, rel_step: float = REL_STEP):
    """(values, errors), each (k,): Richardson FD of L along each unit direction; see fd_directional.directional."""
    if not getattr(case.arch, "is_mlp", True):
        from .fd_stack_directional import StackDirectionalFD

        fd = StackDirectionalFD(case, directions, rel_step=rel_step)
        return fd.values, fd.errors()
    from .fd_directional import directional as _directional

    return _directional(case, directions, rel_step=rel_step)
