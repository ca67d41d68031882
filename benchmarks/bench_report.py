"""Case e: the default report's cost per case, and the share JAX takes.

    python -m benchmarks.bench_report [--cases 200] [--seed 0]

Runs `python -m bpcheck report` with its defaults (200 cases drawn by the sweep, every reference,
every format, shrinking) in a fresh process, twice: first with an empty jax compilation cache
($BPCHECK_JAX_CACHE pointed at a new temporary directory: the bucket compile is paid), then again
with that cache filled (what every later run on the machine pays). Wall time is the whole command,
interpreter start-up included; the per-reference seconds come from report.json's meta.timings (each
reference's first call includes its import and, for jax, backend start-up and compile). JAX per new
architecture = jax seconds / distinct architectures in the sweep. Nothing is pinned: this is the
command as a user runs it.

The default sweep mixes layered stacks in (one case in bpcheck.draw.LAYERED_EVERY); a third run, first,
draws MLPs only (LAYERED_EVERY = 0, set in the child before the command runs, empty cache too), so the
stacks' cost is the ratio of the two cold walls, and the MLP path's jax per new arch is read where no
stack shares the jax seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.section import Goal, Section

REFS = ("fd", "torch", "jax")


# `python -m bpcheck` with the sweep's stacks switched off, and on (one in 4 when the default has them off).
MLP_ONLY = "import sys; from bpcheck import draw, cli; draw.LAYERED_EVERY = 0; sys.exit(cli.main(sys.argv[1:]))"
MIXED = ("import sys; from bpcheck import draw, cli; draw.LAYERED_EVERY = draw.LAYERED_EVERY or 4; "
         "sys.exit(cli.main(sys.argv[1:]))")


def run_report(out: Path, cache: Path, cases: int, seed: int, mlp_only: bool = False) -> dict:
    """Run the report command once; returns wall seconds, meta timings, case and architecture counts."""
    env = {**os.environ, "BPCHECK_JAX_CACHE": str(cache)}
    head = [sys.executable, "-c", MLP_ONLY if mlp_only else MIXED]
    cmd = [*head, "report", "--out", str(out), "--cases", str(cases), "--seed", str(seed)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):  # 1 only says some case carries a fail-on label
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    data = json.loads((out / "report.json").read_text())
    results = data["results"]
    return {"wall": wall, "timings": data["meta"]["timings"], "cases": len(results),
            "archs": len({r["arch"] for r in results})}


def _row(name: str, r: dict) -> str:
    t, n = r["timings"], r["cases"]
    refs = [t.get(f"{ref}_seconds", 0.0) for ref in REFS]
    jax_per_arch = t.get("jax_seconds", 0.0) / max(r["archs"], 1)
    cells = " | ".join(f"{s:.2f} s ({s / r['wall']:.0%})" for s in refs)
    return (f"| {name} | {r['wall']:.1f} s | {r['wall'] / n * 1e3:.0f} ms | {t['total_seconds']:.1f} s | {cells} | "
            f"{r['archs']} | {jax_per_arch * 1e3:.1f} ms |")


def run(cases: int = 200, seed: int = 0) -> Section:
    section = Section("e. The default report: cost per case and JAX's share")
    section.lines += [__doc__.split("\n\n", 2)[2].strip(), ""]
    with tempfile.TemporaryDirectory(prefix="bpcheck-bench-") as tmp:
        mlps = run_report(Path(tmp) / "mlps", Path(tmp) / "jax-cache-mlps", cases, seed, mlp_only=True)
        cache = Path(tmp) / "jax-cache"
        cold = run_report(Path(tmp) / "cold", cache, cases, seed)
        warm = run_report(Path(tmp) / "warm", cache, cases, seed)
    section.lines += [
        f"`python -m bpcheck report --cases {cases} --seed {seed}`, {cold['cases']} cases:", "",
        "| sweep, jax cache | wall | wall per case | sweep | fd (share of wall) | torch (share) | jax (share) | archs | "
        "jax per new arch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        _row("MLPs only, empty", mlps), _row("default (with stacks), empty (compiles)", cold),
        _row("default (with stacks), filled", warm), "",
        f"Default sweep with stacks / MLPs only (empty caches): {cold['wall'] / mlps['wall']:.2f}x wall, "
        f"{cold['timings'].get('jax_seconds', 0.0) / max(mlps['timings'].get('jax_seconds', 0.0), 1e-9):.2f}x jax.", ""]
    per_arch = mlps["timings"].get("jax_seconds", 0.0) / max(mlps["archs"], 1) * 1e3
    section.goals.append(Goal("JAX per new arch in the default report's MLPs (cold jax cache)", "<= 20 ms",
                              f"{per_arch:.1f} ms", per_arch <= 20))
    ratio = cold["wall"] / mlps["wall"]
    section.goals.append(Goal("The default report with stacks vs MLPs only (cold jax caches)", "<= 2x wall",
                              f"{ratio:.2f}x", ratio <= 2))
    return section


def main(argv: list[str] | None = None) -> Section:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    section = run(args.cases, args.seed)
    print(section.markdown())
    return section


if __name__ == "__main__":
    main()
