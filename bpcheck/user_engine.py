"""--engine path/to/file.py:function: a user's gradient function as a sweep producer (Case -> Gradients).

The function is loaded and called by bpcheck.byo (row layout: grad_fn(params, x, y) or
grad_fn(arch, params, x, y) returning {'W1': dL/dW1, 'b1': ..., ...}), in the worker process of
bpcheck.byo.isolation unless in_process. The producer holds only the spec string and its options
and loads the function on first use, so it pickles into --jobs worker processes. engine_spec (the
spec with the file's absolute path) is recorded in every result and in the report's meta, so that
`bpcheck replay cases/<id>.json` replays the same function.
"""

from __future__ import annotations

import os
from typing import Any

from .spec import DEFAULT_TIMEOUT, Case, Gradients, UsageError


def absolute_spec(spec: str) -> str:
    """"path/file.py:fn" with the file's absolute path ("package.module:fn" unchanged)."""
    where, _, name = spec.rpartition(":")
    if where.endswith(".py") or os.sep in where or "/" in where:
        return f"{os.path.abspath(where)}:{name}"
    return spec


def recorded_engine(spec: str, **options: Any) -> UserEngine:
    """The UserEngine a case file or report names, or a UsageError when its file is gone."""
    where = spec.rpartition(":")[0]
    if (where.endswith(".py") or "/" in where) and not os.path.isfile(where):
        raise UsageError(f"the case was checked with --engine {spec!r}, but {where!r} no longer exists: restore it, "
                         "or give --engine FILE.py:FUNCTION")
    return UserEngine(spec, **options)


class UserEngine:
    """Case -> Gradients from the user's function; its loss when it returns one under 'loss' (else none is
    compared), dL/dx not compared."""

    def __init__(self, spec: str, labels: bool = False, timeout: float | None = DEFAULT_TIMEOUT,
                 in_process: bool = False):
        self.spec, self.labels, self.timeout, self.in_process = spec, labels, timeout, in_process
        self.engine_spec = absolute_spec(spec) if ":" in spec else spec
        self.__qualname__ = spec
        self.__module__ = "user"
        self._grad: Any = None

    def load(self) -> UserEngine:
        """Load now, so that a bad spec is a one-line UserFunctionError before any case is drawn."""
        from .byo.calls import UserGrad
        from .byo.isolation import Worker, isolate
        from .byo.layouts import ROW

        if self._grad is None:  # a worker process of its own: this run's
            fn = isolate(self.spec, timeout=self.timeout, in_process=self.in_process, worker=Worker())
            self._grad = UserGrad(fn, ROW,
                                  self.timeout, labels=self.labels)
        return self

    def __call__(self, case: Case) -> Gradients:
        call = self.load()._grad.call(case)
        return Gradients(call.loss, {k: call.grads[k] for k in case.arch.param_shapes()}, None,
                         source=f"user {self.spec}")

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "labels": self.labels, "timeout": self.timeout, "in_process": self.in_process}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["spec"], state.get("labels", False), state.get("timeout", DEFAULT_TIMEOUT),
                      state.get("in_process", False))
