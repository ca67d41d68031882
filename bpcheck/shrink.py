"""Minimal reproducers: for each distinct kind of disagreement, the simplest case that shows it.

    reproducers = shrink_kinds(run, config, producer)   # list of dicts, one per kind, for meta["reproducers"]

A kind is (label, diagnosis pattern, layer position), see bpcheck.report.analysis.kind. For each
one, hypothesis.find searches the strategies restricted to the failing case's regime, dtype,
activations and loss, with the predicate "check_case shows the same kind", and shrinks toward
depth 1, width 1, batch 1 and zeros. Runs are deterministic (derandomize=True, database=None)
and bounded: MAX_EXAMPLES generated examples and at most MAX_CALLS checks per kind; then find
is stopped (an exception from the predicate, since the shrinker would otherwise go on drawing
candidates) and the last example that showed the kind is kept (the shrinker only accepts
improvements, so it is the smallest found). A kind that find cannot reproduce keeps the
original case (shrunk: false).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import NoSuchExample, Unsatisfiable

from . import engine
from .check import Producer, case_digest, check_case
from .draw import case_strategy, without_constant_injection
from .message import short_name, verdict_message
from .report.analysis import kind, kinds
from .results import CheckResult, RunResult
from .spec import Case, with_weight_decay

MAX_EXAMPLES = 60
MAX_CALLS = 300
MAX_KINDS = 8


def _settings() -> settings:
    return settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                    phases=(Phase.generate, Phase.shrink))  # explain re-runs hundreds of variants


def shrink_one(case: Case, target: tuple[str, str, str], references: list[str], producer: Producer,
               fail_on: tuple[str, ...], max_depth: int, max_width: int,
               max_calls: int = MAX_CALLS) -> tuple[CheckResult | None, int]:
    """(CheckResult of the smallest case found that shows kind target, checks spent); None when none found."""
    arch = case.arch
    strategy = _strategy(case, max_depth, max_width)
    if arch.weight_decay:  # the drawn nets keep the failing case's declared L2 term
        strategy = strategy.map(lambda c: with_weight_decay(c, arch.weight_decay))
    calls = 0
    shows: dict[str, bool] = {}
    best: list[Case] = []  # the shrinker accepts only improvements, so the last case that shows the kind is the best

    def check(c: Case) -> CheckResult:
        return check_case(c, references, producer=producer, fail_on=fail_on, skip_missing=True)

    def same_kind(c: Case) -> bool:
        nonlocal calls
        key = case_digest(c)
        if key in shows:
            return shows[key]
        if calls >= max_calls:  # out of budget: stop find here and keep the best case so far
            raise _OutOfBudget
        calls += 1
        r = check(c)
        shows[key] = any(kind(r, v) == target for v in r.verdicts)
        if shows[key]:
            best.append(c)
        return shows[key]

    try:
        with without_constant_injection():
            found = find(strategy, same_kind, settings=_settings())
    except _OutOfBudget:
        if not best:
            return None, calls
        found = best[-1]
    except (NoSuchExample, Unsatisfiable):
        return None, calls
    return check(found), calls


def _strategy(case: Case, max_depth: int, max_width: int):
    """Cases like this one: an MLP's regime, dtype, activations and loss; a stack's regime, dtype and layer kinds."""
    arch = case.arch
    if not arch.is_mlp:
        from .stacks import kinds_of, stack_cases

        kinds = tuple(k for k in kinds_of(arch) if k != "flatten")
        return stack_cases(kinds=kinds, regimes=(case.regime,), dtypes=(case.x.dtype.name,), max_width=max_width)
    hidden = [a for a in arch.activations[:-1]] or list(arch.activations)
    acts = sorted(set(hidden) | {arch.activations[-1]})
    depth = max_depth if any(a != "softmax" for a in acts) else 1
    return case_strategy(case.regime, case.x.dtype.name, depth, max_width, activations=acts, losses=(arch.loss,))


class _OutOfBudget(Exception):
    """Raised from the predicate to end hypothesis.find once MAX_CALLS checks are spent."""


def shrink_kinds(run: RunResult, references: list[str], producer: Producer = engine.gradients, *,
                 max_depth: int = 3, max_width: int = 4,
                 max_calls: int = MAX_CALLS, on_kind: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """One reproducer per kind of disagreement in run (at most MAX_KINDS, most frequent first)."""
    found = sorted(kinds(run).items(), key=lambda item: -len(item[1]))[:MAX_KINDS]
    out = []
    for n, (target, members) in enumerate(found, start=1):
        if on_kind is not None:
            on_kind(n, len(found))
        source, verdict = members[0]
        case = Case.from_dict(source.case)
        fail_on = tuple(source.fail_on)
        result, calls = shrink_one(case, target, references, producer, fail_on, max_depth, max_width, max_calls)
        shrunk = result is not None
        if result is None:
            result = check_case(case, references, producer=producer, fail_on=fail_on, skip_missing=True)
        label, text, where = target
        shown = next((v for v in result.verdicts if kind(result, v) == target), verdict)
        out.append({
            "kind": {"label": label, "pattern": text, "position": where},
            "count": len(members),
            "source_case_id": source.case_id,
            "case_id": result.case_id,
            "arch": result.arch, "dtype": result.dtype, "regime": result.regime, "batch": result.batch,
            "reference": shown.reference,
            "message": verdict_message(shown, short_name(result.producer)),
            "shrunk": shrunk,
            "checks": calls,
            "file": f"cases/{result.case_id}.json",
            "result": result.to_dict(),
        })
    return out
