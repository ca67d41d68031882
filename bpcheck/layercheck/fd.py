"""Finite differences of <forward(theta), dout> per argument, with the project's error model and kink flags.

    fd = fd_gradients(evaluate, theta, dout, pattern=None)     # {name: FDTensor(grad, err, kink)}

evaluate(stacked) takes K perturbed copies of every array (name -> (K, *shape)) and returns the K outputs
(K, *out_shape): a registry kind's independent numpy `reference` does it in one call, a user's own
forward (--layer none) in one round trip to the worker. Each coordinate goes through
finite_diff.family_difference (Richardson, a truncation estimate, a retry at a smaller step for kinks
and curvature); the rounding part of the error is the project's rounding_error with S = sum |out * dout|,
the rounding scale of one evaluation of <out, dout>. pattern(theta_k) (Layer.pattern: relu's sign,
max-pool's argmax) differing from pattern(theta) says a step crossed a kink: that coordinate is flagged
and left out of the comparison, as on the MLP path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..references.finite_diff import family_difference, relative_steps, rounding_error

BUDGET = 4 * 2**20       # bytes of stacked outputs per evaluation


@dataclass(frozen=True)
class FDTensor:
    grad: np.ndarray
    err: np.ndarray
    kink: np.ndarray


def fd_gradients(evaluate: Callable[[dict[str, np.ndarray]], np.ndarray], theta: dict[str, np.ndarray],
                 dout: np.ndarray, pattern: Callable[[dict[str, np.ndarray]], np.ndarray | None] | None = None,
                 names: list[str] | None = None, terms: float | None = None) -> dict[str, FDTensor]:
    """FD of L(theta) = <evaluate(theta), dout> for each array in names (default: all), in float64.

    terms: the rounding scale of one evaluation when the caller knows it better (a loss layer's logits)."""
    theta = {k: np.asarray(v, dtype=np.float64) for k, v in theta.items()}
    dout = np.asarray(dout, dtype=np.float64)
    both = np.asarray(evaluate({k: np.stack([v, np.abs(v)]) for k, v in theta.items()}), dtype=np.float64)
    out0 = both[0]
    # The rounding of one evaluation is eps times its terms, not its result: the output at |theta| stands in for
    # the terms (exact for affine and conv, whose terms it sums; a softmax loss near 0 is a difference of ~50s).
    scale = float(np.sum((np.abs(out0) + np.abs(both[1])) * np.abs(dout))) if terms is None else terms
    base = pattern(theta) if pattern is not None else None
    chunk = max(1, BUDGET // (32 * max(out0.size, 1)))
    out = {}
    for name in names or list(theta):
        flat = theta[name].ravel()

        def run(idx: np.ndarray, s: np.ndarray, n_kink: int, name: str = name, flat: np.ndarray = flat):
            k = len(idx)
            stacked = {n: np.broadcast_to(v, (k, *v.shape)) for n, v in theta.items()}
            moved = np.repeat(flat[None, :], k, axis=0)
            moved[np.arange(k), idx] += s
            stacked[name] = moved.reshape(k, *theta[name].shape)
            outs = np.asarray(evaluate(stacked), dtype=np.float64)
            change = ((outs - out0[None]) * dout[None]).reshape(k, -1).sum(axis=1)
            crossed = np.zeros(n_kink, dtype=bool)
            if base is not None:
                for j in range(n_kink):
                    crossed[j] = not np.array_equal(pattern({n: v[j] for n, v in stacked.items()}), base)
            return change, crossed

        grad, trunc, kink, h = family_difference(relative_steps(flat), run, chunk)
        err = trunc + rounding_error(scale, h)
        out[name] = FDTensor(grad.reshape(theta[name].shape), err.reshape(theta[name].shape),
                             kink.reshape(theta[name].shape))
    return out
