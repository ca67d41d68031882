"""Run the catalog of real backprop bugs against bpcheck and against torch gradcheck and jax check_grads.

Each mutant runs over --cases cases drawn under its conditions; the unmutated engine runs over
--fp-cases MLP cases and --fp-stacks layered stacks (every regime, float64 and float32) for the false alarms. Writes mutants.md and
mutants.json to --out and prints a compact table. Exit 0 when bpcheck catches every mutant, names
the layer and tensor of every one-layer bug and raises no false alarm; 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time

from .common import add_executor, add_seed, int_at_least

HELP = "measure who catches a catalog of real backprop bugs: bpcheck, torch gradcheck, jax check_grads"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_seed(p)
    p.add_argument("--cases", type=int_at_least(1), default=8, help="cases per mutant (default %(default)s)")
    p.add_argument("--fp-cases", type=int_at_least(0), default=2000,
                   help="cases of the unmutated engine for the false-alarm count (default %(default)s; 0 skips)")
    p.add_argument("--fp-stacks", type=int_at_least(0), default=2000,
                   help="cases of the unmutated engine on layered stacks (those of `report --layers all`: every kind, "
                        "regime and dtype) for the false-alarm count (default %(default)s; 0 skips)")
    p.add_argument("--only", default="", help="comma-separated mutant names (default: every mutant)")
    p.add_argument("--refs", default=None, help="bpcheck references, e.g. fd,torch (default: all available)")
    p.add_argument("--no-baselines", action="store_true", help="run bpcheck only")
    p.add_argument("--out", default="reports", help="directory for mutants.md and mutants.json (default %(default)s)")
    p.add_argument("--shrink", choices=("hypothesis", "greedy", "none"), default="hypothesis",
                   help="minimal case per mutant: bpcheck.shrink (default), the greedy fallback only, or none")
    p.add_argument("--list", action="store_true", help="list the catalog and exit")
    add_executor(p)


def run(args: argparse.Namespace) -> int:
    from .. import references as refs
    from ..executors import Runner
    from ..mutants import select
    from ..report.writer import MUTANTS, OutputFolder

    chosen = select(args.only)
    refs.require(args.refs, "--refs")  # before any work: a named reference must be able to run here
    args.runner = Runner(args.jobs, args.scheduler)  # a bad --jobs/--scheduler pair, or no dask: exit 2 here
    if args.list:
        for m in chosen:
            print(f"{m.name:28s} {m.style:6s} {m.where:18s} {m.conditions.describe()}\n    {m.description}")
        return 0
    # before any work: --out must be writable and not in use by another mutants run
    with OutputFolder(args.out, MUTANTS, flag="--out") as folder, args.runner:
        return _measure(args, chosen, folder)


def _measure(args: argparse.Namespace, chosen, folder) -> int:
    import numpy as np

    from .. import baselines
    from .. import references as refs
    from ..mutants import false_alarms, render, sweep
    from ..spec import BpcheckError
    from ..version import __version__

    names = tuple(b for b in baselines.BASELINES if not args.no_baselines and baselines.available(b))
    references = refs.require(args.refs, "--refs")
    start = time.perf_counter()

    def done(i: int, total: int, outcome: dict) -> None:
        print(f"[{i}/{total}] {outcome['name']}: bpcheck {outcome['caught_cases']}/{args.cases}"
              + (f" ({outcome['error']})" if "error" in outcome else ""), file=sys.stderr)

    mutants, stopped = sweep.run_mutants(chosen, args.cases, args.seed, references, names, args.shrink,
                                         runner=args.runner, on_done=done)
    if stopped is not None:
        raise BpcheckError(f"the mutants run stopped after {len(mutants)} of {len(chosen)} mutants: {stopped}")
    def progress(done: int, total: int) -> None:
        if done % 250 == 0 or done == total:
            print(f"engine: {done}/{total} cases", file=sys.stderr)

    engine = None
    if args.fp_cases:
        engine = false_alarms.run_engine(args.fp_cases, args.seed, references, names, progress, runner=args.runner).to_dict()
    stacks = None
    if args.fp_stacks:
        stacks = false_alarms.run_engine(args.fp_stacks, args.seed, references, names, progress, runner=args.runner,
                                         stacks=True).to_dict()
        print(f"engine on {args.fp_stacks} layered stacks: bpcheck {stacks['bpcheck_false_positives']} false alarms, "
              + ", ".join(f"{b} {v}" for b, v in stacks["baseline_false_positives"].items()), file=sys.stderr)
    meta = {
        "command": "python -m bpcheck mutants " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["mutants"] else []),
        "seed": args.seed, "k": args.cases, "shrink": args.shrink, "fp_cases": args.fp_cases, "references": list(references),
        "baselines": list(names), "bpcheck": __version__, "numpy": np.__version__,
        "torch": refs.status("torch").version, "jax": refs.status("jax").version,
        "wall_seconds": time.perf_counter() - start, "executor": args.runner.meta,
        "fp_stacks": args.fp_stacks,
        "stacks_engine": None if stacks is None else {k: v for k, v in stacks.items() if k != "baseline_alarms"},
    }
    summary = render.summarise(mutants, engine, meta)
    md, js = render.write(summary, folder)
    print(render.compact(summary))
    print(f"wrote {md} and {js} in {meta['wall_seconds']:.0f} s")
    t = summary["totals"]
    ok = (t["bpcheck_caught"] == t["mutants"] and t["localised"] == t["one_layer_mutants"]
          and all(e is None or e["bpcheck_false_positives"] == 0 for e in (engine, stacks)))
    return 0 if ok else 1
