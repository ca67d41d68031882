"""Per-case cost of the torch and jax references over a sweep of random small architectures (issue 8).

    python -m benchmarks.bench_references                  # every contender, each in a fresh process
    python -m benchmarks.bench_references --only jax:bucketed --n 200 --seed 0
    python -m benchmarks.bench_references --stacks --n 50   # the sweep's layered stacks: jax per stack vs per layer

Every case is a new random arch (depth 1-4, widths 1-8, batch 1-16, mixed activations and losses),
as a sweep meets them, so jax's compiles are part of the per-case time. Setup (importing the framework,
jax's backend start-up) is timed apart. Each contender runs in its own process so that no compile cache
or thread pool carries over. Also prints the worst norm-relative error against the engine.

--stacks draws the cases as the layered sweep does (bpcheck.draw.draw_case with every kind: conv, pools,
norms, dropout, flatten, dense, activations; the same N stacks for every contender) and ends with a table of
the per-case times side by side, as ratios to jax:jit (one compile per whole stack, the default before
issue 15's per-layer kernels). BPCHECK_JAX_CACHE=off is set for the children, so no contender loads an
earlier run's compiles from disk.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

CONTENDERS = ("torch", "torch:1thread", "jax:bucketed", "jax:eager", "jax:jit")
STACK_CONTENDERS = ("torch", "jax:jit", "jax:layers", "jax:eager")  # jax:layers is what jax:bucketed does on a stack


def random_case(rng: np.random.Generator):
    """One case of the issue-8 sweep: depth 1-4, widths 1-8, batch 1-16, any activation and loss."""
    from bpcheck.spec import ACTIVATIONS, LOSS_OUTPUT, LOSSES, Arch, Case

    depth = int(rng.integers(1, 5))
    sizes = tuple(int(s) for s in rng.integers(1, 9, depth + 1))
    loss = LOSSES[int(rng.integers(len(LOSSES)))]
    acts = [ACTIVATIONS[int(i)] for i in rng.integers(0, len(ACTIVATIONS), depth)]
    acts[-1] = LOSS_OUTPUT.get(loss, acts[-1])
    arch = Arch(sizes, tuple(acts), loss)
    batch = int(rng.integers(1, 17))
    params = {k: rng.standard_normal(s) / np.sqrt(s[0]) for k, s in arch.param_shapes().items()}
    return Case(arch, params, rng.standard_normal((batch, sizes[0])), rng.random((batch, sizes[-1])))


def norm_rel(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / max(||a||, ||b||); 0 when both are exactly zero."""
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


def worst_error(ref, eng, zero: float = 1e-14) -> float:
    """The largest norm_rel over the loss, param grads, dx, dz and da. A tensor whose norms are both
    below `zero` is an exact zero up to rounding (a width-1 softmax is constant) and counts as agreeing."""
    pairs = [(np.array(ref.loss), np.array(eng.loss)), (ref.dx, eng.dx)]
    pairs += [(ref.grads[k], eng.grads[k]) for k in eng.grads]
    if eng.da is not None:
        pairs += list(zip(ref.dz, eng.dz)) + list(zip(ref.da, eng.da))
    else:  # a stack: the per-layer trace
        pairs += [(a, b) for a, b in zip(ref.dout, eng.dout) if a is not None and b is not None]
    return max(0.0 if max(np.linalg.norm(a), np.linalg.norm(b)) < zero else norm_rel(a, b) for a, b in pairs)


def stack_case(seed: int, index: int):
    """Case `index` of a layered sweep with this seed (every registered kind), in float64."""
    from bpcheck import draw, stacks

    return draw.draw_case(seed, index, layers=stacks.layer_kinds()).astype(np.float64)


def run(contender: str, n: int, seed: int, stacked: bool = False) -> dict:
    from bpcheck import engine

    t0 = time.perf_counter()
    if contender.startswith("torch"):
        import torch

        from bpcheck.references import torch_ref

        if contender == "torch:1thread":
            torch.set_num_threads(1)
        produce = torch_ref.gradients
    else:
        from bpcheck.references import jax_ref

        mode = contender.split(":")[1]
        jax_ref._jax().jnp.zeros(1).block_until_ready()  # import, x64, backend start-up
        produce = lambda case: jax_ref.gradients(case, mode)  # noqa: E731
    setup = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    times, worst, buckets = [], 0.0, set()
    for index in range(n):
        case = stack_case(seed, index) if stacked else random_case(rng)
        t = time.perf_counter()
        grads = produce(case)
        times.append(time.perf_counter() - t)
        worst = max(worst, worst_error(grads, engine.gradients(case)))
        buckets.add(grads.meta.get("bucket"))
    compiles = jax_ref.compiles() if contender.startswith("jax") else None
    return {"contender": contender, "setup": setup, "times": times, "worst": worst, "buckets": len(buckets),
            "compiles": compiles}


def show(r: dict) -> str:
    t = r["times"]
    ms = 1e3
    return (f"{r['contender']:<14} setup {r['setup']:6.2f} s | per case: mean {statistics.mean(t) * ms:7.2f} ms, "
            f"median {statistics.median(t) * ms:6.2f} ms, first {t[0] * ms:7.1f} ms, max {max(t) * ms:7.1f} ms, "
            f"total {sum(t):6.2f} s | worst err vs engine {r['worst']:.1e}"
            + (f" | {r['buckets']} bucket(s)" if r["contender"] == "jax:bucketed" else ""))


def table(rows: list[dict]) -> str:
    """Per-case time of each contender side by side, as a ratio to jax:jit's."""
    base = next((statistics.mean(r["times"]) for r in rows if r["contender"] == "jax:jit"), None)
    lines = ["| contender | per case, mean | median | total | compiles | x faster than jax:jit | worst err vs engine |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        mean = statistics.mean(r["times"])
        ratio = f"{base / mean:.2f}" if base else "-"
        lines.append(f"| {r['contender']} | {mean * 1e3:.0f} ms | {statistics.median(r['times']) * 1e3:.0f} ms | "
                     f"{sum(r['times']):.1f} s | {r['compiles'] if r['compiles'] is not None else '-'} | {ratio} | "
                     f"{r['worst']:.1e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=CONTENDERS + ("jax:layers",), help="run one contender in this process")
    p.add_argument("--n", type=int, default=None, help="cases (default 200; 50 with --stacks)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stacks", action="store_true", help="the layered sweep's stacks instead of random MLPs")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # a child's result, for the table
    args = p.parse_args(argv)
    n = args.n if args.n is not None else (50 if args.stacks else 200)
    if args.only:
        result = run(args.only, n, args.seed, args.stacks)
        print(json.dumps(result) if args.json else show(result), flush=True)
        return 0
    what = "layered sweep stacks (every kind)" if args.stacks else "random archs"
    print(f"{n} {what}, seed {args.seed}; each contender in a fresh process", flush=True)
    rows = []
    for contender in STACK_CONTENDERS if args.stacks else CONTENDERS:
        cmd = [sys.executable, "-m", "benchmarks.bench_references", "--only", contender,
               "--n", str(n), "--seed", str(args.seed), "--json"] + (["--stacks"] if args.stacks else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                             env={**os.environ, "BPCHECK_JAX_CACHE": "off"}).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(show(rows[-1]), flush=True)
    if args.stacks:
        print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
