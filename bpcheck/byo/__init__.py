"""Bring your own backprop: check anyone's gradient function, in any layout, with a diagnosis.

    check_gradients(grad_fn, arch, *, loss_fn=None, cases=10, seed=0, references=None, dtype=None,
                    layout=None, timeout=None) -> Result
    load_function("path/to/file.py:function") -> the function

Modules: checking (orchestration), cases (case drawing), calls (validation, mutation and memory checks),
layouts (row, column, custom), conventions (which loss the gradient follows), loading, result; isolation and
worker_process (the worker process the user's code runs in; worker.py is its side).
"""

from .cases import build_cases, draw_cases
from .checking import DEFAULT_CASES, check_gradients
from .layouts import COLUMN, ROW, Layout, custom_layout, resolve_layout
from .loading import UserCallError, load_function
from .result import CaseOutcome, Finding, Result

__all__ = [
    "COLUMN", "DEFAULT_CASES", "ROW", "CaseOutcome", "Finding", "Layout", "Result", "UserCallError",
    "build_cases", "check_gradients", "custom_layout", "draw_cases", "load_function", "resolve_layout",
]
