"""Case d: one three-reference check of a small random case against one torch gradcheck of the same case.

    python -m benchmarks.bench_three_refs [--rounds 40] [--seed 0]

Round r checks case r of the report's sweep (bpcheck.draw.draw_case(seed, r), default depth <= 3 and
width <= 4: tens of params, float32 or float64, every regime), the same case for both contenders.
bpcheck: check_case(case, "fd,torch,jax"), the engine against all three references, reference cache
cleared. torch: bpcheck.baselines.torch_gradcheck(engine.gradients, case), gradcheck slow mode with
its defaults over (W1, b1, ..., x), the engine wrapped as a torch.autograd.Function in float64.
Both warm up on 3 other cases first, so imports and jax's bucket compile are outside the timed rounds
(case e counts them); numpy's BLAS and torch run 1 thread; each contender in its own process.
"""

from __future__ import annotations

import argparse
import functools
import time

from benchmarks.nets import TORCH_THREADS, pin_threads
from benchmarks.section import Goal, Section, median_of

BPCHECK = "bpcheck check_case(fd,torch,jax)"
GRADCHECK = "torch gradcheck of the engine"
WARMUP = 3


def _case(seed: int, index: int):
    from bpcheck.draw import draw_case

    return draw_case(seed, index)


def _timed(check, seed: int):
    """step() checks the next case of the sweep (index 0, 1, ...) after WARMUP cases from far indices."""
    for i in range(WARMUP):
        check(_case(seed, 10_000 + i))
    counter = iter(range(10**9))

    def step() -> float:
        case = _case(seed, next(counter))
        t = time.perf_counter()
        check(case)
        return time.perf_counter() - t

    return step


def bpcheck_step(seed: int):
    from bpcheck.check import check_case, clear_cache

    pin_threads()

    def check(case):
        clear_cache()
        result = check_case(case, "fd,torch,jax")
        if any(v.label in ("ERROR", "SKIPPED") for v in result.verdicts):
            raise RuntimeError(f"a reference did not run: {result.message()}")

    return _timed(check, seed)


def gradcheck_step(seed: int):
    import torch

    from bpcheck import engine
    from bpcheck.baselines import torch_gradcheck

    pin_threads()
    torch.set_num_threads(TORCH_THREADS)

    def check(case):
        result = torch_gradcheck(engine.gradients, case)
        if result.error:
            raise RuntimeError(f"gradcheck did not run: {result.message}")

    return _timed(check, seed)


def run(rounds: int = 40, seed: int = 0) -> Section:
    from benchmarks.interleave import interleave, table

    section = Section("d. One three-reference check against one torch gradcheck, small random cases")
    section.lines += [__doc__.split("\n\n", 2)[2].strip(), ""]
    setups = {BPCHECK: functools.partial(bpcheck_step, seed), GRADCHECK: functools.partial(gradcheck_step, seed)}
    timings = interleave(setups, rounds=rounds, rotate=True)
    ratio = median_of(timings, BPCHECK) / median_of(timings, GRADCHECK)
    section.lines += [f"{rounds} interleaved rounds, one new case each:", "", table(timings, baseline=GRADCHECK), ""]
    section.goals.append(Goal("three-reference check vs one torch gradcheck", "<= 0.3x", f"{ratio:.2f}x", ratio <= 0.3))
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
