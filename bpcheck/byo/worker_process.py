"""The parent's side of bpcheck's worker process (bpcheck.byo.worker is the child's): start it, send it a
request, read its reply within a time limit, and kill it with everything it forked on a timeout and at exit.
Replies are unpickled with an allow-list (plain data and numpy arrays), so a crafted reply cannot run code here.
"""

from __future__ import annotations

import atexit
import io
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from typing import Any

from . import worker as child

_ALLOWED = {
    ("builtins", "complex"), ("builtins", "slice"), ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("bpcheck.byo.worker", "Foreign"),
}


class _Replies(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (module.startswith("numpy") and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


class WorkerDied(Exception):
    """The worker ended (or broke the protocol) while serving a request."""


class WorkerOverran(Exception):
    """The worker did not answer within the time limit."""


# The worker's start: this bpcheck first on the path, and a bare bpcheck.byo package (worker.main explains why).
LAUNCH = ("import sys, types; sys.path.insert(0, {root!r}); import bpcheck; "
          "byo = types.ModuleType('bpcheck.byo'); byo.__path__ = [{byo!r}]; sys.modules['bpcheck.byo'] = byo; "
          "from bpcheck.byo.worker import main; main({r}, {w})")


class Worker:
    """One worker process, started on first use and again after it died or was killed; one per run (a
    check_gradients call, a --engine producer), so that what one run's function did to its process (a
    patched numpy, say) cannot reach another run's."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.loaded: dict[str, tuple] = {}  # key -> the load's reply, in the running worker
        self.lock = threading.RLock()

    def _start(self) -> None:
        from_parent, to_child = os.pipe()
        from_child, to_parent = os.pipe()
        here = os.path.dirname(os.path.abspath(__file__))
        code = LAUNCH.format(root=os.path.dirname(os.path.dirname(here)), byo=here, r=from_parent, w=to_parent)
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(from_parent, to_parent),
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            os.close(from_parent)
            os.close(to_parent)
        _running.add(self)
        self.wfd, self.rfd = to_child, from_child
        self.loaded = {}
        child.send(self.wfd, ("path", list(sys.path)))

    def __del__(self) -> None:
        try:
            self.stop()
        except Exception:  # at interpreter exit the modules it needs may be gone
            pass

    def stop(self) -> int | None:
        """Kill the worker and everything it forked (its process group); its exit code, or None if none ran."""
        with self.lock:
            proc, self.proc = self.proc, None
            if proc is None:
                return None
            for fd in (self.wfd, self.rfd):
                try:
                    os.close(fd)
                except OSError:
                    pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if proc.poll() is None:
                proc.kill()
            return proc.wait()

    def request(self, message: tuple, timeout: float | None) -> tuple:
        """Send message, wait for the reply; WorkerDied or WorkerOverran (after which the worker is gone)."""
        with self.lock:
            if self.proc is None:
                self._start()
            try:
                child.send(self.wfd, message, dumps=_dumps)
                return self._receive(None if timeout is None else time.monotonic() + timeout)
            except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
                raise WorkerDied(str(exc)) from None
            except BaseException:  # a Ctrl-C while waiting, or a timeout: the worker may be mid-call
                self.stop()
                raise

    def _receive(self, deadline: float | None) -> tuple:
        head = self._read(child.HEADER.size, deadline)
        size = child.HEADER.unpack(head)[0]
        if size > child.MAX_MESSAGE:
            raise ValueError(f"a reply of {size} bytes")
        reply = _Replies(io.BytesIO(self._read(size, deadline))).load()
        if not isinstance(reply, tuple) or not reply:
            raise ValueError("a reply that is not a tuple")
        return reply

    def _read(self, n: int, deadline: float | None) -> bytes:
        chunks = []
        while n:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self.rfd], [], [], wait)[0]:
                raise WorkerOverran
            chunk = os.read(self.rfd, min(n, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def ensure(self, key: str, name: str, payload: tuple, timeout: float | None) -> tuple:
        """Load payload under key in the current worker (again after a restart); the load's reply."""
        with self.lock:
            if self.proc is not None and key in self.loaded:
                return self.loaded[key]
            reply = self.request(("load", key, name, payload), timeout)
            if reply[0] == "loaded":
                self.loaded[key] = reply
            return reply


def _dumps(message: Any, protocol: int) -> bytes:
    import cloudpickle

    return cloudpickle.dumps(message, protocol=protocol)


_running: weakref.WeakSet[Worker] = weakref.WeakSet()
_shared: Worker | None = None
_shared_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    for worker in list(_running):
        worker.stop()


def shared_worker() -> Worker:
    """The worker of RemoteFunctions unpickled in this process (a --jobs process: one run), stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Worker()
        return _shared
