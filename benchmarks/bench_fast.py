"""Case b: bpcheck's fast mode against torch gradcheck fast_mode and jax check_grads, at 10k and 100k params.

    python -m benchmarks.bench_fast [--sizes 10k,100k] [--rounds 10] [--seed 0]

bpcheck: check_case(case, "fd", fast=True), reference cache cleared before every call: the engine's
gradient against FD along 3 seeded random unit directions over all params and x (check.FAST_DIRECTIONS),
with the rounding bounds of the full check. torch: torch.autograd.gradcheck(fast_mode=True) (one
random direction, its defaults) on torch's own float64 net of the flattened params, 1 thread.
jax: jax.test_util.check_grads(order=1, modes=["rev"]) on jax's own float64 net of the flattened
params (eager, as check_grads runs). bpcheck's numpy BLAS is pinned to 1 thread (nets.pin_threads).
Each contender runs in its own process, interleaved, after one warm-up call; every call must pass
(a correct gradient), or the run stops.
"""

from __future__ import annotations

import argparse
import functools
import time

from benchmarks.nets import SIZES, check_step, flat_params, jax_loss, make_case, torch_loss
from benchmarks.section import Goal, Section, median_of

BPCHECK = "bpcheck check_case(fd, fast)"
TORCH_FAST = "torch gradcheck fast_mode"
JAX = "jax check_grads"


bpcheck_step = functools.partial(check_step, fast=True)


def torch_step(label: str, seed: int):
    import torch

    loss, flat = torch_loss(make_case(label, seed))
    flat.requires_grad_(True)

    def step() -> float:
        t = time.perf_counter()
        torch.autograd.gradcheck(loss, (flat,), fast_mode=True)
        return time.perf_counter() - t

    step()  # warm-up (imports, first-call caches) outside the timed rounds
    return step


def jax_step(label: str, seed: int):
    from jax.test_util import check_grads

    loss, flat = jax_loss(make_case(label, seed))

    def step() -> float:
        t = time.perf_counter()
        check_grads(loss, (flat,), order=1, modes=["rev"])
        return time.perf_counter() - t

    step()  # warm-up (imports, first-call caches) outside the timed rounds
    return step


def run(sizes: list[str], rounds: int = 10, seed: int = 0) -> Section:
    from benchmarks.interleave import interleave, table

    section = Section("b. Fast mode against torch gradcheck fast_mode and jax check_grads")
    section.lines += [__doc__.split("\n\n", 2)[2].strip(), ""]
    for label in sizes:
        setups = {name: functools.partial(fn, label, seed)
                  for name, fn in ((BPCHECK, bpcheck_step), (TORCH_FAST, torch_step), (JAX, jax_step))}
        timings = interleave(setups, rounds=rounds, rotate=True)
        n_params = int(flat_params(make_case(label, seed)).size)
        section.lines += [f"**{label}** ({'-'.join(map(str, SIZES[label]))}, {n_params} params, batch 16, "
                          f"float64), {rounds} interleaved rounds:", "",
                          table(timings, baseline=TORCH_FAST), ""]
        section.points += [(t.name, n_params, t.median) for t in timings]
        if label == "100k":
            ratio = median_of(timings, BPCHECK) / median_of(timings, TORCH_FAST)
            section.goals.append(Goal("fast mode at 100k vs torch fast_mode", "<= 1.0x", f"{ratio:.2f}x", ratio <= 1.0))
    return section


def main(argv: list[str] | None = None) -> Section:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10k,100k")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    section = run(args.sizes.split(","), args.rounds, args.seed)
    print(section.markdown())
    return section


if __name__ == "__main__":
    main()
