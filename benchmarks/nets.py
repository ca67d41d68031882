"""The nets the speed cases share: float64 MLPs of about 1k, 10k and 100k params, batch 16, and the
same loss written in torch and in jax as a function of the flattened parameter vector.

Every net is tanh in its hidden layers then softmax + cross-entropy (smooth: no kink can blur an accuracy
figure), with biases drawn small and nonzero so that every coordinate of the gradient is exercised:
n_in-h-n_out for 1k, 10k and 100k, and two hidden layers for deep10k and deep100k (issue 15's deeper nets).
The flat vector is W1, b1, ..., WL, bL in spec.param_names order, each row-major.
"""

from __future__ import annotations

import time

import numpy as np

BATCH = 16
# torch's intra-op pool: 1 thread. On this 2-core machine, shared with other jobs, 2 threads made one
# gradcheck of the 1k net 10-20 s instead of 0.8 s (each small op waits for a descheduled thread).
TORCH_THREADS = 1
# Parameter count (the label) -> sizes; n_params is the sum over layers of (n_{l-1} + 1) n_l.
SIZES: dict[str, tuple[int, ...]] = {
    "1k": (20, 40, 5),        # 1,045 params
    "10k": (100, 90, 10),     # 10,000 params
    "100k": (784, 128, 10),   # 101,770 params
    "deep10k": (32, 85, 85, 2),     # 10,287 params
    "deep100k": (64, 280, 280, 2),  # 97,442 params
}


def pin_threads() -> str:
    """Pin numpy's BLAS pool of this process to 1 thread, as torch's is (TORCH_THREADS), through threadpoolctl.

    On a loaded 2-core machine a 2-thread OpenBLAS made one 16x784 @ 784x128 product 15-55 ms instead of
    0.25 ms. Only the pool of this (benchmark worker) process changes; no environment variable is set.
    Returns what was done, for the report.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return "numpy BLAS threads not pinned (pip install threadpoolctl)"
    threadpool_limits(limits=1)
    return "numpy BLAS pinned to 1 thread (threadpoolctl)"


def make_case(label: str, seed: int = 0):
    """The float64 Case of SIZES[label], batch BATCH: Xavier weights, biases ~ N(0, 0.1^2), one-hot y."""
    from bpcheck.spec import Arch, Case, init_params

    sizes = SIZES[label]
    arch = Arch(sizes, ("tanh",) * (len(sizes) - 2) + ("softmax",), "cross_entropy")
    rng = np.random.default_rng(seed)
    params = init_params(arch, rng)
    params.update({k: 0.1 * rng.standard_normal(v.shape) for k, v in params.items() if k.startswith("b")})
    x = rng.standard_normal((BATCH, sizes[0]))
    y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], BATCH)]
    return Case(arch, params, x, y)


def flat_params(case) -> np.ndarray:
    """The (n_params,) float64 vector W1, b1, ..., WL, bL."""
    return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in case.params.values()])


def _pieces(case) -> list[tuple[int, int, tuple[int, ...]]]:
    """(start, stop, shape) of each param in the flat vector."""
    out, start = [], 0
    for shape in case.arch.param_shapes().values():
        size = int(np.prod(shape))
        out.append((start, start + size, shape))
        start += size
    return out


def torch_loss(case):
    """(loss(flat) -> 0-d tensor, flat float64 tensor): torch's own net, the engine's math in float64.

    Sets torch's thread count to TORCH_THREADS for this process.
    """
    import torch

    torch.set_num_threads(TORCH_THREADS)
    pieces, x, y = _pieces(case), torch.tensor(case.x), torch.tensor(case.y)

    def loss(flat):
        w = [flat[a:b].reshape(shape) for a, b, shape in pieces]
        a = x
        for layer in range(0, len(w) - 2, 2):
            a = torch.tanh(a @ w[layer] + w[layer + 1])
        z = a @ w[-2] + w[-1]
        return -(y * torch.log_softmax(z, dim=1)).sum(dim=1).mean()

    return loss, torch.tensor(flat_params(case))


def jax_loss(case):
    """(loss(flat) -> scalar, flat float64 array): jax's own net, the engine's math in float64.

    Turns on jax_enable_x64 for this process, as bpcheck's jax reference does.
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    pieces, x, y = _pieces(case), jnp.asarray(case.x), jnp.asarray(case.y)

    def loss(flat):
        w = [flat[a:b].reshape(shape) for a, b, shape in pieces]
        a = x
        for layer in range(0, len(w) - 2, 2):
            a = jnp.tanh(a @ w[layer] + w[layer + 1])
        z = a @ w[-2] + w[-1]
        return -(y * jax.nn.log_softmax(z, axis=1)).sum(axis=1).mean()

    return loss, jnp.asarray(flat_params(case))


def accuracy(estimate: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """(max |estimate - exact|, ||estimate - exact|| / ||exact||) over flat vectors."""
    diff = np.asarray(estimate, dtype=np.float64) - exact
    return float(np.abs(diff).max()), float(np.linalg.norm(diff) / np.linalg.norm(exact))


def check_step(label: str, seed: int, *, fast: bool):
    """A timed step() for bpcheck's check_case(case, "fd", fast=fast) on the correct engine, reference cache
    cleared each call. It must AGREE (in fast mode without escalating), or the timing measures the wrong work."""
    from bpcheck.check import check_case, clear_cache

    pin_threads()
    case = make_case(label, seed)

    def step() -> float:
        clear_cache()
        t = time.perf_counter()
        result = check_case(case, "fd", fast=fast)
        seconds = time.perf_counter() - t
        if result.label != "AGREE" or (fast and "escalated" in result.verdicts[0].reason):
            raise RuntimeError(f"check_case(fast={fast}) did not pass on its own: {result.message()}")
        return seconds

    step()  # warm-up (imports, first-call caches) outside the timed rounds
    return step
