"""Where the work runs: in this process (--jobs 1), in a pool of spawned processes (--jobs N, the standard
library's ProcessPoolExecutor), or on a Dask cluster (--scheduler tcp://HOST:8786, or local:N for a LocalCluster).

    with Runner(jobs=2) as runner:                 # or Runner(scheduler="local:2") / Runner(scheduler="tcp://...")
        stop = runner.run(task, items, on_result, on_lost, setup=setup, item_seconds=0.007)

task(chunk) -> [(item, value), ...] runs in a worker; it and setup must pickle (module-level functions, or a
functools.partial of one). The results do not depend on the runner: every item is a pure function of itself,
and callers order what they get by item. Faults:
  * a worker that dies takes its chunk with it. Each item of that chunk is then retried once, alone, with
    nothing else in flight, so a second death is that item's own: on_lost(item, reason) stands in for its value;
  * a task that raises: on_lost for each of its items, with the exception;
  * the Dask scheduler going away: run() cancels what is in flight and returns the reason (the run is partial);
  * Ctrl-C: everything in flight is cancelled, the workers are shut down, KeyboardInterrupt propagates.
"""

from __future__ import annotations

import importlib.util
import math
import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Sequence
from concurrent import futures as cf
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .sigint import ignore_sigint
from .spec import UsageError

Task = Callable[[tuple[int, ...]], list[tuple[int, Any]]]
# Chunks are sized so that the executor's per-task cost stays under this fraction of the work in the chunk.
MAX_OVERHEAD_FRACTION = 0.05
# ...but every worker still gets this many chunks (when there are cases enough), so that the last
# chunks do not leave workers idle: balance wins over overhead for small runs.
CHUNKS_PER_WORKER = 4
# Per-task cost of a round trip, measured by benchmarks/bench_cluster.py on a loaded 2-core machine:
# ProcessPoolExecutor 0.1 ms, a Dask LocalCluster 3-4 ms (scheduler, two TCP hops, bookkeeping).
TASK_SECONDS = {"processes": 0.0001, "dask": 0.004}
# Items that killed their worker even when retried alone, in a row: then the workers are not the problem
# (a broken install, a producer that always crashes) and the rest is ERROR at once instead of one death each.
MAX_DEATHS_IN_A_ROW = 3


def chunk_size(items: int, workers: int, task_seconds: float, item_seconds: float) -> int:
    """Items per task: enough that task_seconds <= MAX_OVERHEAD_FRACTION of the chunk's work, capped so that
    each worker gets CHUNKS_PER_WORKER chunks."""
    by_overhead = math.ceil(task_seconds / (MAX_OVERHEAD_FRACTION * item_seconds))
    by_balance = max(1, items // (CHUNKS_PER_WORKER * max(1, workers)))
    return max(1, min(by_overhead, by_balance))


def parse_scheduler(text: str | None) -> tuple[str, int | str] | None:
    """--scheduler: ('local', N) for local:N, ('remote', address) for scheme://host:port; None for no scheduler."""
    if text is None:
        return None
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"--scheduler {text!r} is empty: give tcp://HOST:8786 (a running `dask scheduler`) or local:N")
    text = text.strip()
    if text.startswith("local:"):
        n = text[len("local:"):]
        if not n.isdigit() or int(n) < 1:
            raise UsageError(f"--scheduler {text!r}: give local:N with N >= 1 worker processes, e.g. local:2")
        return "local", int(n)
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme.isalnum() or not rest or rest.startswith(":"):
        raise UsageError(f"--scheduler {text!r} is not a scheduler address: give tcp://HOST:8786 or local:N")
    return "remote", text


def require_dask() -> None:
    """A one-line UsageError (exit 2) with the install line when dask.distributed is missing."""
    if importlib.util.find_spec("distributed") is None:
        raise UsageError("--scheduler needs dask.distributed, which is not installed: "
                         "pip install 'bpcheck[cluster]' (or dask[distributed])")


def _pool_initializer(setup: Callable[[], None] | None) -> None:
    ignore_sigint()
    if setup is not None:
        setup()


class _NotStarted(Exception):
    """A chunk handed to a pool that had already broken."""


