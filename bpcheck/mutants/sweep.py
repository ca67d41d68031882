"""Run the catalog: each mutant over K cases drawn under its conditions, checked by bpcheck and by
the baselines on the same cases; the unmutated engine over many cases for the false positives.

    outcome = run_mutant(mutant, k=8, seed=0)          # MutantOutcome: plain numbers and names
    fp = run_engine(n=2000, seed=0)                     # (bpcheck.mutants.false_alarms) false alarms per checker

A mutant is caught by bpcheck on a case when check_case labels it ENGINE (user-style mutants: when
bpcheck.byo names the fault); by a baseline when the baseline raises. Cases are drawn with
bpcheck.draw from (seed, crc32(name), i), so a run is reproduced from its seed.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .. import baselines, draw
from .. import references as refs
from .. import strategies as bst
from ..check import check_case
from ..executors import Runner
from ..spec import Case
from ..sweep import set_up_worker
from .catalog import Conditions, Mutant
from .layered import StackConditions, draw_stack_case

DTYPES = ("float64", "float32")


def strategy_for(cond: Conditions, regime: str, dtype: str):
    """bst.cases under a mutant's conditions, for one regime and dtype."""
    lo, hi = (cond.square, cond.square) if cond.square else (cond.min_width, cond.max_width)
    kw: dict[str, Any] = dict(min_depth=cond.min_depth, max_depth=max(cond.min_depth, cond.max_depth),
                              min_width=lo, max_width=hi)
    if cond.activations:
        kw["activations"] = cond.activations
    if cond.losses:
        kw["losses"] = cond.losses
    return bst.cases(archs=bst.architectures(**kw), regimes=(regime,), dtypes=(dtype,),
                     min_batch=cond.min_batch, max_batch=max(cond.min_batch, cond.max_batch))


def draw_cases(mutant_name: str, cond: Conditions, k: int, seed: int) -> list[Case]:
    """k cases under cond; case i has regime cond.regimes[i % R] and dtype DTYPES[(i // R) % 2]."""
    tag = zlib.crc32(mutant_name.encode())
    if isinstance(cond, StackConditions):  # a layer mutant: stacks from its template, float64
        return [draw_stack_case(cond, (seed, tag, i)) for i in range(k)]
    out = []
    for i in range(k):
        regime, dtype = draw.regime_and_dtype(i, cond.regimes, DTYPES)
        out.append(draw.draw(strategy_for(cond, regime, dtype), (seed, tag, i)))
    return out


@dataclass
class CaseOutcome:
    """One case of one mutant: bpcheck's label, the references that said ENGINE, where it pointed,
    and each baseline's catch."""

    index: int
    arch: str
    dtype: str
    regime: str
    batch: int
    label: str
    caught: bool
    by: list[str]
    layer: int | None
    tensor: str | None
    seconds: float
    baselines: dict[str, bool]
    baseline_seconds: dict[str, float]
    baseline_messages: dict[str, str] = field(default_factory=dict)
    message: str = ""
    diagnosis: str = ""   # the name of the bug the lead ENGINE verdict diagnosed (results.Diagnosis.name)


@dataclass
class MutantOutcome:
    name: str
    description: str
    where: str
    style: str
    conditions: str
    cases: list[CaseOutcome]
    expected_layer: list[int | None]
    expected_tensors: list[list[str]]
    minimal: dict[str, Any] | None = None
    named_as: str = ""    # Mutant.named: the words a diagnosis of this bug must contain

    def named(self) -> int | None:
        """How many caught cases the diagnosis named the bug in (None when the catalog expects no words)."""
        return sum(c.caught and self.named_as in c.diagnosis for c in self.cases) if self.named_as else None

    @property
    def caught(self) -> bool:
        return any(c.caught for c in self.cases)

    @property
    def cases_to_catch(self) -> int | None:
        return next((c.index + 1 for c in self.cases if c.caught), None)

    def localised(self) -> bool | None:
        """True when every caught case named the expected layer and a expected tensor; None when the
        bug lives in every layer (nothing to name)."""
        checks = [(c, lay, ts) for c, lay, ts in zip(self.cases, self.expected_layer, self.expected_tensors)
                  if c.caught and lay is not None]
        if not checks:
            return None
        return all(c.layer == lay and c.tensor in ts for c, lay, ts in checks)

    def baseline_caught(self, name: str) -> int:
        return sum(c.baselines.get(name, False) for c in self.cases)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "where": self.where, "style": self.style,
            "conditions": self.conditions, "k": len(self.cases), "caught": self.caught,
            "caught_cases": sum(c.caught for c in self.cases), "cases_to_catch": self.cases_to_catch,
            "localised": self.localised(), "named_cases": self.named(),
            "labels": dict(Counter(c.label for c in self.cases)),
            "references": dict(Counter(r for c in self.cases for r in c.by)),
            "baselines": {b: self.baseline_caught(b) for b in baselines.BASELINES},
            "seconds": {"bpcheck": sum(c.seconds for c in self.cases),
                        **{b: sum(c.baseline_seconds.get(b, 0.0) for c in self.cases) for b in baselines.BASELINES}},
            "minimal": self.minimal,
            "cases": [c.__dict__ for c in self.cases],
        }


