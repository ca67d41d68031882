"""The loss value, compared like any tensor: a forward bug shows in the loss even where no gradient shows it.

    item = loss_item(produced, reference, tol, scale, dtype)   # compare_tensors' item named 'loss', or None
    E = loss_scale("mse", out, u_out, y, params, weight_decay) # its rounding scale, in units of eps

The loss is a 0-d tensor named 'loss' (TensorMetrics 'loss'), held to the same bound as every gradient:
rtol * max(|a|, |b|) + gamma * E_loss + atol. E_loss bounds, to first order, what a correct producer in its
dtype may get wrong (see loss_scale). A producer that gives no loss (Gradients.loss None: a user's gradient
function that does not return one) has none compared; so has a case whose float64 loss does not fit the
producer's dtype (the loss may overflow float32 where the gradient fits: compare/overflow.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..ops import LOSS_RULES
from ..results import Tolerance
from ..spec import Gradients


def loss_item(produced: Gradients, reference: Gradients, tol: Tolerance, scale: float, dtype: str) -> tuple | None:
    """compare_tensors' item (name, a, b, tol, scale, err, kink) for the loss value, or None when it is not compared."""
    mine, theirs = getattr(produced, "loss", None), getattr(reference, "loss", None)
    if mine is None or theirs is None:
        return None
    theirs = float(theirs)
    if not math.isfinite(theirs) or abs(theirs) > float(np.finfo(dtype).max):
        return None  # the true loss does not fit the producer's dtype: nothing to hold it to
    try:
        mine = float(mine)
    except (TypeError, ValueError):
        mine = math.nan  # junk where a number belongs: infinitely wrong
    return ("loss", np.array(mine), np.array(theirs), tol, scale, None, None)


def loss_scale(loss: str, out: np.ndarray, u_out: np.ndarray, y: np.ndarray, params: dict[str, Any],
               weight_decay: float = 0.0) -> float:
    """E_loss: how far a correct producer's loss may move, per eps of its dtype, computed in float64.

    Three parts, each an upper bound (a sum, not a root-sum-square: one number, no direction to average over):
      the output's own rounding u_out passed through dL/dout          sum |dL/dout| u_out
      the loss's arithmetic on its terms                                sum of what each term rounds, / count:
          mse and huber: the squared residual (and the residual's own rounding); bce from logits:
          2 |z| + 1 + |z y| (torch's form adds and cancels terms of size |z| and takes the log of 1 + e^-|z|,
          which rounds at an ulp of 1: 2e-11 relative on a loss of 4.5e-5 at z = -10); cross_entropy:
          |y| (|z| + |logsumexp z|), the cancellation in z - lse
      the sum of the terms and the L2 term lambda/2 sum ||W||^2         |L| + lambda sum ||W||^2
    """
    rule = LOSS_RULES[loss]
    g = rule.backward(out, y)
    with np.errstate(all="ignore"):
        carried = float(np.sum(np.abs(g) * u_out))
        if loss == "cross_entropy":
            top = out.max(axis=-1, keepdims=True)
            lse = top + np.log(np.exp(out - top).sum(axis=-1, keepdims=True))
            own = float(np.sum(np.abs(y) * (np.abs(out) + np.abs(lse)))) / out.shape[-2]
        elif loss == "bce":  # torch's form, (1 - y) z + m + log(e^-m + e^(-z-m)), m = max(-z, 0), rounds its terms
            own = float(np.sum(2.0 * np.abs(out) + 1.0 + np.abs(out * y))) / out.size
        else:
            r = out - y
            own = 3.0 * float(np.sum(r * r + np.abs(r) * (np.abs(out) + np.abs(y)))) / out.size
        value = abs(float(rule.forward(out, y)))
        decay = weight_decay * sum(float(np.vdot(w, w)) for k, w in params.items() if _is_weight(k))
    total = carried + own + value + decay
    return total if math.isfinite(total) else math.inf


def _is_weight(key: str) -> bool:
    """'W3' is a weight (the L2 term's), 'b3' and 'gamma3' are not."""
    return key.rstrip("0123456789") == "W"
