"""Case a: a full per-coordinate FD check against torch gradcheck's slow mode, at 1k, 10k and 100k params,
and on the deeper nets deep10k and deep100k (two tanh hidden layers, issue 15).

    python -m benchmarks.bench_full_fd [--sizes 1k,10k,100k,deep10k,deep100k] [--skip-slow] [--seed 0]

bpcheck: check_case(case, "fd") with the reference cache cleared before every call, so each call runs
the engine, the MLP-aware FD reference (every coordinate of dW, db, dx and dz, Richardson, with error
estimates) and the comparison. torch: torch.autograd.gradcheck (slow mode, its defaults eps=1e-6,
atol=1e-5, rtol=1e-3) on torch's own float64 net as a function of the flattened params (nets.torch_loss).
torch runs 1 thread and bpcheck's numpy BLAS is pinned to 1 thread (nets.pin_threads); each contender
runs in its own process, interleaved. Accuracy, measured after the timing: max abs and norm-relative
error of each numerical gradient against the engine's analytic one, over the params; torch's numerical
gradient is gradcheck's formula (f(p + eps e_i) - f(p - eps e_i)) / 2eps, over every coordinate up to
10k params and over a seeded sample of 2,000 coordinates above (TORCH_SAMPLE).
--skip-slow leaves out gradcheck at 100k and deep100k (about a minute a call).
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np

from benchmarks.nets import SIZES, accuracy, check_step, flat_params, make_case, torch_loss
from benchmarks.section import Goal, Section, median_of, speedup

BPCHECK = "bpcheck check_case(fd)"
GRADCHECK = "torch gradcheck (slow)"
SIZES_ALL = ("1k", "10k", "100k", "deep10k", "deep100k")
ROUNDS = {"1k": 10, "10k": 5, "100k": 1, "deep10k": 5, "deep100k": 1}
SLOW = ("100k", "deep100k")  # gradcheck slow mode takes about a minute a call here; --skip-slow leaves it out
GOAL_RATIO = {"10k": 30, "deep10k": 30, "deep100k": 30}  # issue 8 (10k) and issue 15 (the deeper nets)
ALONE_ROUNDS = 3
TORCH_SAMPLE = 2000
TORCH_EPS = 1e-6  # gradcheck's default


bpcheck_step = functools.partial(check_step, fast=False)


def gradcheck_step(label: str, seed: int):
    import torch

    loss, flat = torch_loss(make_case(label, seed))
    flat.requires_grad_(True)

    def step() -> float:
        t = time.perf_counter()
        torch.autograd.gradcheck(loss, (flat,))
        return time.perf_counter() - t

    torch.autograd.gradcheck(loss, (flat,), fast_mode=True)  # warm-up; a slow call at 100k takes a minute
    return step


def torch_numerical(label: str, seed: int, coords: np.ndarray) -> np.ndarray:
    """gradcheck's central difference at the given flat coordinates, one coordinate at a time."""
    import torch

    loss, flat = torch_loss(make_case(label, seed))
    out = np.empty(len(coords))
    with torch.no_grad():
        for k, i in enumerate(coords):
            orig = flat[i].item()
            flat[i] = orig - TORCH_EPS
            before = loss(flat).item()
            flat[i] = orig + TORCH_EPS
            after = loss(flat).item()
            flat[i] = orig
            out[k] = (after - before) / (2 * TORCH_EPS)
    return out


def _cells(estimate: np.ndarray, exact: np.ndarray) -> str:
    max_abs, norm_rel = accuracy(estimate, exact)
    return f"{max_abs:.1e} | {norm_rel:.1e}"


def accuracy_rows(label: str, seed: int, with_torch: bool) -> list[str]:
    from bpcheck import engine
    from bpcheck.references.fd_mlp import mlp_gradients

    case = make_case(label, seed)
    exact = np.concatenate([g.ravel() for g in engine.gradients(case).grads.values()])
    fd = np.concatenate([g.ravel() for g in mlp_gradients(case).grads.values()])
    rows = [f"| {label} | {BPCHECK} | all {exact.size} | {_cells(fd, exact)} |"]
    if with_torch:
        n = exact.size
        coords = np.arange(n) if n <= 10_000 else np.sort(np.random.default_rng(seed).choice(n, TORCH_SAMPLE, False))
        what = f"all {n}" if len(coords) == n else f"{len(coords)} sampled"
        rows.append(f"| {label} | {GRADCHECK} | {what} | "
                    f"{_cells(torch_numerical(label, seed, coords), exact[coords])} |")
    return rows


def run(sizes: list[str], skip_slow: bool, seed: int = 0) -> Section:
    from benchmarks.interleave import interleave, table

    section = Section("a. Full per-coordinate FD check against torch gradcheck (slow mode)")
    section.lines += [__doc__.split("\n\n", 2)[2].strip(), ""]
    acc = ["| params | contender | coordinates | max abs err | norm-rel err |", "|---|---|---|---:|---:|"]
    for label in sizes:
        make_case(label, seed)  # validate before any process starts
        with_torch = not (skip_slow and label in SLOW)
        setups = {BPCHECK: functools.partial(bpcheck_step, label, seed)}
        if with_torch:
            setups[GRADCHECK] = functools.partial(gradcheck_step, label, seed)
        rounds = ROUNDS[label] if with_torch else 3
        timings = interleave(setups, rounds=rounds, rotate=True)
        n_params = int(flat_params(make_case(label, seed)).size)
        section.lines += [f"**{label}** ({'-'.join(map(str, SIZES[label]))}, {n_params} params, batch 16, "
                          f"float64), {rounds} interleaved round(s):", "",
                          table(timings, baseline=GRADCHECK if with_torch else BPCHECK, unit=1.0, unit_name="s"), ""]
        deep = " (deep)" if label.startswith("deep") else ""
        section.points += [(t.name + deep, n_params, t.median) for t in timings]
        fd_median = median_of(timings, BPCHECK)
        if with_torch:
            ratio = speedup(timings, BPCHECK, GRADCHECK)
            section.lines += [f"bpcheck is **{ratio:.0f}x** faster than gradcheck slow mode at {label}.", ""]
            if label in GOAL_RATIO:
                target = GOAL_RATIO[label]
                section.goals.append(Goal(f"full FD at {label} vs gradcheck slow", f">= {target}x faster", f"{ratio:.1f}x",
                                          ratio >= target))
        else:
            section.lines += ["gradcheck slow mode skipped (--skip-slow); it takes about a minute a call here.", ""]
        if label in SLOW:
            if with_torch:  # one paired round is one sample: time bpcheck alone a few more times for the goal
                alone = interleave({BPCHECK: setups[BPCHECK]}, rounds=ALONE_ROUNDS)
                fd_median = alone[0].median
                section.lines += [f"bpcheck alone, {ALONE_ROUNDS} more rounds:", "",
                                  table(alone, baseline=BPCHECK, unit=1.0, unit_name="s"), ""]
            section.goals.append(Goal(f"full FD check at {label}", "< 2 s", f"{fd_median:.2f} s", fd_median < 2.0))
        acc += accuracy_rows(label, seed, with_torch)
    section.lines += ["Accuracy against the engine's analytic gradient (params only):", "", *acc]
    return section


def main(argv: list[str] | None = None) -> Section:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=",".join(SIZES_ALL))
    p.add_argument("--skip-slow", action="store_true", help="leave out gradcheck slow mode at 100k and deep100k")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    section = run(args.sizes.split(","), args.skip_slow, args.seed)
    print(section.markdown())
    return section


if __name__ == "__main__":
    main()
