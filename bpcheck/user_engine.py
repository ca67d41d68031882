"""--engine path/to/file.py:function: a user's gradient function as a sweep producer (Case -> Gradients).

The function is loaded and called by bpcheck.byo (row layout: grad_fn(params, x, y) or
grad_fn(arch, params, x, y) returning {'W1': dL/dW1, 'b1': ..., ...}). The producer holds only the
spec string and loads the function on first use, so it pickles into --jobs worker processes.
"""

from __future__ import annotations

from typing import Any

from . import engine
from .spec import Case, Gradients


class UserEngine:
    """Case -> Gradients from the user's function; the loss is the engine's, dL/dx is not compared."""

    def __init__(self, spec: str, labels: bool = False):
        self.spec, self.labels = spec, labels
        self.__qualname__ = spec
        self.__module__ = "user"
        self._grad: Any = None

    def load(self) -> UserEngine:
        """Load now, so that a bad spec is a one-line UserFunctionError before any case is drawn."""
        from .byo import ROW, load_function
        from .byo.calls import UserGrad

        if self._grad is None:
            self._grad = UserGrad(load_function(self.spec), ROW, labels=self.labels)
        return self

    def __call__(self, case: Case) -> Gradients:
        grads = self.load()._grad.call(case).grads
        reference = engine.gradients(case)
        return Gradients(reference.loss, {k: grads[k] for k in case.arch.param_shapes()}, None,
                         source=f"user {self.spec}")

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "labels": self.labels}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["spec"], state.get("labels", False))
