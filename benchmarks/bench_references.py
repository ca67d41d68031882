"""Per-case cost of the torch and jax references over a sweep of random small architectures (issue 8).

    python -m benchmarks.bench_references                  # every contender, each in a fresh process
    python -m benchmarks.bench_references --only jax:bucketed --n 200 --seed 0

Every case is a new random arch (depth 1-4, widths 1-8, batch 1-16, mixed activations and losses),
as a sweep meets them, so jax's compiles are part of the per-case time. Setup (importing the framework,
jax's backend start-up) is timed apart. Each contender runs in its own process so that no compile cache
or thread pool carries over. Also prints the worst norm-relative error against the engine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np

CONTENDERS = ("torch", "torch:1thread", "jax:bucketed", "jax:eager", "jax:jit")


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
    pairs += list(zip(ref.dz, eng.dz)) + list(zip(ref.da, eng.da))
    return max(0.0 if max(np.linalg.norm(a), np.linalg.norm(b)) < zero else norm_rel(a, b) for a, b in pairs)


def run(contender: str, n: int, seed: int) -> dict:
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
    for _ in range(n):
        case = random_case(rng)
        t = time.perf_counter()
        grads = produce(case)
        times.append(time.perf_counter() - t)
        worst = max(worst, worst_error(grads, engine.gradients(case)))
        buckets.add(grads.meta.get("bucket"))
    return {"contender": contender, "setup": setup, "times": times, "worst": worst, "buckets": len(buckets)}


def show(r: dict) -> str:
    t = r["times"]
    ms = 1e3
    return (f"{r['contender']:<14} setup {r['setup']:6.2f} s | per case: mean {statistics.mean(t) * ms:7.2f} ms, "
            f"median {statistics.median(t) * ms:6.2f} ms, first {t[0] * ms:7.1f} ms, max {max(t) * ms:7.1f} ms, "
            f"total {sum(t):6.2f} s | worst err vs engine {r['worst']:.1e}"
            + (f" | {r['buckets']} bucket(s)" if r["contender"] == "jax:bucketed" else ""))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=CONTENDERS, help="run one contender in this process")
    p.add_argument("--n", type=int, default=200, help="random architectures (default 200)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.only:
        print(show(run(args.only, args.n, args.seed)), flush=True)
        return 0
    print(f"{args.n} random archs, seed {args.seed}; each contender in a fresh process", flush=True)
    for contender in CONTENDERS:
        cmd = [sys.executable, "-m", "benchmarks.bench_references", "--only", contender,
               "--n", str(args.n), "--seed", str(args.seed)]
        subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
