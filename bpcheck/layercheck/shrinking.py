"""The smallest failing case: hypothesis.find over the kind's case strategy, toward batch 1 and small shapes.

The predicate is "this case fails in the same way": the same wrong argument (or the same failed check).
Deterministic (derandomize, no database) and bounded: MAX_EXAMPLES generated examples, at most MAX_CALLS
checks; then the search stops and the smallest case found so far is kept (the shrinker only accepts
smaller ones). A failure that only the original case shows is reported as that case.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import NoSuchExample, Unsatisfiable

from ..draw import without_constant_injection
from ..spec import BpcheckError
from .cases import LayerCase, case_strategy

MAX_EXAMPLES = 40
MAX_CALLS = 120


class _OutOfBudget(Exception):
    pass


def _signature(kind, user, case: LayerCase, names, precision) -> tuple:
    """What failed on this case: the wrong arguments and the failed checks ((), () when it passes)."""
    from .case_judging import judge_case, per_sample
    from .properties import RTOL, RTOL32
    from .run_case import ShapeError, run_case

    try:
        run = run_case(kind, user, case, per_sample(kind))
    except ShapeError as exc:
        return ((exc.arg,), ("shapes",))
    except BpcheckError:
        return ((), ("raises",))
    outcome, findings = judge_case(kind, run, 0, names, precision, RTOL if precision == "float64" else RTOL32)
    return (outcome.bad_args, tuple(sorted({f.check for f in findings})))


def smallest_failing(kind, user, case: LayerCase, names: list[str], precision: str, user_config: Any,
                     shapes: Any) -> str:
    """The description of the smallest case failing like `case`, or '' when the search finds nothing smaller."""
    target = _signature(kind, user, case, names, precision)
    if target == ((), ()):
        return ""
    calls = [0]
    best: list[LayerCase] = []

    def same(candidate: LayerCase) -> bool:
        calls[0] += 1
        if calls[0] > MAX_CALLS:
            raise _OutOfBudget
        wrong, checks = _signature(kind, user, candidate, names, precision)
        hit = bool(set(wrong) & set(target[0])) if target[0] else bool(set(checks) & set(target[1]))
        if hit:
            best.append(candidate)
        return hit

    conf = settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), phases=(Phase.generate, Phase.shrink),
                    report_multiple_bugs=False)
    try:
        with without_constant_injection():
            find(case_strategy(kind, user_config, shapes, case.regime), same, settings=conf)
    except (NoSuchExample, Unsatisfiable, _OutOfBudget):
        pass
    if not best:
        return ""
    small = min(best, key=lambda c: (sum(v.size for v in c.arrays.values()), c.batch))
    size = sum(v.size for v in small.arrays.values())
    if size >= sum(v.size for v in case.arrays.values()):
        return ""
    return small.describe()
