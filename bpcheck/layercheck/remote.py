"""Running a user's layer: forward, backward and the cache they share stay in the worker process.

    user = UserLayer(forward, backward, form="course", timeout=60)      # or form "loss", "torch", "jax"
    [run] = user.run([pair(arrays, config, [dout1, dout2])])             # one round trip, several calls

The cache a course forward returns may hold anything (arrays, tuples, objects, a torch graph), so it
never crosses to bpcheck's process: the worker runs forward, then backward on each cotangent with that
cache, and sends back plain data only: the output, the gradients, the arrays as the calls left them,
and a copy of every array in the cache before and after each backward (bpcheck compares them here).
Each forward gets a fresh copy of the config dict (course code writes running statistics into it).
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ..byo.isolation import RemoteFunction, Worker, isolate
from ..byo.loading import UserCallError, call_user, load_function
from ..spec import UserFunctionError

MAX_CACHE_DEPTH = 4


def pair(arrays: tuple, config: dict | None, douts: list) -> tuple:
    """A step: forward(*arrays[, config]), then backward(dout, cache) for each dout on that one cache."""
    return ("pair", tuple(arrays), config, list(douts))


def forwards(arglists: list[tuple], config: dict | None) -> tuple:
    """A step: the forward's output for each tuple of arrays (finite differences of the user's forward)."""
    return ("forwards", list(arglists), config)


def losses(xs: list, y: Any) -> tuple:
    """A step: f(x, y) -> (loss, dx) for each x (a loss layer)."""
    return ("losses", list(xs), y)


def cache_arrays(cache: Any, path: str = "cache", depth: int = 0) -> list[tuple[str, np.ndarray]]:
    """Every numpy array in the cache (in tuples, lists, dicts and plain objects' attributes), with its path."""
    if isinstance(cache, np.ndarray):
        return [(path, cache)] if cache.dtype.kind in "biufc" else []
    if depth >= MAX_CACHE_DEPTH:
        return []
    if isinstance(cache, (tuple, list)):
        return [a for i, v in enumerate(cache) for a in cache_arrays(v, f"{path}[{i}]", depth + 1)]
    if isinstance(cache, dict):
        return [a for k, v in cache.items() for a in cache_arrays(v, f"{path}[{k!r}]", depth + 1)]
    attrs = getattr(cache, "__dict__", None)
    if isinstance(attrs, dict) and type(cache).__module__ not in ("builtins",) and not callable(cache):
        return [a for k, v in attrs.items() for a in cache_arrays(v, f"{path}.{k}", depth + 1)]
    return []


def _describe(value: Any) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    return type(value).__name__


class _Raised(Exception):
    """The user's function `name` raised `error` (the driver reports it under that name, not its own)."""

    def __init__(self, name: str, error: BaseException) -> None:
        super().__init__(name)
        self.name, self.error = name, error


def _frame(exc: BaseException) -> str:
    """The innermost frame of the user's own code (not numpy's or bpcheck's), as loading.last_frame writes it."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "site-packages" not in f.filename and "/bpcheck/" not in f.filename and "<frozen" not in f.filename]
    if not frames:
        return ""
    f = frames[-1]
    return f'File "{f.filename}", line {f.lineno}, in {f.name}' + (f" : {f.line.strip()}" if f.line else "")


def _calling(fn: Callable, name: str) -> Callable:
    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # the user's code may fail in any way: named below, with its frame
            raise _Raised(name, exc) from exc

    return call


def _step(fwd: Callable, bwd: Callable | None, step: tuple) -> dict:
    """One step in the worker (or here, in process): plain data back."""
    kind = step[0]
    if kind == "forwards":
        _, arglists, config = step
        outs = []
        for args in arglists:
            res = fwd(*args, *(() if config is None else (copy.deepcopy(config),)))
            outs.append(np.asarray(res[0] if isinstance(res, tuple) else res))
        return {"outs": outs}
    if kind == "losses":
        _, xs, y = step
        return {"results": [fwd(x, y) for x in xs], "y": y}
    _, args, config, douts = step
    given = None if config is None else copy.deepcopy(config)
    res = fwd(*args, *(() if given is None else (given,)))
    if not (isinstance(res, tuple) and len(res) == 2):
        return {"bad_forward": _describe(res)}
    out, cache = res
    grads, before, after = [], [], []
    for dout in douts:
        before.append([(p, np.array(a, copy=True)) for p, a in cache_arrays(cache)])
        grads.append(bwd(dout, cache))
        after.append([(p, np.array(a, copy=True)) for p, a in cache_arrays(cache)])
    return {"out": out, "grads": grads, "args": args, "douts": douts, "cache_before": before, "cache_after": after,
            "config": given}


def make_driver(forward: Any, backward: Any, form: str, name: str, backward_name: str = "") -> Callable[[list], list]:
    """The function sent to the worker: resolves the user's functions there (a "file.py:fn" spec is loaded in
    the worker, never here), adapts torch and jax forms to the course form, and runs a list of steps."""
    loaded: dict[str, Any] = {}
    # cloudpickle drops the file of code it sends by value; the worker puts it back so a frame names the user's file
    files = {f.__module__: getattr(sys.modules.get(f.__module__), "__file__", None)
             for f in (forward, backward) if not isinstance(f, str) and getattr(f, "__module__", None)}

    def drive(steps: list) -> list:
        if "fns" not in loaded:
            try:
                fwd = load_function(forward) if isinstance(forward, str) else forward
                bwd = load_function(backward) if isinstance(backward, str) else backward
            except UserFunctionError as exc:  # the file's own error, said once, not wrapped as the driver's
                return [{"load_error": (type(exc).__name__, getattr(exc, "headline", str(exc)), getattr(exc, "frame", ""))}]
            from ..byo.worker import _refile

            for f in (fwd, bwd):
                _refile(f, {k: v for k, v in files.items() if v})
            if form in ("torch", "jax"):
                from .frameworks import adapters

                fwd, bwd = adapters(form, fwd)
            loaded["fns"] = (_calling(fwd, name), _calling(bwd, backward_name or name) if bwd is not None else None)
        fwd, bwd = loaded["fns"]
        try:
            return [_step(fwd, bwd, s) for s in steps]
        except _Raised as raised:
            exc = raised.error
            return [{"user_error": (f"{raised.name} raised {type(exc).__name__}: {exc}", _frame(exc))}]

    drive.__qualname__ = drive.__name__ = name
    return drive


def _user_modules(*fns: Any) -> list:
    """The modules of the user's own functions, to send by value: a test module the worker may not import."""
    out = []
    for fn in fns:
        module = sys.modules.get(getattr(fn, "__module__", None) or "")
        if module is not None and module.__name__ not in ("__main__", "builtins") and \
                module.__name__.split(".")[0] not in ("bpcheck", "numpy", "torch", "jax", "jaxlib"):
            out.append(module)
    return list({id(m): m for m in out}.values())


