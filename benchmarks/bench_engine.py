"""One forward+backward step of a 784-256-256-10 MLP (relu, relu, softmax + cross-entropy), batch 128,
float32: bpcheck's engine against torch (2 threads) and jax jit(grad), interleaved, each in its own process;
and against the MLP-only engine bpcheck had before the layers (tests/engine_v1.py, frozen), so the generic
loop over layers shows what it costs an MLP (the same numbers, bit for bit: tests/test_stack.py).

    python -m benchmarks.bench_engine [--rounds 100] [--seed 0]

Every contender computes the loss and the six parameter gradients, not dL/dx (torch and jax skip it too).
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np

SIZES = (784, 256, 256, 10)
BATCH = 128


def _data(seed: int):
    from bpcheck.spec import Arch, init_params

    rng = np.random.default_rng(seed)
    arch = Arch(SIZES, ("relu", "relu", "softmax"), "cross_entropy")
    params = init_params(arch, rng, "he", dtype=np.float32)
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = np.eye(SIZES[-1], dtype=np.float32)[rng.integers(0, SIZES[-1], BATCH)]
    return arch, params, x, y


def engine_step(seed: int):
    from bpcheck import engine

    arch, params, x, y = _data(seed)

    def step() -> float:
        t = time.perf_counter()
        _, caches = engine.forward(arch, params, x)
        engine.backward(arch, params, caches, y, input_grad=False)
        return time.perf_counter() - t

    return step


def mlp_engine_step(seed: int):
    from tests import engine_v1

    arch, params, x, y = _data(seed)

    def step() -> float:
        t = time.perf_counter()
        _, caches = engine_v1.forward(arch, params, x)
        engine_v1.backward(arch, params, caches, y, input_grad=False)
        return time.perf_counter() - t

    return step


def torch_step(seed: int):
    import torch

    torch.set_num_threads(2)
    arch, params, x, y = _data(seed)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tx, ty = torch.tensor(x), torch.tensor(y)

    def step() -> float:
        t = time.perf_counter()
        h = torch.relu(tx @ p["W1"] + p["b1"])
        h = torch.relu(h @ p["W2"] + p["b2"])
        z = h @ p["W3"] + p["b3"]
        loss = -(ty * torch.log_softmax(z, dim=1)).sum(dim=1).mean()
        torch.autograd.grad(loss, list(p.values()))
        return time.perf_counter() - t

    return step


def jax_step(seed: int):
    import jax
    import jax.numpy as jnp

    arch, params, x, y = _data(seed)

    def loss(p, x, y):
        h = jax.nn.relu(x @ p["W1"] + p["b1"])
        h = jax.nn.relu(h @ p["W2"] + p["b2"])
        z = h @ p["W3"] + p["b3"]
        return -(y * jax.nn.log_softmax(z, axis=1)).sum(axis=1).mean()

    grad = jax.jit(jax.value_and_grad(loss))
    p = {k: jnp.asarray(v) for k, v in params.items()}
    jx, jy = jnp.asarray(x), jnp.asarray(y)
    jax.block_until_ready(grad(p, jx, jy))  # compile outside the timed steps

    def step() -> float:
        t = time.perf_counter()
        jax.block_until_ready(grad(p, jx, jy))
        return time.perf_counter() - t

    return step


def main(argv: list[str] | None = None) -> str:
    from benchmarks.interleave import interleave, table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100, help="timed steps per contender (default 100, >= 50)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"seed {args.seed}; {'-'.join(map(str, SIZES))}, batch {BATCH}, float32; {args.rounds} interleaved steps each")
    setups = {name: functools.partial(fn, args.seed) for name, fn in
              (("bpcheck engine", engine_step), ("MLP engine before layers", mlp_engine_step),
               ("torch (2 threads)", torch_step), ("jax jit(grad)", jax_step))}
    timings = interleave(setups, rounds=max(args.rounds, 50))
    out = table(timings, baseline="torch (2 threads)")
    print(out)
    return out


if __name__ == "__main__":
    main()
