"""Sweep N cases drawn from the strategies, check each against every reference, and write the report.

Case i is drawn from (--seed, i) alone, so a run is reproduced bit for bit by its seed, whatever --jobs.
Writes report.md, report.json, report.html, junit.xml, errors.png and cases/<id>.json (replay them with
`python -m bpcheck replay`). Exit 0: no case carries a --fail-on label; 1: some do; 2: usage or input
error; 130: interrupted (a partial report of the finished cases is written); also 1, with a partial report,
when the Dask scheduler of --scheduler goes away mid-run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .common import add_executor, add_isolation, add_seed, add_targets, add_weight_decay, int_at_least

HELP = "sweep drawn cases through the engine and every reference; write md/json/html/junit/png reports"
DEFAULTS = {"cases": 200, "out": "reports/", "formats": "all", "fail_on": "ENGINE,REFERENCE", "jobs": 1,
            "max_depth": 3, "max_width": 4}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_seed(p)
    p.add_argument("--cases", type=int_at_least(1), default=DEFAULTS["cases"], help="cases to draw (default %(default)s)")
    p.add_argument("--refs", default="all", help="references, comma-separated: fd,torch,jax (default: all; the "
                                                 "unavailable ones are SKIPPED, named ones must be installed)")
    p.add_argument("--dtypes", default="float64,float32", help="dtypes to cycle through (default %(default)s)")
    p.add_argument("--regimes", default="all", help="regimes to cycle through: ordinary,near_kink,saturating,tiny,huge "
                                                   "(default all)")
    p.add_argument("--max-depth", type=int_at_least(1), default=DEFAULTS["max_depth"], help="most layers (default %(default)s)")
    p.add_argument("--layers", default=None, metavar="KIND,KIND",
                   help="draw every case as a layered stack whose body is built from these kinds (conv2d, maxpool2d, "
                        "avgpool2d, batchnorm, layernorm, dropout, activation, dense; 'all': every kind); default: "
                        "one case in 4 is a stack of every kind, the rest MLPs")
    add_targets(p)
    add_weight_decay(p)
    p.add_argument("--max-width", type=int_at_least(1), default=DEFAULTS["max_width"], help="widest layer (default %(default)s)")
    p.add_argument("--out", default=DEFAULTS["out"], help="output directory (default %(default)s)")
    p.add_argument("--formats", default=DEFAULTS["formats"], help="md,json,html,junit,png or all (default all)")
    add_executor(p)
    p.add_argument("--fail-on", default=DEFAULTS["fail_on"], help="labels that fail the run (default %(default)s)")
    p.add_argument("--no-shrink", action="store_true", help="skip the minimal reproducers (hypothesis.find)")
    p.add_argument("--engine", default=None, metavar="FILE.py:FUNCTION",
                   help="check your own gradient function (row layout, see bpcheck.byo) instead of bpcheck's engine")
    add_isolation(p)


def _names(text: str, vocabulary: tuple[str, ...]) -> tuple[str, ...]:
    parts = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    return vocabulary if parts == ("all",) else parts


def _references(text: str) -> tuple[str, ...]:
    """--refs: 'all' keeps every reference (unavailable ones are SKIPPED); named ones must be able to run."""
    from .. import references as refs

    return tuple(refs.require(text, "--refs"))


class Progress:
    """A rich progress bar (rate, ETA) on a terminal; a plain line every ~5% of cases otherwise."""

    def __init__(self, total: int, tty: bool):
        self.total, self.start, self.bar = total, time.perf_counter(), None
        self.every = max(1, total // 20)
        if tty:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(TextColumn("checking"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[rate]} cases/s"), TimeRemainingColumn(), transient=True)
            self.task = self.bar.add_task("cases", total=total, rate="-")
            self.bar.start()

    def __call__(self, done: int, total: int, result) -> None:
        elapsed = time.perf_counter() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.bar is not None:
            self.bar.update(self.task, completed=done, rate=f"{rate:.1f}")
        elif done % self.every == 0 or done == total or not result.ok:
            eta = (total - done) / rate if rate > 0 else 0.0
            print(f"[{done:>{len(str(total))}}/{total}] {100 * done // total:3d}% {rate:.1f} cases/s, ETA {eta:.0f} s"
                  + (f"  {result.label} {result.case_id} {result.arch}" if not result.ok else ""), flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def run(args: argparse.Namespace) -> int:
    from ..report import parse_formats
    from ..strategies import DTYPE_NAMES, REGIMES
    from ..sweep import SweepConfig

    formats = parse_formats(args.formats)
    from ..stacks import parse_kinds

    layers = parse_kinds(args.layers) if args.layers is not None else None
    config = SweepConfig(
        cases=args.cases, seed=args.seed, references=_references(args.refs),
        dtypes=_names(args.dtypes, DTYPE_NAMES), regimes=_names(args.regimes, REGIMES),
        max_depth=args.max_depth, max_width=args.max_width, jobs=args.jobs, scheduler=args.scheduler,
        targets=args.targets, layers=layers, weight_decay=args.weight_decay or 0.0,
        fail_on=_names(args.fail_on, ()), extra={"out": args.out, "formats": list(formats)},
    ).validate()
    producer = None
    out = os.path.abspath(args.out)  # before any user code runs: a chdir in it cannot move the report
    if args.engine:
        from ..user_engine import UserEngine

        # a bad spec fails here, before any work
        producer = UserEngine(args.engine, labels=args.targets == "labels", timeout=args.timeout,
                              in_process=args.in_process).load()
    return execute(config, out, formats, producer, shrink=not args.no_shrink, shown=args.out)


def _sweep_and_shrink(config, producer, shrink: bool, log):
    from ..sweep import run_sweep

    progress = Progress(config.cases, sys.stdout.isatty())
    try:
        run = run_sweep(config, producer, progress=progress)
    finally:
        progress.close()
    if not run.partial and shrink and run.results:
        from ..shrink import shrink_kinds

        try:
            start = time.perf_counter()
            reproducers = shrink_kinds(run, list(config.references), producer, max_depth=config.max_depth,
                                       max_width=config.max_width,
                                       on_kind=lambda n, k: log(f"shrinking kind {n} of {k}"))
            run.meta["reproducers"] = reproducers
            run.meta["timings"]["shrink_seconds"] = time.perf_counter() - start
        except KeyboardInterrupt:
            run.meta["partial"] = True
    return run


def execute(config, out: str, formats: tuple[str, ...], producer=None, *, shrink: bool = True, log=print,
            shown: str | None = None) -> int:
    """Sweep, shrink, write the report and print the summary; the exit code (0, 1 or 130; 1 for a partial run
    whose Dask scheduler went away).

    producer defaults to the engine; tests plant a buggy one here. shown: out as the user wrote it."""
    from .. import engine
    from ..report import FILE_NAMES, REPORT, OutputFolder, write_report
    from ..report.analysis import exit_code
    from ..report.summary import summary_lines
    from ..sweep import INTERRUPTED

    # before any work: an unwritable or busy --out costs nothing, and the folder stays locked until the set is in
    with OutputFolder(out, REPORT, flag="--out") as folder:
        run = _sweep_and_shrink(config, producer or engine.gradients, shrink, log)
        write_report(run, folder, formats)
    names = [FILE_NAMES.get(f, "errors.png") for f in formats]
    for line in summary_lines(run, str(shown or out), names):
        log(line)
    if run.partial:
        return 130 if run.meta.get("partial_reason", INTERRUPTED) == INTERRUPTED else 1
    return exit_code(run)
