"""The worker process that runs users' functions, so that what they do cannot touch bpcheck's own process.

bpcheck.byo.isolation starts it (`python -c ... main(read_fd, write_fd)`) in a session of its own and
talks to it over two pipes: length-prefixed pickles. Requests (from bpcheck, trusted) are cloudpickles:

    ("path", sys.path)                                -> no reply: import what the parent imports
    ("load", key, name, ("spec", "f.py:fn") | ("pickle", bytes))  -> ("loaded", name, arity) | ("error", ...)
    ("call", key, args, want_args)                    -> ("ok", value, args after the call) | ("error", ...)

Replies hold only plain data (dicts, lists, tuples, numbers, strings, numpy arrays and scalars;
anything else becomes a Foreign naming its type), so the parent can unpickle them with an
allow-list. Between requests the worker puts back what a user's function may have changed in
the process (working directory, sys.stdout/stderr, the recursion limit); a KeyboardInterrupt or
SystemExit raised by user code is that code's error; a fork's child is stopped at once and the
call reported (a gradient function has no reason to fork, and a loop of forks would be a bomb).
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
from typing import Any

HEADER = struct.Struct(">Q")
MAX_MESSAGE = 1 << 30  # a reply larger than this is not a gradient


class Foreign:
    """A value of a type the parent does not unpickle: only its type's name crosses."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __reduce__(self):
        return (Foreign, (self.type_name,))

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