class _Pool:
    """--jobs N: a ProcessPoolExecutor of spawned processes. A worker's death breaks the whole pool (every future
    in flight fails with BrokenProcessPool), so in flight is at most one chunk per worker: those are the suspects,
    and a fresh pool takes over once they are all collected."""

    kind = "processes"

    def __init__(self, jobs: int, setup: Callable[[], None] | None):
        self.jobs, self.setup = jobs, setup
        self.pool = self._new()
        self.workers = jobs
        self.processes: dict[int, Any] = {}  # pid -> Process, of the current pool

    def _new(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_pool_initializer, initargs=(self.setup,))

    def describe(self) -> dict[str, Any]:
        return {"kind": "processes", "workers": self.jobs}

    def capacity(self) -> int:
        return self.jobs

    def submit(self, task: Task, chunk: tuple[int, ...]) -> Any:
        try:
            future = self.pool.submit(task, chunk)
        except BrokenProcessPool:  # broke after our last look: the chunk did not start, it goes back in line
            future = cf.Future()
            future.set_exception(_NotStarted())
        # The executor's private process table, kept here: once broken, it empties its own before we look.
        self.processes.update(getattr(self.pool, "_processes", None) or {})
        return future

    def next_done(self, in_flight: dict) -> Any:
        done, _ = cf.wait(list(in_flight), return_when=cf.FIRST_COMPLETED)
        return next(iter(done))

    def outcome(self, future) -> tuple[str, Any]:
        exc = future.exception()
        if exc is None:
            return "ok", future.result()
        if isinstance(exc, _NotStarted):
            return "again", None
        if isinstance(exc, BrokenProcessPool):
            self.pool.shutdown(wait=True, cancel_futures=True)  # joins its workers: their exit codes are in
            return "died", f"the worker process died ({self._exit_codes() or exc})"
        return "error", f"{type(exc).__name__}: {exc}"

    def _exit_codes(self) -> str:
        # The dead one's signal, not the SIGTERM that the executor sends the others once broken.
        codes = [p.exitcode for p in list(self.processes.values()) if p.exitcode not in (None, 0, -signal.SIGTERM)]
        return ", ".join(f"signal {-c}" if c < 0 else f"exit code {c}" for c in codes)

    def recover(self) -> None:
        if getattr(self.pool, "_broken", False):
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool, self.processes = self._new(), {}

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class Runner:
    """One of: this process, a process pool, a Dask cluster; see the module docstring."""

    def __init__(self, jobs: int = 1, scheduler: str | None = None):
        self.jobs, self.scheduler = jobs, parse_scheduler(scheduler)
        self.address = scheduler
        if self.scheduler is not None and jobs != 1:
            raise UsageError(f"--jobs {jobs} and --scheduler {scheduler} both say where to run: give one of them")
        if self.scheduler is not None:
            require_dask()
        self.meta: dict[str, Any] = {"kind": "this process", "workers": 1}
        self._open: Any = None  # the backend, kept open between runs until close()

    def check_sendable(self, value: Any, name: str) -> None:
        """A UsageError before any work when value cannot travel to the workers (the pool pickles, Dask
        cloudpickles)."""
        if not self.parallel:
            return
        import pickle

        dumps = pickle.dumps
        if self.scheduler is not None:
            import cloudpickle

            dumps = cloudpickle.dumps
        try:
            dumps(value)
        except Exception as exc:
            where = f"--scheduler {self.address}" if self.scheduler else f"--jobs {self.jobs}"
            raise UsageError(f"{where} sends {name} to worker processes, but it cannot be pickled "
                             f"({type(exc).__name__}: {exc}): make it a module-level function, or run in one "
                             "process (--jobs 1)") from None

    @property
    def parallel(self) -> bool:
        return self.jobs > 1 or self.scheduler is not None

    def _backend(self, setup: Callable[[], None] | None):
        if self.scheduler is not None:
            from .cluster import DaskBackend

            return DaskBackend(self.scheduler, self.address, setup)
        return _Pool(self.jobs, setup)

    def run(self, task: Task, items: Sequence[int], on_result: Callable[[int, Any], None],
            on_lost: Callable[[int, str], None], *, setup: Callable[[], None] | None = None,
            item_seconds: float = 0.01) -> str | None:
        """Every item through task; the reason when the run stopped early (scheduler gone), else None."""
        if not self.parallel:
            for item in items:
                for got, value in task((item,)):
                    on_result(got, value)
            return None
        if self._open is None:
            self._open = self._backend(setup)
        stopped: str | None = "failed"
        try:
            stopped = _drive(self._open, task, items, on_result, on_lost, item_seconds, self.meta)
            return stopped
        finally:
            if stopped is not None:  # the scheduler is gone, Ctrl-C, or a bug: nothing to keep
                self.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (a with block does it): they are kept between runs, with their set-up done."""
        if self._open is not None:
            backend, self._open = self._open, None
            backend.close()


def _drive(backend, task: Task, items: Sequence[int], on_result, on_lost, item_seconds: float,
           meta: dict[str, Any]) -> str | None:
    size = chunk_size(len(items), backend.workers, TASK_SECONDS[backend.kind], item_seconds)
    meta.clear()
    meta.update(backend.describe(), chunk=size)
    chunks = deque(tuple(items[i:i + size]) for i in range(0, len(items), size))
    alone: deque[int] = deque()  # items of a chunk whose worker died: retried one at a time
    in_flight: dict[Any, tuple[tuple[int, ...], bool]] = {}  # future -> (chunk, is it a retry)
    deaths = 0
    while chunks or alone or in_flight:
        if alone:
            if not in_flight:
                chunk = (alone.popleft(),)
                in_flight[backend.submit(task, chunk)] = (chunk, True)
        else:
            while chunks and len(in_flight) < backend.capacity():
                chunk = chunks.popleft()
                in_flight[backend.submit(task, chunk)] = (chunk, False)
        future = backend.next_done(in_flight)
        chunk, retry = in_flight.pop(future)
        kind, value = backend.outcome(future)
        if kind == "ok":
            deaths = 0
            for item, result in value:
                on_result(item, result)
        elif kind == "lost":
            return value
        elif kind == "again":
            alone.appendleft(chunk[0]) if retry else chunks.appendleft(chunk)
        elif kind == "died" and not retry:
            alone.extend(chunk)
        else:
            why = (f"{value} while checking this case, and again when it was retried alone" if kind == "died"
                   else f"checking this case raised {value}")
            for item in chunk:
                on_lost(item, why)
            deaths += kind == "died"
            if deaths >= MAX_DEATHS_IN_A_ROW:
                rest = [*alone, *(i for c in chunks for i in c)]
                alone.clear(), chunks.clear()
                for item in rest:
                    on_lost(item, f"not checked: {deaths} cases in a row killed their worker even when retried alone "
                                  f"(the last: {value})")
        if not in_flight:
            backend.recover()
    return None