class UserLayer:
    """A user's layer (forward and backward, or a loss function, or a torch Function / jax custom_vjp)."""

    def __init__(self, forward: Any, backward: Any = None, *, form: str = "course", timeout: float | None = None,
                 in_process: bool = False, worker: Worker | None = None, name: str | None = None) -> None:
        from ..byo.calls import function_name

        self.form, self.timeout = form, timeout
        self.name = name or (forward.rsplit(":", 1)[-1] if isinstance(forward, str) else function_name(forward))
        self.backward_name = (backward.rsplit(":", 1)[-1] if isinstance(backward, str)
                              else function_name(backward) if backward is not None else self.name)
        if in_process:
            forward = load_function(forward) if isinstance(forward, str) else forward
            backward = load_function(backward) if isinstance(backward, str) else backward
        driver = make_driver(forward, backward, form, self.name, self.backward_name)
        self.driver = _isolated(driver, [f for f in (forward, backward) if not isinstance(f, str)],
                                timeout, in_process, worker)

    @property
    def isolated(self) -> bool:
        return isinstance(self.driver, RemoteFunction)

    def run(self, steps: list, calls: int = 1) -> list:
        """The steps' results; a UserCallError when the user's code raised, hung or ended the worker.

        calls: how many calls of the user's functions the steps make (the time limit is per call)."""
        timeout = None if self.timeout is None else self.timeout * max(calls, 1)
        results = call_user(self.driver, (steps,), name=self.name, timeout=timeout)
        if results and isinstance(results[0], dict) and "user_error" in results[0]:
            raise UserCallError(*results[0]["user_error"])
        if results and isinstance(results[0], dict) and "load_error" in results[0]:
            kind, headline, frame = results[0]["load_error"]
            raise UserCallError(headline, frame) if kind == "UserCallError" else UserFunctionError(headline)
        return results


def _isolated(driver: Callable, fns: list, timeout: float | None, in_process: bool, worker: Worker | None):
    import cloudpickle

    modules = _user_modules(*fns, *(getattr(f, "__wrapped__", None) for f in fns))
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    try:
        return isolate(driver, timeout=timeout, in_process=in_process, worker=worker)
    finally:
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)
