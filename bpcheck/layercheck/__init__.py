"""Check one layer's hand-written backward: course-style numpy (forward, backward with a cache), a
torch.autograd.Function or a jax.custom_vjp, against FD, torch and jax, with reference-free properties.

    check_layer(forward, backward, layer="conv2d", cases=20, seed=0) -> LayerResult

Modules: course (the contract per kind), cases (drawing), remote (the worker side), run_case (one case's
calls), references (the oracles), fd, judge (comparison and blame), properties, diagnose, shrinking,
frameworks (torch and jax forms), result.
"""

from .checking import DEFAULT_CASES, check_layer
from .course import KINDS
from .result import Finding, LayerOutcome, LayerResult

__all__ = ["DEFAULT_CASES", "KINDS", "Finding", "LayerOutcome", "LayerResult", "check_layer"]
