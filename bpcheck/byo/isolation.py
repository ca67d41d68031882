"""Run a user's function in a worker process (bpcheck.byo.worker), not in bpcheck's own.

    fn = isolate(grad_fn, timeout=60)          # or isolate("path/to/file.py:grads", ...)
    call_user(fn, args, name=..., timeout=...)  # (bpcheck.byo.loading) sends the call to the worker

A user's code may exit, kill its process, hang with SIGALRM ignored, monkey-patch numpy, fork,
chdir, close stdout or leave threads running: in the worker none of that reaches the comparison,
which runs here on the arrays the worker sent back. One worker serves every call of a process (it
starts on first use and is restarted after it dies); bpcheck kills it, with everything it forked,
on a timeout and at exit. Functions go by value (cloudpickle), so closures, lambdas and functions
defined inside a test work; one that cannot be sent runs here, with one IsolationWarning saying so.
Replies are unpickled with an allow-list (plain data and numpy arrays), so a crafted reply cannot
run code here either.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import pickle
import signal
import sys
import warnings
from collections.abc import Callable
from typing import Any

from ..spec import DEFAULT_TIMEOUT, UserFunctionError
from .loading import Isolated, UserCallError, load_function
from .worker_process import Worker, WorkerDied, WorkerOverran, shared_worker

__all__ = ["DEFAULT_TIMEOUT", "IsolationWarning", "RemoteFunction", "Worker", "isolate", "shared_worker"]


class IsolationWarning(UserWarning):
    """A user's function could not be sent to the worker process and runs in bpcheck's own process."""


class RemoteFunction(Isolated):
    """A user's function living in the worker; call_user sends its calls there. Its signature has the
    function's positional arity, so the checks that read it (takes_arch) work unchanged."""

    def __init__(self, worker: Worker, key: str, name: str, payload: tuple, arity: int | None) -> None:
        self.worker, self.key, self.payload = worker, key, payload
        self.__qualname__ = self.__name__ = name
        kind = inspect.Parameter.POSITIONAL_ONLY
        self.__signature__ = inspect.Signature(
            [inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL)] if arity is None
            else [inspect.Parameter(f"arg{i}", kind) for i in range(arity)])

    def call(self, args: tuple, *, name: str, timeout: float | None, want_args: bool = False) -> Any:
        """fn(*args) in the worker: its value (and the arguments as the call left them, when want_args)."""
        try:
            reply = self.worker.ensure(self.key, name, self.payload, timeout)
            if reply[0] == "loaded":
                reply = self.worker.request(("call", self.key, args, want_args), timeout)
        except WorkerOverran:
            raise UserCallError(f"{name} did not return within --timeout {timeout:g} s: it hangs, or give it more "
                                "time (bpcheck killed the worker process running it)") from None
        except WorkerDied:
            raise UserCallError(f"{name} ended bpcheck's worker process ({_how(self.worker.stop())}) instead of "
                                "returning: a gradient function must return its result") from None
        if reply[0] == "ok":
            return (reply[1], reply[2]) if want_args else reply[1]
        raise _error(reply)

    def __call__(self, *args: Any) -> Any:
        return self.call(args, name=self.__qualname__, timeout=DEFAULT_TIMEOUT)

    def __reduce__(self):
        # Into a --jobs process: that process sends the same payload to its own worker.
        return (_rebuild, (self.key, self.__qualname__, self.payload, self.__signature__))


def _rebuild(key: str, name: str, payload: tuple, signature: inspect.Signature) -> RemoteFunction:
    fn = RemoteFunction(shared_worker(), key, name, payload, 0)
    fn.__signature__ = signature
    return fn


def _how(code: int | None) -> str:
    if code is None:
        return "it stopped"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}, as os._exit({code}) or a crash gives"


def _error(reply: tuple) -> UserFunctionError:
    kind, headline, frame = (str(x) for x in reply[1:4]) if len(reply) >= 4 else ("", str(reply), "")
    if kind == "UserCallError" or frame:
        return UserCallError(headline, frame)
    return UserFunctionError(headline)


def isolate(fn: Callable[..., Any] | str, *, timeout: float | None = DEFAULT_TIMEOUT, in_process: bool = False,
            worker: Worker | None = None) -> Callable[..., Any]:
    """fn (a function, or "path/to/file.py:function") as a RemoteFunction in the worker; in_process=True,
    or a function that cannot be sent (then an IsolationWarning says so), gives it back to run here."""
    if isinstance(fn, RemoteFunction):
        return fn
    if in_process:
        return load_function(fn) if isinstance(fn, str) else fn
    if isinstance(fn, str):
        payload, name = ("spec", fn), fn.rsplit(":", 1)[-1].strip()
    else:
        from .calls import function_name

        name = function_name(fn)
        try:
            payload = ("pickle", _by_value(fn))
        except Exception as exc:  # cloudpickle cannot send it: say so once, run it here
            return _fallback(fn, name, f"{type(exc).__name__}: {exc}")
    key = hashlib.sha1(repr((payload, _stamp(fn))).encode() if payload[0] == "spec" else payload[1]).hexdigest()
    key += ":" + name
    worker = worker or shared_worker()
    try:
        reply = worker.ensure(key, name, payload, timeout)
    except WorkerOverran:
        raise UserCallError(f"loading {name} did not return within --timeout {timeout:g} s: its file hangs when "
                            "imported, or give it more time") from None
    except WorkerDied:
        raise UserCallError(f"loading {name} ended bpcheck's worker process ({_how(worker.stop())}): its file must "
                            "import without exiting") from None
    if reply[0] == "unloadable":
        return _fallback(fn, name, str(reply[1]))
    if reply[0] != "loaded":
        raise _error(reply)
    return RemoteFunction(worker, key, name, payload, reply[1])


def _stamp(spec: str) -> tuple:
    """The file's size and mtime: a file rewritten in one process is loaded again, not served from before."""
    try:
        st = os.stat(spec.rpartition(":")[0])
    except OSError:
        return ()
    return (st.st_size, st.st_mtime_ns)


def _fallback(fn: Callable[..., Any], name: str, why: str) -> Callable[..., Any]:
    warnings.warn(f"{name} cannot be sent to bpcheck's worker process ({why[:200]}); it runs in bpcheck's own "
                  "process, trusted: make it a module-level function, or pass in_process=True to say so",
                  IsolationWarning, stacklevel=3)
    return fn


def _by_value(fn: Callable[..., Any]) -> bytes:
    """cloudpickle of fn, with its module's code sent by value (a test module the worker cannot import), and
    the module's file name."""
    import cloudpickle

    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    own = module is None or module.__name__ in ("__main__", "builtins") or module.__name__.split(".")[0] in (
        "bpcheck", "numpy")
    if not own:
        cloudpickle.register_pickle_by_value(module)
    try:
        data = cloudpickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        if not own:
            cloudpickle.unregister_pickle_by_value(module)
    # cloudpickle drops the source file name; the worker puts it back, so a traceback names the user's file.
    code = getattr(fn, "__code__", None)
    files = {fn.__module__: code.co_filename} if code is not None and getattr(fn, "__module__", None) else {}
    return pickle.dumps((data, files))
