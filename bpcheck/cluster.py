"""The Dask side of bpcheck.executors: --scheduler tcp://HOST:8786 (a running `dask scheduler`) or local:N (a
LocalCluster of N single-threaded worker processes, started and stopped here).

dask.distributed is the optional extra bpcheck[cluster]: this module is imported only for --scheduler, after
bpcheck.executors.require_dask checked that it is installed.
Set-up (imports, jax's x64 and compile cache) runs once per worker, from a WorkerPlugin, also on workers that
join later. Each worker runs one task at a time (local:N: threads_per_worker=1; a remote cluster should be
started with `dask worker --nthreads 1`), so a worker's death takes one chunk with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import dask
from distributed import Client, KilledWorker, LocalCluster, WorkerPlugin, as_completed

from .sigint import ignore_sigint
from .spec import UsageError

CONNECT_SECONDS = 10  # to reach a remote scheduler, and then to see its first worker
INFO_SECONDS = 2.0  # how often the worker count is asked again


class SetUp(WorkerPlugin):
    """setup() once on each worker, also on workers that join later; on the workers of a LocalCluster that we
    started (ours), a Ctrl-C to the process group is left to us."""

    name = "bpcheck-setup"

    def __init__(self, setup: Callable[[], None] | None, ours: bool):
        self.run_setup, self.ours = setup, ours

    def setup(self, worker: Any) -> None:
        if self.ours:
            try:
                ignore_sigint()
            except ValueError:  # not the main thread: nothing to change
                pass
        if self.run_setup is not None:
            self.run_setup()


class DaskBackend:
    """The executor protocol of bpcheck.executors over a dask.distributed Client."""

    kind = "dask"

    def __init__(self, where: tuple[str, Any], address: str, setup: Callable[[], None] | None):
        self.address, self.cluster = address, None
        self.log_levels = self._quiet()
        try:
            kind, value = where
            if kind == "local":
                # allowed-failures 0: a death fails the task at once and bpcheck.executors retries its items alone;
                # daemon False: a worker may start processes of its own (an isolated --engine).
                with dask.config.set({"distributed.scheduler.allowed-failures": 0, "distributed.worker.daemon": False}):
                    self.cluster = LocalCluster(n_workers=value, threads_per_worker=1, processes=True,
                                                dashboard_address=":0", host="127.0.0.1", silence_logs=logging.CRITICAL)
                self.client = Client(self.cluster)
            else:
                try:
                    self.client = Client(value, timeout=CONNECT_SECONDS)
                except (OSError, TimeoutError) as exc:
                    raise UsageError(f"--scheduler {value}: cannot reach a Dask scheduler there ({type(exc).__name__}): "
                                     "start one with `dask scheduler` or give its address") from None
                try:
                    self.client.wait_for_workers(1, timeout=CONNECT_SECONDS)
                except TimeoutError:
                    self.client.close()
                    raise UsageError(f"--scheduler {value}: the scheduler has no workers after {CONNECT_SECONDS} s: "
                                     f"start some with `dask worker {value} --nthreads 1`") from None
        except BaseException:
            self._restore_logs()
            raise
        self.client.register_plugin(SetUp(setup, ours=self.cluster is not None))
        self.done = as_completed()
        info = self.client.scheduler_info().get("workers") or {}
        self.workers, self.threads = max(1, len(info)), max(1, sum(w.get("nthreads", 1) for w in info.values()))
        self.asked = time.monotonic()

    def describe(self) -> dict[str, Any]:
        return {"kind": "dask", "scheduler": self.address, "workers": self.workers}

    def capacity(self) -> int:
        """Two chunks a worker: one running, one ready to go, so workers never wait on the round trip. The
        worker count is asked of the scheduler (a round trip) at most every INFO_SECONDS; workers may join."""
        now = time.monotonic()
        if now - self.asked >= INFO_SECONDS:
            self.asked = now
            try:
                info = self.client.scheduler_info().get("workers") or {}
            except Exception:  # the scheduler is gone: the futures say so, with the reason
                info = {}
            if info:
                self.workers, self.threads = len(info), sum(w.get("nthreads", 1) for w in info.values())
        return 2 * self.threads

    def submit(self, task, chunk: tuple[int, ...]) -> Any:
        future = self.client.submit(task, chunk, pure=False)
        self.done.add(future)
        return future

    def next_done(self, in_flight: dict) -> Any:
        return next(self.done)

    def outcome(self, future) -> tuple[str, Any]:
        if future.status == "finished":
            return "ok", future.result()
        if future.status not in ("error", "cancelled"):
            # done, then its result lost with the worker that held it (the scheduler has put it back to run):
            # let it go and hand the chunk out again, as if it had not started
            future.release()
            return "again", None
        if future.status == "cancelled":  # we cancel nothing while running: the client lost the scheduler
            return "lost", f"the Dask scheduler at {self.address} went away (the client lost its connection)"
        exc = future.exception()
        if isinstance(exc, KilledWorker):
            return "died", f"the Dask worker {exc.last_worker.address} died"
        if isinstance(exc, OSError):  # CommClosedError and friends: the scheduler or the network
            return "lost", f"the Dask scheduler at {self.address} went away ({type(exc).__name__}: {exc})"
        return "error", f"{type(exc).__name__}: {exc}"

    def recover(self) -> None:
        """Nothing to do: the scheduler replaces what died."""

    def close(self) -> None:
        try:
            self.client.cancel(list(self.done.futures), force=True)
        except Exception:  # the scheduler may be gone already: nothing left to cancel
            pass
        self.client.close(timeout=5)
        if self.cluster is not None:
            self.cluster.close(timeout=10)
        self._restore_logs()

    def _restore_logs(self) -> None:
        for name, level in self.log_levels.items():
            logging.getLogger(name).setLevel(level)

    @staticmethod
    def _quiet() -> dict[str, int]:
        """Silence distributed's loggers in this process, returning their levels. Every fault it would log here
        (a lost worker, a scheduler that is gone and the client's reconnect loop, with tracebacks) comes back to
        bpcheck as a future's state and is reported with its reason, in the report."""
        names = ["distributed", *(n for n in logging.root.manager.loggerDict if n.startswith("distributed."))]
        levels = {n: logging.getLogger(n).level for n in names}
        for n in names:
            logging.getLogger(n).setLevel(logging.CRITICAL)
        return levels
