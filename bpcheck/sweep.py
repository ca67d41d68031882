"""The sweep: draw N cases from (seed, i), check each against every reference, in one or more processes.

    config = SweepConfig(cases=200, seed=0, jobs=2)
    run = run_sweep(config, progress=lambda done, total, result: ...)   # RunResult, sorted by case index

Case i is bpcheck.draw.draw_case(seed, i), so the results do not depend on where they run: --jobs N (a pool
of spawned processes) or --scheduler (a Dask cluster) check whatever indices they are handed, in chunks, and
the parent sorts by index (bpcheck.executors). A worker that dies takes its chunk with it: each of those cases
is retried once, alone, and is ERROR (with the reason) if it dies again; the rest completes. Ctrl-C
(KeyboardInterrupt in the parent) cancels what is in flight and returns the finished cases with
meta['partial'] = True and meta['partial_reason']; so does a Dask scheduler that goes away. Workers that we
start ignore SIGINT, so a Ctrl-C sent to the whole process group is handled once, by the parent.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np

from . import engine
from . import references as refs
from .check import Producer, check_case, producer_name, run_meta
from .draw import draw_case
from .executors import Runner
from .results import DEFAULT_FAIL_ON, LABELS, CheckResult, RunResult
from .spec import UsageError, suggest, with_weight_decay
from .strategies import DTYPE_NAMES, REGIMES, target_kinds
from .version import __version__

Progress = Callable[[int, int, CheckResult], None]
# Test hook, read only in worker processes: the worker checking this case index kills itself.
KILL_HOOK = "BPCHECK_TEST_KILL_CASE"
# What a default case (every reference, depth <= 3, width <= 4) takes once warm, measured on a loaded 2-core
# machine: the chunk size is set from it (bpcheck.executors.chunk_size).
CASE_SECONDS = 0.007
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class SweepConfig:
    """What to draw and how to check it; validate() names a bad value and the fix."""

    cases: int = 200
    seed: int = 0
    references: tuple[str, ...] = tuple(refs.NAMES)
    dtypes: tuple[str, ...] = DTYPE_NAMES
    regimes: tuple[str, ...] = REGIMES
    max_depth: int = 3
    max_width: int = 4
    jobs: int = 1
    targets: str | None = None   # bce/cross_entropy targets: None (one-hot and probability rows) or a TARGET_CHOICES name
    scheduler: str | None = None  # a Dask scheduler's address, or local:N (bpcheck.executors)
    fail_on: tuple[str, ...] = DEFAULT_FAIL_ON
    layers: tuple[str, ...] | None = None  # kinds of every case's layered body; None: the default mix (draw.is_layered)
    weight_decay: float = 0.0   # lambda of the declared loss's L2 term on every drawn arch (spec.Arch.weight_decay)
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in meta as given (e.g. the CLI's --out)

    def validate(self) -> SweepConfig:
        for name, low in (("cases", 1), ("max_depth", 1), ("max_width", 1), ("jobs", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UsageError(f"--{name.replace('_', '-')} {value!r} is invalid: give an integer >= {low}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise UsageError(f"--seed {self.seed!r} is invalid: give an integer >= 0")
        for name, vocabulary in (("dtypes", DTYPE_NAMES), ("regimes", REGIMES), ("fail_on", LABELS)):
            values = getattr(self, name)
            if not values:
                raise UsageError(f"--{name.replace('_', '-')} is empty: give some of {', '.join(vocabulary)}")
            for v in values:
                if v not in vocabulary:
                    raise UsageError(f"--{name.replace('_', '-')} has unknown {v!r}{suggest(v, vocabulary)}: "
                                     f"choose from {', '.join(vocabulary)}")
        refs.resolve(list(self.references))
        if self.layers is not None:
            from .stacks import parse_kinds

            parse_kinds(",".join(self.layers))
        target_kinds(self.targets)
        Runner(self.jobs, self.scheduler)  # a bad --scheduler, or one without dask installed, fails here
        if isinstance(self.weight_decay, bool) or not isinstance(self.weight_decay, (int, float)) \
                or not 0 <= self.weight_decay < float("inf"):
            raise UsageError(f"--weight-decay {self.weight_decay!r} is invalid: give a finite number >= 0, like 0.01")
        return self

    def draw(self, index: int):
        case = draw_case(self.seed, index, regimes=self.regimes, dtypes=self.dtypes,
                         max_depth=self.max_depth, max_width=self.max_width, targets=self.targets,
                         layers=self.layers)
        return with_weight_decay(case, self.weight_decay)

    def options(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()} | self.extra


def check_index(config: SweepConfig, index: int, producer: Producer = engine.gradients) -> CheckResult:
    """Draw case index and check it; a case that cannot be drawn is an ERROR result."""
    try:
        case = config.draw(index)
    except Exception as exc:  # reported, not raised: one bad draw must not stop a sweep
        return CheckResult(f"draw-{index}", "?", "?", "?", 0, {}, (), "ERROR", False, producer_name(producer),
                           config.fail_on, error=f"drawing case {index} failed: {type(exc).__name__}: {exc}")
    return check_case(case, list(config.references), producer=producer, fail_on=config.fail_on, skip_missing=True)


def _error_result(config: SweepConfig, index: int, producer: Producer, message: str) -> CheckResult:
    """ERROR for case index, with the case's own description (drawn again here; it is cheap)."""
    case = config.draw(index)
    from .check import case_digest

    return CheckResult(case_digest(case)[:12], case.arch.label(), case.x.dtype.name, case.regime, case.batch,
                       case.to_dict(), (), "ERROR", False, producer_name(producer), config.fail_on, error=message,
                       engine=getattr(producer, "engine_spec", ""))


