"""How much of its tolerance a correct producer uses, and which labels a sweep of Hypothesis cases gets.

    python -m benchmarks.measure_compare --examples 800          # every regime, float64 and float32

For every case drawn by bpcheck.strategies.cases (derandomized, so the same cases each run) it runs
check_case with the engine, and records per reference, dtype and regime: the largest excess / tol over
all tensors (how much of its bound a correct engine uses; < 1 means it passes), the median and 99th
percentile of the norm-rel bound `tol` itself (a planted 1e-3 relative bug is caught where tol < 1e-3),
and the overall labels. Prints a table; no assertions (tests/test_check.py holds those).
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=800)
    parser.add_argument("--references", default="fd,torch,jax")
    args = parser.parse_args()

    from hypothesis import HealthCheck, given, settings

    from bpcheck import strategies as bst
    from bpcheck.check import check_case

    ratios: dict[tuple, list[float]] = collections.defaultdict(list)
    tols: dict[tuple, list[float]] = collections.defaultdict(list)
    labels: collections.Counter = collections.Counter()
    seconds: list[float] = []

    @settings(max_examples=args.examples, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(bst.cases(archs=bst.architectures(max_depth=4, max_width=6), max_batch=8))
    def sweep(case):
        start = time.perf_counter()
        r = check_case(case, args.references)
        seconds.append(time.perf_counter() - start)
        labels[(r.label, r.dtype)] += 1
        for v in r.verdicts:
            key = (v.reference, r.dtype, r.regime)
            for t in v.tensors:
                if t.name.startswith(("dz", "direction")) or t.note:
                    continue
                ratios[key].append(t.excess / t.tol if t.tol > 0 else (0.0 if t.excess == 0 else np.inf))
                tols[key].append(t.tol)

    sweep()
    print(f"{len(seconds)} cases, median check_case {np.median(seconds) * 1e3:.1f} ms (first includes imports)")
    print(f"{'reference':9} {'dtype':8} {'regime':11} {'tensors':>7} {'max excess/tol':>14} "
          f"{'tol p50':>9} {'tol p99':>9} {'tol<1e-3':>8}")
    for key in sorted(ratios):
        r, t = np.array(ratios[key]), np.array(tols[key])
        print(f"{key[0]:9} {key[1]:8} {key[2]:11} {len(r):7d} {r.max():14.3g} {np.median(t):9.2g} "
              f"{np.quantile(t, 0.99):9.2g} {np.mean(t < 1e-3):8.1%}")
    print("labels:", dict(sorted(labels.items())))


if __name__ == "__main__":
    main()
