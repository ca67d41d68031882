"""Case d: one three-reference check of a small random case against one torch gradcheck of the same case.

    python -m benchmarks.bench_three_refs [--rounds 40] [--seed 0]

Round r checks case r of a sweep (bpcheck.draw.draw_case(seed, r), float32 or float64, every regime),
the same case for both contenders, in two tiers: the default report's cases (depth <= 3, width <= 4:
tens of params) and wider ones (depth <= 3, width <= 16: up to ~800 params, within the issue's 1k).
bpcheck: check_case(case, "fd,torch,jax"), the engine against all three references, reference cache
cleared. torch: bpcheck.baselines.torch_gradcheck(engine.gradients, case), gradcheck slow mode with
its defaults over (W1, b1, ..., x), the engine wrapped as a torch.autograd.Function in float64.
Both first check every case of the tier once, so imports and jax's bucket compiles are outside the
timed rounds (case e counts them); numpy's BLAS and torch run 1 thread; each contender in its own process.
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np

from benchmarks.nets import TORCH_THREADS, pin_threads
from benchmarks.section import Goal, Section, median_of

BPCHECK = "bpcheck check_case(fd,torch,jax)"
GRADCHECK = "torch gradcheck of the engine"
WARMUP = 3


TIERS = {  # name -> max_width of draw_case (max_depth 3, its default)
    "tens of params (the default report's cases, width <= 4)": 4,
    "up to ~800 params (width <= 16)": 16,
}


def _timed(check, seed: int, max_width: int, rounds: int):
    """step() checks the next case of the tier (index 0, 1, ...), after one untimed pass over them all."""
    from bpcheck.draw import draw_case

    cases = [draw_case(seed, i, max_width=max_width) for i in range(rounds)]
    for case in cases:
        check(case)
    counter = iter(cases)

    def step() -> float:
        case = next(counter)
        t = time.perf_counter()
        check(case)
        return time.perf_counter() - t

    return step


def bpcheck_step(seed: int, max_width: int, rounds: int):
    from bpcheck.check import check_case, clear_cache

    pin_threads()

    def check(case):
        clear_cache()
        result = check_case(case, "fd,torch,jax")
        if any(v.label in ("ERROR", "SKIPPED") for v in result.verdicts):
            raise RuntimeError(f"a reference did not run: {result.message()}")

    return _timed(check, seed, max_width, rounds)


def gradcheck_step(seed: int, max_width: int, rounds: int):
    import torch

    from bpcheck import engine
    from bpcheck.baselines import torch_gradcheck

    pin_threads()
    torch.set_num_threads(TORCH_THREADS)

    def check(case):
        result = torch_gradcheck(engine.gradients, case)
        if result.error:
            raise RuntimeError(f"gradcheck did not run: {result.message}")

    return _timed(check, seed, max_width, rounds)


def run(rounds: int = 40, seed: int = 0) -> Section:
    from benchmarks.interleave import interleave, table
    from bpcheck.draw import draw_case

    section = Section("d. One three-reference check against one torch gradcheck, small random cases")
    section.lines += [__doc__.split("\n\n", 2)[2].strip(), ""]
    for tier, width in TIERS.items():
        sizes = [draw_case(seed, i, max_width=width).arch.n_params for i in range(rounds)]
        setups = {BPCHECK: functools.partial(bpcheck_step, seed, width, rounds),
                  GRADCHECK: functools.partial(gradcheck_step, seed, width, rounds)}
        timings = interleave(setups, rounds=rounds, rotate=True)
        ratio = median_of(timings, BPCHECK) / median_of(timings, GRADCHECK)
        section.lines += [f"**{tier}**: {rounds} interleaved rounds, one new case each (params: median "
                          f"{int(np.median(sizes))}, max {max(sizes)}):", "", table(timings, baseline=GRADCHECK), ""]
        section.goals.append(Goal(f"three-reference check vs one torch gradcheck, {tier}", "<= 0.3x",
                                  f"{ratio:.2f}x", ratio <= 0.3))
    return section


def main(argv: list[str] | None = None) -> Section:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    section = run(args.rounds, args.seed)
    print(section.markdown())
    return section


if __name__ == "__main__":
    main()