def _check_chunk(config: SweepConfig, producer: Producer, chunk: tuple[int, ...]) -> list[tuple[int, CheckResult]]:
    """The task a worker runs: check each index of the chunk."""
    kill = os.environ.get(KILL_HOOK) if multiprocessing.parent_process() is not None else None
    out = []
    for index in chunk:
        if kill is not None and int(kill) == index:
            os.kill(os.getpid(), signal.SIGKILL)
        out.append((index, check_index(config, index, producer)))
    return out


def set_up_worker(references: tuple[str, ...]) -> None:
    """Once per worker: import the references' frameworks, turn on jax's x64 and compile cache and load its
    compiled bucket, by checking one drawn case with the engine; a failure here shows up in the real cases."""
    try:
        check_case(draw_case(0, 0), list(references), producer=engine.gradients)
    except Exception:  # the same error comes back, reported, from the case that meets it
        pass


def run_sweep(config: SweepConfig, producer: Producer = engine.gradients, *,
              progress: Progress | None = None) -> RunResult:
    """Check config.cases drawn cases; results sorted by case index; Ctrl-C gives a partial RunResult.

    jobs > 1 needs a picklable producer (a module-level function).
    """
    config.validate()
    runner = Runner(config.jobs, config.scheduler)
    runner.check_sendable(producer, producer_name(producer))
    done: dict[int, CheckResult] = {}
    start = time.perf_counter()

    def report(index: int, result: CheckResult) -> None:
        done[index] = result
        if progress is not None:
            progress(len(done), config.cases, result)

    def lost(index: int, reason: str) -> None:
        report(index, _error_result(config, index, producer, reason))

    try:
        with runner:
            stopped = runner.run(partial(_check_chunk, config, producer), range(config.cases), report, lost,
                                 setup=partial(set_up_worker, tuple(config.references)), item_seconds=CASE_SECONDS)
    except KeyboardInterrupt:
        stopped = INTERRUPTED
    results = tuple(done[i] for i in sorted(done))
    meta = sweep_meta(config, producer, results, time.perf_counter() - start, stopped is not None)
    meta["case_indices"] = sorted(done)
    meta["executor"] = runner.meta
    if stopped is not None:
        meta["partial_reason"] = stopped
    return RunResult(meta, results)


def versions() -> dict[str, str | None]:
    """python, numpy, hypothesis, torch and jax versions, read without importing torch or jax."""
    import hypothesis

    return {"bpcheck": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "hypothesis": hypothesis.__version__, "torch": refs._version("torch"), "jax": refs._version("jax")}


def sweep_meta(config: SweepConfig, producer: Producer, results: tuple[CheckResult, ...], seconds: float,
               partial: bool) -> dict[str, Any]:
    """The meta block: seed, options, versions, references found and skipped (with reasons), timings, partial."""
    return {"seed": config.seed, "options": config.options(), "versions": versions(),
            **run_meta(config.references, producer, config.fail_on, results, seconds, partial),
            "requested_cases": config.cases}
