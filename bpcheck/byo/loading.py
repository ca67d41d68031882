"""Load a user's function from "path/to/file.py:function" and call it under a time limit.

Every failure is a UserFunctionError with one line naming what went wrong and the fix; when the
user's own code raised, the last frame of its traceback (file, line, function, source line)
follows on a second line, so the user sees where without a traceback of bpcheck's.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from ..spec import UserFunctionError


class UserCallError(UserFunctionError):
    """The user's code raised (or hung): the message, then the last frame of its own traceback."""

    def __init__(self, message: str, frame: str = "") -> None:
        super().__init__(message + (f"\n    {frame}" if frame else ""))
        self.headline = message
        self.frame = frame


def last_frame(exc: BaseException) -> str:
    """'File "f.py", line 3, in grads: return 1 / 0' for the innermost frame of exc's traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    f = frames[-1]
    code = f" : {f.line.strip()}" if f.line else ""
    return f'File "{f.filename}", line {f.lineno}, in {f.name}{code}'


def load_function(spec: str) -> Callable[..., Any]:
    """The function named by "path/to/file.py:function" (or "package.module:function").

    The file is run as a fresh module named after it, with its directory on sys.path so that its own
    imports resolve; `if __name__ == "__main__":` blocks do not run.
    """
    if not isinstance(spec, str) or spec.count(":") < 1 or not spec.rsplit(":", 1)[1].strip():
        raise UserFunctionError(f"{spec!r} does not name a function: write it as path/to/file.py:function")
    where, name = (part.strip() for part in spec.rsplit(":", 1))
    if where.endswith(".py") or os.sep in where or "/" in where:
        module = _load_file(where, spec)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise UserFunctionError(f"cannot import module {where!r} ({exc}): give path/to/file.py:function") from None
    fn = getattr(module, name, None)
    if fn is None:
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        from ..spec import suggest

        hint = suggest(name, found) or (f" (it defines {', '.join(found)})" if found else "")
        raise UserFunctionError(f"{where} has no function {name!r}{hint}: name a function defined in that file")
    if not callable(fn):
        raise UserFunctionError(f"{where}:{name} is a {type(fn).__name__}, not a function: name a function")
    return fn


def _load_file(path: str, spec: str):
    if not os.path.isfile(path):
        raise UserFunctionError(f"file {path!r} does not exist: give path/to/file.py:function (from {spec!r})")
    module_name = "bpcheck_user_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise UserFunctionError(f"cannot load {path!r} as Python: give a .py file")
    module = importlib.util.module_from_spec(loader_spec)
    folder = os.path.dirname(os.path.abspath(path))
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        loader_spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise UserFunctionError(f"{path} has a syntax error at line {exc.lineno}: {exc.msg}") from None
    except BaseException as exc:  # importing user code can fail in any way; say how, with its frame
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserCallError(f"importing {path} raised {type(exc).__name__}: {exc}", last_frame(exc)) from None
    finally:
        if added:
            sys.path.remove(folder)
    return module


def positional_arity(fn: Callable[..., Any]) -> int | None:
    """How many positional arguments fn takes without defaults (None if it takes *args or cannot tell)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    n = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            n += 1
    return n


class _Timeout(BaseException):
    """Raised inside the user's code by the alarm; a BaseException, so a bare `except Exception` in it cannot eat it."""


class Isolated:
    """A function that runs in another process (bpcheck.byo.isolation.RemoteFunction): call_user hands it the call
    and its time limit. The base class lives here so that this module need not import isolation, which imports it."""

    def call(self, args: tuple, *, name: str, timeout: float | None, want_args: bool = False) -> Any:
        raise NotImplementedError


def call_user(fn: Callable[..., Any], args: tuple, *, name: str, timeout: float | None = None,
              returned_args: bool = False) -> Any:
    """fn(*args); its exception becomes a UserCallError naming it, with the last frame.

    A function isolate()d into the worker process runs there (bpcheck.byo.isolation), the time limit
    kept by killing the worker. In this process, in the main thread an interval timer interrupts the
    call (Python code and sleeps; a long C call is interrupted when it returns); elsewhere the call
    runs in a daemon thread that is abandoned when it overruns. Either way an overrun raises
    UserCallError. returned_args=True gives (value, the arguments as the call left them).
    """
    if isinstance(fn, Isolated):
        return fn.call(args, name=name, timeout=timeout, want_args=returned_args)
    value = _call_here(fn, args, name, timeout)
    return (value, args) if returned_args else value


def _call_here(fn: Callable[..., Any], args: tuple, name: str, timeout: float | None) -> Any:
    if threading.current_thread() is threading.main_thread():
        with _CtrlC():
            return _alarmed(fn, args, name, timeout)
    if timeout is None:
        return _call(fn, args, name)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = _call(fn, args, name)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name=f"bpcheck-{name}")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise UserCallError(f"{name} did not return within timeout {timeout:g} s: it hangs, or give it more time")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _alarmed(fn: Callable[..., Any], args: tuple, name: str, timeout: float | None) -> Any:
    if timeout is None or not hasattr(signal, "setitimer"):
        return _call(fn, args, name)

    def alarm(signum, frame):
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return _call(fn, args, name)
    except _Timeout:
        raise UserCallError(f"{name} did not return within --timeout {timeout:g} s: it hangs, or give it more "
                            "time") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _CtrlC:
    """While a user's function runs in the main thread, tell a real Ctrl-C (or a SIGTERM, which bpcheck's CLI
    turns into one) from a KeyboardInterrupt that the function raised itself: only the first stops bpcheck."""

    watching = False
    seen = False

    def __enter__(self) -> _CtrlC:
        self.previous: dict[int, Any] = {}
        self.outermost = not _CtrlC.watching
        if not self.outermost:
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(sig)
            if callable(handler):
                self.previous[sig] = handler
                signal.signal(sig, self._noting(handler))
        _CtrlC.watching, _CtrlC.seen = True, False
        return self

    @staticmethod
    def _noting(handler: Callable[..., Any]) -> Callable[..., Any]:
        def note(signum, frame):
            _CtrlC.seen = True
            return handler(signum, frame)

        return note

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        if self.outermost:
            _CtrlC.watching = False


def _call(fn: Callable[..., Any], args: tuple, name: str) -> Any:
    try:
        # Overflow in a user's exp is theirs to decide on; a NaN or Inf that reaches the result is reported anyway.
        with np.errstate(all="ignore"):
            return fn(*args)
    except _Timeout:
        raise
    except KeyboardInterrupt as exc:
        if _CtrlC.seen or not _CtrlC.watching:
            raise
        raise UserCallError(f"{name} raised KeyboardInterrupt itself (not a Ctrl-C): let it return its result",
                            last_frame(exc)) from None
    except Exception as exc:  # the user's code may fail in any way: name it, show where
        raise UserCallError(f"{name} raised {type(exc).__name__}: {exc}", last_frame(exc)) from None
