"""A gradient too large for its dtype: the case cannot be compared, and that is what its verdicts say.

    overflows(case, {"torch": grads, ...})   -> {"torch": "not finite in float64: torch's loss is inf (...)"}

The references run in float64 on the case's float64 copy, so their values show whether the true gradient fits the
case's dtype: an entry that is not finite (float64 itself overflowed), or one beyond the largest float32 of a
float32 case. Such a case says nothing about the gradient under test, so check_case labels its verdicts ERROR with
this reason, never ENGINE or REFERENCE. The producer's own values are not read: an inf where the reference's
gradient fits the dtype is the producer's bug (ENGINE).
"""

from __future__ import annotations

import numpy as np

from ..spec import Case, Gradients


def overflows(case: Case, ran: dict[str, Gradients]) -> dict[str, str]:
    """reference -> why its gradient cannot be compared in the case's dtype, for the references that overflow.

    The loss must be finite in float64 (finite differences are made of it); in a narrower dtype only the
    gradient entries must fit (the loss may overflow there, the gradient is what is compared)."""
    dtype = np.dtype(case.x.dtype)
    biggest = float(np.finfo(dtype).max)
    out: dict[str, str] = {}
    for name, grads in ran.items():
        values = {"loss": grads.loss, **{f"d{key}": v for key, v in grads.tensors().items()}}
        for key, value in values.items():
            value = np.asarray(value, dtype=np.float64)
            if not np.isfinite(value).all():
                at = np.unravel_index(int(np.argmin(np.isfinite(value))), value.shape)
                shown = f"loss is {value[at]}" if key == "loss" else f"{key} has {value[at]} at {tuple(map(int, at))}"
                out[name] = f"not finite in float64: {name}'s {shown} (it overflows float64): scale x, y or the parameters down"
                break
            if dtype != np.float64 and key != "loss" and value.size and np.abs(value).max() > biggest:
                out[name] = (f"not finite in {dtype.name}: {name}'s {key} reaches {np.abs(value).max():.3g}, beyond "
                             f"{dtype.name}'s largest {biggest:.3g}: check the case in float64, or scale it down")
                break
    return out
