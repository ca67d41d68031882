"""Where a sweep runs: throughput of the default report's cases in one process, in two, and on a Dask LocalCluster
of two workers, and the scheduler's cost per task and per case.

    nice python -m benchmarks.bench_cluster [--cases 2000] [--seed 0]

Each executor runs bpcheck.sweep.run_sweep on the same --cases default cases (every reference, depth <= 3,
width <= 4), from start (workers spawned, set up) to the last result: cases/s is what a user sees, start-up
included, and the chunk size is the one the run chose. The overhead rows send no-op tasks through a Dask
LocalCluster of two workers (two in flight per worker, as the sweep does) and through the process pool: the
round trip per task, then per case at the sweep's chunk size, as a fraction of a case's own time (200 more
cases in the warm parent process). The runs also check that every executor gave the same results.
"""

from __future__ import annotations

import argparse
import time
from concurrent import futures as cf
from multiprocessing import get_context

from bpcheck.sweep import SweepConfig, run_sweep

TASKS = 1000


def _noop(chunk):
    return [(i, None) for i in chunk]


def _sweep(cases: int, seed: int, **where) -> tuple[float, list, dict]:
    start = time.perf_counter()
    run = run_sweep(SweepConfig(cases=cases, seed=seed, **where))
    return time.perf_counter() - start, [r.without_timings().to_dict() for r in run.results], run.meta["executor"]


def _dask_task_seconds() -> float:
    from distributed import Client, LocalCluster, as_completed

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0", host="127.0.0.1") as cluster, \
            Client(cluster) as client:
        client.submit(_noop, (0,), pure=False).result()
        start = time.perf_counter()
        done = as_completed([client.submit(_noop, (i,), pure=False) for i in range(4)])
        sent = 4
        for _ in done:
            if sent < TASKS:
                done.add(client.submit(_noop, (sent,), pure=False))
                sent += 1
        return (time.perf_counter() - start) / TASKS


def _pool_task_seconds() -> float:
    with cf.ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        pool.submit(_noop, (0,)).result()
        start = time.perf_counter()
        for f in [pool.submit(_noop, (i,)) for i in range(TASKS)]:
            f.result()
        return (time.perf_counter() - start) / TASKS


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    rows, results = [], {}
    for name, where in (("--jobs 1", {}), ("--jobs 2", {"jobs": 2}), ("--scheduler local:2", {"scheduler": "local:2"})):
        seconds, results[name], executor = _sweep(args.cases, args.seed, **where)
        rows.append((name, seconds, args.cases / seconds, executor.get("chunk", 1)))
    same = all(r == results["--jobs 1"] for r in results.values())
    warm = min(200, args.cases)  # this process is warm now (imports, jax's bucket): a case's own time
    case_seconds = _sweep(warm, args.seed + 1)[0] / warm

    print(f"{args.cases} default cases, seed {args.seed} (same results from every executor: {same})")
    print(f"{'executor':22s} {'seconds':>8s} {'cases/s':>8s} {'chunk':>6s}")
    for name, seconds, rate, chunk in rows:
        print(f"{name:22s} {seconds:8.1f} {rate:8.1f} {chunk:6d}")
    print(f"\none case in a warm process: {1e3 * case_seconds:.2f} ms ({warm} cases of seed {args.seed + 1})")
    for name, task, chunk in (("process pool", _pool_task_seconds(), rows[1][3]),
                              ("Dask LocalCluster", _dask_task_seconds(), rows[2][3])):
        per_case = task / chunk
        print(f"{name:18s} round trip per task {1e3 * task:6.2f} ms; per case at chunk {chunk}: {1e3 * per_case:6.3f} ms "
              f"= {100 * per_case / case_seconds:5.1f}% of a case")


if __name__ == "__main__":
    main()
