"""Random nets for the foundation tests, drawn from a seeded np.random.Generator (no Hypothesis needed)."""

from __future__ import annotations

import numpy as np

from bpcheck.spec import ACTIVATIONS, LOSS_OUTPUT, LOSSES, Arch, Case, init_params


def random_arch(rng: np.random.Generator, act: str | None = None, loss: str | None = None) -> Arch:
    loss = loss or str(rng.choice(LOSSES))
    depth = int(rng.integers(1, 4))
    sizes = [int(rng.integers(1, 6)) for _ in range(depth + 1)]
    if loss == "cross_entropy":
        sizes[-1] = max(sizes[-1], 2)
    hidden = [act or str(rng.choice([a for a in ACTIVATIONS if a != "softmax"])) for _ in range(depth - 1)]
    out = LOSS_OUTPUT.get(loss, act or str(rng.choice(ACTIVATIONS)))
    return Arch(tuple(sizes), tuple(hidden) + (out,), loss)


def random_targets(rng: np.random.Generator, arch: Arch, batch: int) -> np.ndarray:
    n = arch.sizes[-1]
    if arch.loss == "bce":
        return rng.random((batch, n))
    if arch.loss == "cross_entropy":
        return rng.random((batch, n)) * 2  # nonnegative rows that need not sum to 1
    return rng.standard_normal((batch, n))


def random_case(rng: np.random.Generator, arch: Arch | None = None, batch: int | None = None,
                dtype=np.float64) -> Case:
    arch = arch or random_arch(rng)
    batch = batch or int(rng.integers(1, 17))
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in init_params(arch, rng).items()}
    x = rng.standard_normal((batch, arch.sizes[0]))
    case = Case(arch, params, x, random_targets(rng, arch, batch))
    return case.astype(dtype)