def plain(value: Any, depth: int = 0) -> Any:
    """value as plain data: containers rebuilt, arrays as base ndarrays of a numeric dtype, the rest Foreign."""
    import numpy as np

    if depth > 20:
        return Foreign(type(value).__name__)
    if value is None or type(value) in (bool, int, float, complex, str):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biufc":
        return value
    if isinstance(value, np.ndarray):
        return np.array(value, copy=True, subok=False) if value.dtype.kind in "biufc" else Foreign("ndarray of objects")
    if type(value) is dict:
        return {(k if type(k) is str else repr(k)): plain(v, depth + 1) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(plain(v, depth + 1) for v in value)
    return Foreign(type(value).__name__)


def send(fd: int, message: Any, dumps=pickle.dumps) -> None:
    data = dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def receive_blocking(fd: int) -> Any:
    """The next request, or None when bpcheck closed the pipe (it exited or was killed)."""
    head = _read(fd, HEADER.size)
    if head is None:
        return None
    body = _read(fd, HEADER.unpack(head)[0])
    return None if body is None else pickle.loads(body)


def _read(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class _Forks:
    count = 0
    pid = 0


def _before_fork() -> None:
    # Reap the children stopped so far, so a loop of forks leaves no zombies behind while it runs.
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _after_fork_in_parent() -> None:
    _Forks.count += 1


def _after_fork_in_child() -> None:
    os._exit(70)


def _die_with_parent() -> None:
    """End this worker when bpcheck dies (SIGKILL gives it no chance to), even while user code never returns.

    A thread polls the parent's pid rather than PR_SET_PDEATHSIG, which fires when the *thread* that started
    the worker ends (a pool thread of the caller's, say), not the process."""
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="bpcheck-watch-parent").start()


class _Restore:
    """What a user's function may change in the process, put back after each request."""

    def __enter__(self) -> _Restore:
        self.cwd = os.getcwd()
        self.streams = (sys.stdin, sys.stdout, sys.stderr)
        self.limit = sys.getrecursionlimit()
        self.forks = _Forks.count
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.setrecursionlimit(self.limit)
        sys.stdin, sys.stdout, sys.stderr = self.streams
        try:
            os.chdir(self.cwd)
        except OSError:
            pass

    @property
    def forked(self) -> int:
        return _Forks.count - self.forks


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:  # a hostile __str__
        return f"<unprintable {type(exc).__name__}>"


def _load(name: str, how: str, payload: Any):
    if how == "spec":
        fn = loading.load_function(payload)
    else:
        import cloudpickle  # noqa: F401  (functions pickled by value need it to unpickle)

        data, files = pickle.loads(payload)
        fn = pickle.loads(data)
        _refile(fn, files)
    return fn, loading.positional_arity(fn)


def _refile(fn: Any, files: dict[str, str]) -> None:
    """Give fn and the functions of its module it refers to their source file back (cloudpickle drops it)."""
    import types

    seen = [fn, *getattr(fn, "__globals__", {}).values(),
            *(c.cell_contents for c in (getattr(fn, "__closure__", None) or ()) if _filled(c))]
    for f in seen:
        path = files.get(getattr(f, "__module__", None) or "")
        if isinstance(f, types.FunctionType) and path and f.__code__.co_filename == "<dynamic-code>":
            f.__code__ = _with_file(f.__code__, path)


def _with_file(code: Any, path: str) -> Any:
    consts = tuple(_with_file(c, path) if hasattr(c, "co_filename") else c for c in code.co_consts)
    return code.replace(co_filename=path, co_consts=consts)


def _filled(cell: Any) -> bool:
    try:
        return cell.cell_contents is not cell
    except ValueError:
        return False


def _handle(request: tuple, functions: dict[Any, Any]) -> tuple:
    UserCallError, _call, last_frame = loading.UserCallError, loading._call, loading.last_frame
    kind, key = request[0], request[1]
    with _Restore() as state:
        try:
            if kind == "load":
                name, (how, payload) = request[2], request[3]
                try:
                    fn, arity = _load(name, how, payload)
                except Exception as exc:  # cannot unpickle: the parent runs it in its own process instead
                    if how == "pickle":
                        return ("unloadable", f"{type(exc).__name__}: {_text(exc)}")
                    raise
                functions[key] = (fn, name)
                return ("loaded", arity)
            fn, name = functions[key]
            args, want_args = request[2], request[3]
            value = _call(fn, args, name)
        except UserCallError as exc:
            return ("error", "UserCallError", exc.headline, exc.frame)
        except SystemExit as exc:
            return ("error", "UserCallError", f"{name} raised SystemExit({exc.code!r}) (sys.exit): a gradient function "
                    "must return its result, not exit", last_frame(exc))
        except KeyboardInterrupt as exc:
            return ("error", "UserCallError", f"{name} raised KeyboardInterrupt itself (not a Ctrl-C): let it "
                    "return its result", last_frame(exc))
        except Exception as exc:  # load_function's one-line errors, or the user's import failing
            headline = getattr(exc, "headline", None) or _text(exc)
            return ("error", type(exc).__name__, headline, getattr(exc, "frame", ""))
    if state.forked:
        return ("error", "UserCallError", f"{name} called os.fork() ({state.forked} time(s)): bpcheck's worker stopped "
                "each child at once; a gradient function must not fork", "")
    return ("ok", plain(value), plain(args) if want_args else None)


loading: Any = None  # bpcheck.byo.loading, imported by main()


def main(read_fd: int, write_fd: int) -> None:
    """Serve requests until bpcheck closes the pipe; then exit at once, whatever threads user code left.

    The launcher (worker_process.LAUNCH) put a bare bpcheck.byo package in sys.modules, so that start-up
    imports only what the worker needs, not bpcheck.byo's checking machinery; once loading is in, the
    bare package goes, and user code that imports bpcheck.byo gets the real one."""
    global loading
    from . import loading as _loading

    loading = _loading
    if not hasattr(sys.modules.get("bpcheck.byo"), "check_gradients"):
        sys.modules.pop("bpcheck.byo", None)
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is bpcheck's to handle, in the parent
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
    reply_fd = os.dup(write_fd)  # user code that closes low fds by number should not hit the pipe by chance
    os.close(write_fd)
    functions: dict[Any, Any] = {}
    while True:
        request = receive_blocking(read_fd)
        if request is None:
            os._exit(0)
        if request[0] == "path":
            sys.path[:] = request[1]
            continue
        try:
            reply = _handle(request, functions)
            try:
                send(reply_fd, reply)
            except Exception as exc:  # a reply that cannot be pickled after all
                name = functions.get(request[1], (None, "the function"))[1]
                send(reply_fd, ("error", "UserCallError", f"{name} returned a value bpcheck cannot read "
                                f"({type(exc).__name__}): return a dict of numpy arrays", ""))
        except BaseException:  # the pipe is gone or the process is broken: nothing left to serve
            os._exit(3)