def _localisation(result) -> tuple[list[str], int | None, str | None, str]:
    engine_verdicts = [v for v in result.verdicts if v.label == "ENGINE"]
    if not engine_verdicts:
        return [], None, None, ""
    lead = next((v for v in engine_verdicts if v.reference != "fd"), engine_verdicts[0])
    worst = lead.worst_tensor()
    return ([v.reference for v in engine_verdicts], lead.first_bad_layer, None if worst is None else worst.name,
            "" if lead.bug is None else lead.bug.name)


def caught_by_bpcheck(result, style: str = "engine") -> bool:
    """ENGINE, or ERROR because the function under test raised (result.error: for a user-style function,
    the UserFunctionError of the input-mutation and hidden-state checks, which names the fault)."""
    return result.label == "ENGINE" or (result.label == "ERROR" and bool(result.error))


def check_one(producer, case: Case, references, run_baselines: tuple[str, ...], style: str = "engine") -> CaseOutcome:
    """bpcheck (check_case) and each baseline on one case."""
    start = time.perf_counter()
    result = check_case(case, references, producer=producer, skip_missing=True)
    seconds = time.perf_counter() - start
    by, layer, tensor, named = _localisation(result)
    outcome = CaseOutcome(0, case.arch.label(), case.x.dtype.name, case.regime, case.batch, result.label,
                          caught_by_bpcheck(result, style), by, layer, tensor, seconds, {}, {}, diagnosis=named)
    if result.label != "AGREE":
        outcome.message = (result.error or result.message())[:400]
    for name in run_baselines:
        b = baselines.run_baseline(name, producer, case)
        outcome.baselines[name] = b.caught
        outcome.baseline_seconds[name] = b.seconds
        if b.message:
            outcome.baseline_messages[name] = b.message
    return outcome


def run_mutant(mutant: Mutant, k: int, seed: int, references=None,
               run_baselines: tuple[str, ...] = baselines.BASELINES, shrink: str = "hypothesis") -> MutantOutcome:
    """K cases of one mutant through bpcheck and the baselines; the first caught case shrunk by shrink
    ("hypothesis": bpcheck.shrink with the greedy fallback, "greedy", or "none")."""
    from .user import reset

    reset(mutant.produce)  # a stateful user-style function starts fresh, whatever ran before
    cases = draw_cases(mutant.name, mutant.conditions, k, seed)
    outcomes, layers, tensors = [], [], []
    for i, case in enumerate(cases):
        o = check_one(mutant.produce, case, references, run_baselines, mutant.style)
        o.index = i
        outcomes.append(o)
        lay, ts = mutant.expected(case.arch)
        layers.append(lay)
        tensors.append(list(ts))
    out = MutantOutcome(mutant.name, mutant.description, mutant.where, mutant.style, mutant.conditions.describe(),
                        outcomes, layers, tensors, named_as=mutant.named)
    first = out.cases_to_catch
    if first is not None and shrink != "none" and mutant.style == "engine":
        # (not a user-style one: a stateful function's catch depends on the calls before it)
        from .shrinking import greedy, minimal_case

        case = cases[first - 1]
        out.minimal = (minimal_case(mutant.produce, case, references) if shrink == "hypothesis"
                       else {**greedy(mutant.produce, case, references), "by": "greedy"})
    return out


def _mutants_task(names: tuple[str, ...], k: int, seed: int, references, run_baselines, shrink: str,
                  chunk: tuple[int, ...]) -> list[tuple[int, dict[str, Any]]]:
    from . import get

    return [(i, run_mutant(get(names[i]), k, seed, references, run_baselines, shrink).to_dict()) for i in chunk]


def run_mutants(mutants: tuple[Mutant, ...], k: int, seed: int, references=None,
                run_baselines: tuple[str, ...] = baselines.BASELINES, shrink: str = "hypothesis", *,
                runner: Runner | None = None, on_done=None) -> tuple[list[dict[str, Any]], str | None]:
    """run_mutant(...).to_dict() for each mutant, in catalog order, wherever runner runs them (one task a mutant);
    and the reason when the run stopped early (a Dask scheduler gone). A mutant whose worker died twice has no
    cases (so it is not caught) and an 'error'."""
    done: dict[int, dict[str, Any]] = {}

    def got(i: int, outcome: dict[str, Any]) -> None:
        done[i] = outcome
        if on_done is not None:
            on_done(len(done), len(mutants), outcome)

    def lost(i: int, reason: str) -> None:
        m = mutants[i]
        got(i, {**MutantOutcome(m.name, m.description, m.where, m.style, m.conditions.describe(), [], [], [],
                                named_as=m.named).to_dict(), "error": reason})

    task = partial(_mutants_task, tuple(m.name for m in mutants), k, seed, references, run_baselines, shrink)
    stopped = (runner or Runner()).run(task, range(len(mutants)), got, lost, item_seconds=k * 0.1,
                                       setup=partial(set_up_worker, tuple(refs.resolve(references))))
    return [done[i] for i in sorted(done)], stopped
