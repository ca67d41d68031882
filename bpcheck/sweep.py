"""The sweep: draw N cases from (seed, i), check each against every reference, in one or more processes.

    config = SweepConfig(cases=200, seed=0, jobs=2)
    run = run_sweep(config, progress=lambda done, total, result: ...)   # RunResult, sorted by case index

Case i is bpcheck.draw.draw_case(seed, i), so the results do not depend on --jobs: workers
check whatever index they are handed and the parent sorts by index. jobs > 1 runs spawn
processes in our own loop rather than a ProcessPoolExecutor, because an executor breaks as a
whole when one worker dies; here a dead worker's case becomes ERROR, a fresh worker takes its
place, and the rest completes. Ctrl-C (KeyboardInterrupt in the parent) stops the workers and
returns the finished cases with meta['partial'] = True. Workers ignore SIGINT, so a Ctrl-C
sent to the whole process group is handled once, by the parent.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from . import __version__, engine
from . import references as refs
from .check import Producer, check_case, producer_name, run_meta
from .draw import draw_case
from .results import DEFAULT_FAIL_ON, LABELS, CheckResult, RunResult
from .spec import UsageError, suggest
from .strategies import DTYPE_NAMES, REGIMES, target_kinds

Progress = Callable[[int, int, CheckResult], None]
# Test hook, read only by the worker entry point: the worker checking this case index kills itself.
KILL_HOOK = "BPCHECK_TEST_KILL_CASE"
MAX_FRESH_DEATHS = 3


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
    fail_on: tuple[str, ...] = DEFAULT_FAIL_ON
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
        target_kinds(self.targets)
        return self

    def draw(self, index: int):
        return draw_case(self.seed, index, regimes=self.regimes, dtypes=self.dtypes,
                         max_depth=self.max_depth, max_width=self.max_width, targets=self.targets)

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
                       case.to_dict(), (), "ERROR", False, producer_name(producer), config.fail_on, error=message)


def _worker_main(conn, config: SweepConfig, producer: Producer) -> None:
    """Check the indices the parent sends, one at a time, until it sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kill = os.environ.get(KILL_HOOK)
    while True:
        index = conn.recv()
        if index is None:
            return
        if kill is not None and int(kill) == index:
            os.kill(os.getpid(), signal.SIGKILL)
        conn.send((index, check_index(config, index, producer).to_dict()))


class _Workers:
    """jobs spawn processes, each fed one case index at a time over its own pipe."""

    def __init__(self, config: SweepConfig, producer: Producer):
        self.config, self.producer = config, producer
        self.ctx = multiprocessing.get_context("spawn")
        self.busy: dict[Any, tuple[Any, int | None]] = {}  # conn -> (process, index it is checking)
        self.served: dict[Any, bool] = {}  # conn -> has it returned a result yet

    def start(self) -> Any:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_main, args=(child, self.config, self.producer), daemon=True)
        proc.start()
        child.close()
        self.busy[parent] = (proc, None)
        return parent

    def give(self, conn, index: int | None) -> None:
        proc, _ = self.busy[conn]
        self.busy[conn] = (proc, index)
        conn.send(index)

    def stop(self) -> None:
        for conn, (proc, _) in list(self.busy.items()):
            proc.terminate()
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()
        self.busy.clear()


def _run_processes(config: SweepConfig, producer: Producer, done: dict[int, CheckResult], report: Callable) -> None:
    pending = deque(range(config.cases))
    pool = _Workers(config, producer)
    fresh_deaths = 0
    try:
        for _ in range(min(config.jobs, config.cases)):
            pool.give(pool.start(), pending.popleft())
        while pool.busy:
            sentinels = {proc.sentinel: conn for conn, (proc, _) in pool.busy.items()}
            for ready in wait([*pool.busy, *sentinels]):
                conn = sentinels.get(ready, ready)
                if conn not in pool.busy:
                    continue
                proc, index = pool.busy[conn]
                try:
                    got, data = conn.recv()
                except (EOFError, OSError):  # the worker died: its case is ERROR, a fresh one takes over
                    proc.join()
                    del pool.busy[conn]
                    conn.close()
                    if index is not None:
                        code = proc.exitcode
                        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                        report(index, _error_result(config, index, producer,
                                                    f"the worker process died ({how}) while checking this case"))
                    if index is not None and not pool.served.get(conn):
                        fresh_deaths += 1
                    if fresh_deaths >= MAX_FRESH_DEATHS:  # workers die before their first result: stop restarting
                        while pending:
                            i = pending.popleft()
                            report(i, _error_result(config, i, producer, "not checked: worker processes kept dying "
                                                    "before their first result (see stderr)"))
                    if pending:
                        pool.give(pool.start(), pending.popleft())
                    continue
                pool.served[conn] = True
                report(got, CheckResult.from_dict(data))
                if pending:
                    pool.give(conn, pending.popleft())
                else:  # nothing left for it: let it exit
                    conn.send(None)
                    proc.join(10)
                    del pool.busy[conn]
                    conn.close()
    finally:
        pool.stop()


def run_sweep(config: SweepConfig, producer: Producer = engine.gradients, *,
              progress: Progress | None = None) -> RunResult:
    """Check config.cases drawn cases; results sorted by case index; Ctrl-C gives a partial RunResult.

    jobs > 1 needs a picklable producer (a module-level function).
    """
    config.validate()
    done: dict[int, CheckResult] = {}
    start = time.perf_counter()

    def report(index: int, result: CheckResult) -> None:
        done[index] = result
        if progress is not None:
            progress(len(done), config.cases, result)

    partial = False
    try:
        if config.jobs == 1:
            for index in range(config.cases):
                report(index, check_index(config, index, producer))
        else:
            _run_processes(config, producer, done, report)
    except KeyboardInterrupt:
        partial = True
    results = tuple(done[i] for i in sorted(done))
    meta = sweep_meta(config, producer, results, time.perf_counter() - start, partial)
    meta["case_indices"] = sorted(done)
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
