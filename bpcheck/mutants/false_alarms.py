"""The unmutated engine over many cases, checked by bpcheck and the baselines: their false alarms.

    fp = run_engine(n=2000, seed=0)                     # EngineOutcome: false alarms per checker
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Any

from .. import baselines, draw, engine
from .. import references as refs
from ..executors import Runner
from ..spec import BpcheckError, Case
from ..sweep import set_up_worker
from .sweep import CaseOutcome, check_one


@dataclass
class EngineOutcome:
    """The unmutated engine: bpcheck's and each baseline's false alarms, split by regime and dtype."""

    n: int
    bpcheck_alarms: list[dict[str, Any]]
    baseline_alarms: dict[str, list[dict[str, Any]]]
    by_group: dict[str, dict[str, int]]
    seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "bpcheck_false_positives": len(self.bpcheck_alarms),
                "baseline_false_positives": {b: len(v) for b, v in self.baseline_alarms.items()},
                "by_group": self.by_group, "seconds": self.seconds,
                "bpcheck_alarms": self.bpcheck_alarms,
                "baseline_alarms": {b: v[:20] for b, v in self.baseline_alarms.items()}}


def stack_case(seed: int, index: int) -> Case:
    """Case index of the layered false-alarm run: case index of `report --layers all` with this seed (a stack of
    every registered kind, every regime and dtype in turn), so the two runs judge the same stacks."""
    from ..stacks import layer_kinds

    return draw.draw_case(seed, index, layers=layer_kinds())


def _draw_for(stacks: bool):
    return stack_case if stacks else draw.draw_case


def _engine_task(seed: int, references, run_baselines, stacks: bool, chunk: tuple[int, ...]) -> list[tuple[int, CaseOutcome]]:
    return [(i, check_one(engine.gradients, _draw_for(stacks)(seed, i), references, run_baselines)) for i in chunk]


def run_engine(n: int, seed: int, references=None, run_baselines: tuple[str, ...] = baselines.BASELINES,
               progress=None, *, runner: Runner | None = None, stacks: bool = False) -> EngineOutcome:
    """The engine over n cases from draw.draw_case (every regime and dtype, evenly), or with stacks from the layered
    sweep (stack_case), wherever runner runs them;
    a case whose worker died twice is an ERROR alarm (a crash never passes). Raises KeyboardInterrupt, and
    BpcheckError when a Dask scheduler goes away."""
    done: dict[int, CaseOutcome] = {}
    died: set[int] = set()

    def got(i: int, outcome: CaseOutcome) -> None:
        done[i] = outcome
        if progress is not None:
            progress(len(done), n)

    def lost(i: int, reason: str) -> None:
        case = _draw_for(stacks)(seed, i)
        died.add(i)
        got(i, CaseOutcome(i, case.arch.label(), case.x.dtype.name, case.regime, case.batch, "ERROR", False, [],
                           None, None, 0.0, {}, {}, message=reason))

    stopped = (runner or Runner()).run(partial(_engine_task, seed, references, run_baselines, stacks), range(n), got, lost,
                                       setup=partial(set_up_worker, tuple(refs.resolve(references))),
                                       item_seconds=0.02 * (1 + len(run_baselines)))
    if stopped is not None:
        raise BpcheckError(f"the false-alarm run stopped after {len(done)} of {n} cases: {stopped}")
    alarms: list[dict[str, Any]] = []
    base: dict[str, list[dict[str, Any]]] = {b: [] for b in run_baselines}
    groups: dict[str, dict[str, int]] = {}
    seconds = Counter()
    for i in range(n):
        o = done[i]
        group = groups.setdefault(f"{o.regime}/{o.dtype}",
                                  {"cases": 0, "bpcheck": 0, **{b: 0 for b in run_baselines}})
        group["cases"] += 1
        seconds["bpcheck"] += o.seconds
        where = {"index": i, "arch": o.arch, "regime": o.regime, "dtype": o.dtype}
        if o.label in ("ENGINE", "REFERENCE") or i in died:
            alarms.append({**where, "label": o.label, "message": o.message})
            group["bpcheck"] += 1
        for b in run_baselines:
            seconds[b] += o.baseline_seconds.get(b, 0.0)
            if o.baselines.get(b):
                base[b].append({**where, "message": o.baseline_messages.get(b, "")})
                group[b] += 1
    return EngineOutcome(n, alarms, base, groups, dict(seconds))

