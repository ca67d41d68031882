"""Parameter layouts: how a user's engine stores W, b and batches, and the conversions to bpcheck's.

bpcheck's own layout ("row"): row-vector batches, z_l = a_{l-1} @ W_l + b_l with x (batch, n_in),
W_l (n_{l-1}, n_l), b_l (n_l,). The column convention of many textbooks: z_l = W_l a_{l-1} + b_l
with samples as columns, x (n_in, batch), W_l (n_l, n_{l-1}), b_l (n_l, 1). Any other layout is a
pair of functions:

    to_user(arch, params, x, y) -> (user_params, user_x, user_y)    # bpcheck's arrays -> the user's
    from_user(arch, user_grads) -> grads                             # the user's gradient -> bpcheck's

A user's loss_fn is called in the user's layout too, so finite differences of it differentiate the
user's own convention whatever the layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..spec import Arch, Params, UsageError

ToUser = Callable[[Arch, Params, np.ndarray, np.ndarray], tuple[Any, Any, Any]]
FromUser = Callable[[Arch, Any], dict[str, Any]]


@dataclass(frozen=True)
class Layout:
    """A named pair of conversions; shapes(arch), when known, gives the user's gradient shapes so that a
    wrong shape is reported in the user's own terms (else it is checked after from_user)."""

    name: str
    to_user: ToUser
    from_user: FromUser
    shapes: Callable[[Arch], dict[str, tuple[int, ...]]] | None = None
    hint: str = ""  # how W and b are shaped, for error messages


def _row_to_user(arch: Arch, params: Params, x: np.ndarray, y: np.ndarray):
    # Writable copies: the user's function gets its own arrays, and the originals stay to compare against.
    return {k: np.array(v) for k, v in params.items()}, np.array(x), np.array(y)


def _row_from_user(arch: Arch, grads: dict[str, Any]) -> dict[str, Any]:
    return dict(grads)


def _dense_only(arch: Arch) -> None:
    if not arch.is_mlp:
        raise UsageError(f"the column layout transposes a dense MLP's W_l and x, but {arch.label()} is a stack of other "
                         "layers: use the row layout (bpcheck's own: batch first, params as arch.param_shapes())")


def _column_shapes(arch: Arch) -> dict[str, tuple[int, ...]]:
    _dense_only(arch)
    return {k: (s[1], s[0]) if k.startswith("W") else (s[0], 1) for k, s in arch.param_shapes().items()}


def _column_to_user(arch: Arch, params: Params, x: np.ndarray, y: np.ndarray):
    _dense_only(arch)
    user = {k: np.array(v.T) if k.startswith("W") else np.array(v.reshape(-1, 1)) for k, v in params.items()}
    return user, np.array(x.T), np.array(y.T)


def _column_from_user(arch: Arch, grads: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in grads.items():
        v = np.asarray(v)
        out[k] = v.T if k.startswith("W") or k == "x" else v.reshape(-1)
    return out


ROW = Layout("row", _row_to_user, _row_from_user, lambda arch: arch.param_shapes(),
             "row layout: W_l is (n_{l-1}, n_l), b_l is (n_l,), x is (batch, n_in)")
COLUMN = Layout("column", _column_to_user, _column_from_user, _column_shapes,
                "column layout: W_l is (n_l, n_{l-1}), b_l is (n_l, 1), x is (n_in, batch)")
LAYOUTS: dict[str, Layout] = {"row": ROW, "column": COLUMN}


def custom_layout(to_user: ToUser, from_user: FromUser, name: str = "custom") -> Layout:
    """A Layout from a user's pair of conversions (see the module docstring for their signatures)."""
    if not (callable(to_user) and callable(from_user)):
        raise UsageError(f"layout=({to_user!r}, {from_user!r}) is not a pair of functions: give "
                         "(to_user(arch, params, x, y), from_user(arch, grads)), or 'row' or 'column'")
    return Layout(name, to_user, from_user, None, f"{name} layout")


def resolve_layout(layout: Layout | str | tuple | None) -> Layout:
    """None or 'row' -> ROW, 'column' -> COLUMN, a Layout as is, (to_user, from_user) -> custom_layout."""
    if layout is None:
        return ROW
    if isinstance(layout, Layout):
        return layout
    if isinstance(layout, str):
        if layout not in LAYOUTS:
            from ..spec import suggest

            raise UsageError(f"layout {layout!r}{suggest(layout, tuple(LAYOUTS))} is unknown: use 'row', 'column' "
                             "or a pair (to_user, from_user)")
        return LAYOUTS[layout]
    if isinstance(layout, tuple) and len(layout) == 2:
        return custom_layout(*layout)
    raise UsageError(f"layout={layout!r} is not a layout: use 'row', 'column' or a pair (to_user, from_user)")
