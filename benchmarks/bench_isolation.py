"""Case f: what running the user's function in a worker process costs, against --in-process.

    python -m benchmarks.bench_isolation [--rounds 3] [--seed 0]

Two commands as a user runs them, each timed whole (interpreter start-up included), the worker
process and --in-process interleaved (A B, B A, ...) so that drift of the machine hits both alike:
the default 200-case `report --engine` and a 10-case `check`, both of a correct gradient function
(bpcheck's own engine behind the user interface, so every case is checked in full and nothing is
shrunk). Then, in this process, one call of that function through the worker (pickle there and
back, the arguments returned for the mutation check) against the same call in this process, and the
worker's start-up (spawn, imports, loading the file).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.section import Section

ENGINE = """
from bpcheck import Case, engine


def grads(arch, params, x, y):
    return dict(engine.gradients(Case(arch, params, x, y)).grads)
"""
CHECK = ["--arch", "3-4-2", "--activations", "tanh,sigmoid", "--loss", "mse", "--cases", "10"]


def _commands(spec: str, out: Path, seed: int) -> dict[str, list[str]]:
    report = ["report", "--engine", spec, "--out", str(out), "--seed", str(seed)]
    check = ["check", spec, *CHECK, "--seed", str(seed)]
    return {"report --engine, 200 cases": report, "check, 10 cases": check}


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bpcheck", *argv], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"bpcheck {' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return wall


def _per_call(spec: str, calls: int = 300) -> tuple[float, float, float]:
    """(worker start-up s, one call through the worker s, one call here s), medians of `calls` calls."""
    import numpy as np

    from bpcheck import Arch, init_params
    from bpcheck.byo import ROW
    from bpcheck.byo.calls import UserGrad
    from bpcheck.byo.isolation import Worker, isolate
    from bpcheck.spec import Case

    arch = Arch((3, 4, 2), ("tanh", "sigmoid"), "mse")
    rng = np.random.default_rng(0)
    case = Case(arch, init_params(arch, rng), rng.standard_normal((8, 3)), rng.random((8, 2)))
    worker = Worker()
    start = time.perf_counter()
    remote = UserGrad(isolate(spec, worker=worker), ROW)
    startup = time.perf_counter() - start
    local = UserGrad(isolate(spec, in_process=True), ROW)
    times: dict[str, list[float]] = {"worker": [], "here": []}
    for _ in range(calls):
        for name, user in (("worker", remote), ("here", local)):
            t = time.perf_counter()
            user.call(case)
            times[name].append(time.perf_counter() - t)
    worker.stop()
    return startup, statistics.median(times["worker"]), statistics.median(times["here"])


def run(rounds: int = 3, seed: int = 0) -> Section:
    section = Section("f. Isolation: the user's function in a worker process against --in-process")
    section.lines += [__doc__.split("\n\n", 2)[2].strip(), ""]
    with tempfile.TemporaryDirectory(prefix="bpcheck-bench-iso-") as tmp:
        spec = str(Path(tmp) / "user_engine.py") + ":grads"
        Path(spec.rsplit(":", 1)[0]).write_text(ENGINE)
        commands = _commands(spec, Path(tmp) / "out", seed)
        walls: dict[tuple[str, str], list[float]] = {}
        for r in range(rounds):
            for label, argv in commands.items():
                modes = [("worker", []), ("in-process", ["--in-process"])]
                for mode, extra in (modes if r % 2 == 0 else modes[::-1]):
                    walls.setdefault((label, mode), []).append(_wall(argv + extra))
        startup, remote, here = _per_call(spec)
    section.lines += [f"{rounds} interleaved rounds, medians of the whole command's wall time:", "",
                      "| | worker process (default) | `--in-process` | worker / in-process |", "|---|---:|---:|---:|"]
    for label in commands:
        w, i = statistics.median(walls[(label, "worker")]), statistics.median(walls[(label, "in-process")])
        section.lines.append(f"| `{label}` | {w:.2f} s | {i:.2f} s | {w / i:.2f}x |")
    section.lines += [f"| one call of grads (3-4-2, batch 8), median of 300 | {remote * 1e6:.0f} us | {here * 1e6:.0f} us "
                      f"| {remote / here:.1f}x |",
                      f"| worker start-up (spawn, imports, load the file), paid once a process | {startup * 1e3:.0f} ms "
                      "| - | |", ""]
    return section


def main(argv: list[str] | None = None) -> Section:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    section = run(args.rounds, args.seed)
    print(section.markdown())
    return section


if __name__ == "__main__":
    main()
