"""The speed suite (issue 8): every case, one Markdown report and one log-log plot.

    python -m benchmarks                          # cases a-f, gradcheck slow mode at 100k and deep100k included (~2 min more)
    python -m benchmarks --skip-slow              # leave out gradcheck slow mode at 100k and deep100k
    python -m benchmarks --cases a,b --out /tmp   # some cases only

a  full per-coordinate FD check vs torch gradcheck slow mode, 1k/10k/100k params and two deeper nets, with accuracy
b  fast mode vs torch gradcheck fast_mode and jax check_grads, 10k/100k params
c  the engine's training step vs torch and jax-jit, 784-256-256-10, batch 128, float32
d  one three-reference check of a small case vs one torch gradcheck of it
e  the default report's cost per case and JAX's share

Writes OUT/bench.md (the tables, the goals, the command, the machine's load) and OUT/bench.png
(median cost against parameter count, cases a and b), each to a temporary name and then renamed.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import shlex
import sys
from pathlib import Path

from benchmarks.section import Goal, Section, median_of

CASES = ("a", "b", "c", "d", "e", "f")
ENGINE_1T, TORCH_1T = "bpcheck engine (1 thread)", "torch (1 thread)"
ENGINE_DEFAULT, TORCH_2T, JAX_JIT = "bpcheck engine", "torch (2 threads)", "jax jit(grad)"


def engine_pinned(seed: int):
    from benchmarks import bench_engine
    from benchmarks.nets import pin_threads

    pin_threads()
    return bench_engine.engine_step(seed)


def torch_pinned(seed: int):
    import torch

    from benchmarks import bench_engine

    step = bench_engine.torch_step(seed)  # sets 2 threads; override after
    torch.set_num_threads(1)
    return step


def engine_section(rounds: int, seed: int) -> Section:
    """Case c: bench_engine's contenders as written (default threads), plus the engine and torch on 1 thread."""
    from benchmarks import bench_engine
    from benchmarks.interleave import interleave, table

    section = Section("c. The engine's step against torch and jax-jit (784-256-256-10, batch 128, float32)")
    section.lines += [bench_engine.__doc__.strip().split("\n\n")[0].replace("\n", " "),
                      "(benchmarks/bench_engine.py). Added here: the engine with numpy's BLAS pinned to 1 thread and "
                      "torch on 1 thread, since 2-thread pools stall on a loaded 2-core machine.", ""]
    setups = {ENGINE_DEFAULT: functools.partial(bench_engine.engine_step, seed),
              TORCH_2T: functools.partial(bench_engine.torch_step, seed),
              ENGINE_1T: functools.partial(engine_pinned, seed),
              TORCH_1T: functools.partial(torch_pinned, seed),
              JAX_JIT: functools.partial(bench_engine.jax_step, seed)}
    timings = interleave(setups, rounds=rounds, rotate=True)
    section.lines += [f"{rounds} interleaved steps each:", "", table(timings, baseline=TORCH_1T), ""]
    for engine, torch_name in ((ENGINE_1T, TORCH_1T), (ENGINE_DEFAULT, TORCH_2T)):
        ratio = median_of(timings, engine) / median_of(timings, torch_name)
        section.goals.append(Goal(f"engine step vs torch ({engine} / {torch_name})", "<= 1.2x", f"{ratio:.2f}x",
                                  ratio <= 1.2))
    return section


def _load() -> str:
    try:
        return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} cores"
    except OSError:
        return "load average unknown"


def goals_table(goals: list[Goal]) -> str:
    rows = ["| goal | target | measured | met |", "|---|---|---:|---|"]
    rows += [f"| {g.name} | {g.target} | {g.value} | {'yes' if g.met else 'NO'} |" for g in goals]
    return "\n".join(rows)


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of a,b,c,d,e,f (default all)")
    p.add_argument("--skip-slow", action="store_true", help="leave out torch gradcheck slow mode at 100k params (both nets)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="reports", help="directory for bench.md and bench.png (default reports)")
    args = p.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in args.cases if c not in CASES]
    if bad or not args.cases:
        p.error(f"--cases {','.join(bad) or '(none)'}: choose from {','.join(CASES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from benchmarks import bench_fast, bench_full_fd, bench_isolation, bench_report, bench_three_refs
    from benchmarks.plot import plot_cost

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    load_before = _load()
    runners = {
        "a": lambda: bench_full_fd.run(list(bench_full_fd.SIZES_ALL), args.skip_slow, args.seed),
        "b": lambda: bench_fast.run(["10k", "100k"], 10, args.seed),
        "c": lambda: engine_section(100, args.seed),
        "d": lambda: bench_three_refs.run(40, args.seed),
        "e": lambda: bench_report.run(200, args.seed),
        "f": lambda: bench_isolation.run(3, args.seed),
    }
    sections: list[Section] = []
    for case in args.cases:
        print(f"case {case} ...", flush=True)
        sections.append(runners[case]())
        print(sections[-1].markdown(), flush=True)
    goals = [g for s in sections for g in s.goals]
    head = [
        "# bpcheck speed suite", "",
        f"Command: `{command.strip()}`, {datetime.datetime.now().isoformat(timespec='seconds')}.",
        f"Machine: {platform.machine()}, Python {platform.python_version()}; {load_before} at the start, "
        f"{_load()} at the end. Other jobs shared the machine, so absolute times are noisy; every ratio "
        "compares contenders interleaved in one run, each in its own process.", "",
        "## Goals", "", goals_table(goals), "",
    ]
    write_atomically(out / "bench.md", "\n".join(head + [s.markdown() for s in sections]))
    points = [p for s in sections for p in s.points]
    if points:
        plot_cost(points, out / "bench.png")
    print(goals_table(goals))
    print(f"wrote {out / 'bench.md'}" + (f" and {out / 'bench.png'}" if points else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
