"""Run bpcheck's check_gradients on the corpus: the plans the tests use, and a survey of what bpcheck says.

    python -m tests.corpus.run                    # every engine, both modes: counts and the failures seen
    python -m tests.corpus.run half_sse any_arch  # some engines
    python -m tests.corpus.run --bugs             # every planted bug: caught? where?

A plan is one check_gradients call: an engine, a mode ("declared": no loss_fn; "loss_fn": the engine's
own loss), one architecture (a fixed Arch, or the engine's pool of random ones), a seed and a number of
cases. Options that bpcheck may not have yet (targets=, weight_decay=) are passed only when
check_gradients takes them, so the same plan runs before and after they land.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections import Counter
from dataclasses import dataclass

import bpcheck
from bpcheck import Arch

from . import ENGINES

MODES = ("declared", "loss_fn")
CASES_PER_MODE = 100     # per engine and mode: 200 cases per engine in all
RANDOM_SHARE = 0.5       # of an engine's cases, drawn over its pool of random archs when it takes arch
TARGETS_ONLY_ONEHOT = "onehot"


def engine(name: str):
    return importlib.import_module(f"{__package__}.{name}")


def spec(name: str) -> dict:
    return engine(name).ENGINE


def fixed_archs(info: dict) -> list[Arch]:
    """The engine's fixed archs (Arch.parse raises today for what bpcheck cannot name, e.g. leaky_relu:0.2)."""
    return [Arch.parse(*a) for a in info["archs"]]


def arch_pool(info: dict):
    """A strategy of the random archs the engine supports (activations and losses it declares)."""
    from bpcheck import strategies as bst

    limits = info["random_archs"]
    acts = tuple(a for a in info["activations"] if a != "softmax")
    return bst.architectures(min_depth=1, max_depth=limits["max_depth"], max_width=limits["max_width"],
                             activations=acts, losses=info["losses"])


def accepts(option: str) -> bool:
    return option in inspect.signature(bpcheck.check_gradients).parameters


# The corpus is trusted code: run it in bpcheck's own process. The judgement is the same; what isolation
# adds (a worker process, one round trip per call, thousands per case for FD of a loss_fn) is tested in
# tests/test_isolation.py, and would make this file several times slower.
IN_PROCESS = {"in_process": True} if accepts("in_process") else {}


@dataclass(frozen=True)
class Plan:
    engine: str
    mode: str
    arch: str          # the Arch label, or "random"
    seed: int
    cases: int


def plans(name: str, mode: str, total: int = CASES_PER_MODE) -> list[Plan]:
    """The checks of one engine in one mode, total cases split over its fixed archs and random pool."""
    info = spec(name)
    labels = [" ".join(a) for a in info["archs"]]
    random_cases = round(total * RANDOM_SHARE) if info["random_archs"] else 0
    out = [Plan(name, mode, "random", 1000, random_cases)] if random_cases else []
    rest = total - random_cases
    for i, label in enumerate(labels):
        n = rest // len(labels) + (1 if i < rest % len(labels) else 0)
        out.append(Plan(name, mode, label, i, n))
    return out


def run(plan: Plan) -> bpcheck.byo.Result:
    info = spec(plan.engine)
    mod = engine(plan.engine)
    grad_fn = getattr(mod, info["grads"])
    kwargs: dict = dict(layout=info["layout"], seed=plan.seed, **IN_PROCESS)
    if plan.mode == "loss_fn":
        kwargs["loss_fn"] = getattr(mod, info["loss"])
    if info["dtypes"]:
        kwargs["dtype"] = info["dtypes"]
    if info["weight_decay"] is not None and accepts("weight_decay"):
        kwargs["weight_decay"] = info["weight_decay"]
    if info["targets"] == (TARGETS_ONLY_ONEHOT,) and accepts("targets"):
        kwargs["targets"] = TARGETS_ONLY_ONEHOT
    arch = arch_pool(info) if plan.arch == "random" else Arch.parse(*plan.arch.split(" "))
    regimes = info.get("regimes")
    if regimes is None:
        return bpcheck.check_gradients(grad_fn, arch, cases=plan.cases, **kwargs)
    return bpcheck.check_gradients(grad_fn, arch, cases=_cases_in(arch, plan, regimes, info), **kwargs)


def _cases_in(arch, plan: Plan, regimes, info) -> list:
    """plan.cases cases drawn as check_gradients draws them, keeping only the regimes the engine is sound in."""
    from bpcheck.byo import draw_cases

    dtypes = info["dtypes"] or ("float64", "float32")
    drawn = draw_cases(arch, plan.cases * 2, plan.seed, dtypes)
    return [c for c in drawn if c.regime in regimes][:plan.cases]


# ---------------------------------------------------------------------------------------------
# What a result says, in a line per kind of failure


def failures(result) -> Counter:
    """(label, who failed and why, regime) -> number of cases, for every case that fails, and the findings."""
    seen: Counter = Counter()
    for f in result.findings:
        seen[("finding", f"{f.check}: {f.message[:90]}", "")] += 1
    for o in result.outcomes:
        if o.ok:
            continue
        regime = o.describe.split(",")[0]
        if o.result is None:
            seen[(o.label, o.explanation[:90], regime)] += 1
            continue
        bad = [v for v in o.result.verdicts if v.label in ("ENGINE", "REFERENCE", "ERROR")]
        refs = ",".join(v.reference for v in bad)
        user = next((v for v in bad if v.reference == "fd:loss_fn"), None)
        why = user.reason if user is not None and len(bad) == 1 else o.explanation[:100]
        seen[(o.label, f"vs {refs}: {why}", regime)] += 1
    return seen


def summary(counts: Counter, total: int) -> str:
    """'ENGINE in 14 of 100: fd:loss_fn: differs from ... (saturating 8, huge 3)', one clause per kind."""
    kinds: dict = {}
    for (label, why, regime), n in counts.items():
        kinds.setdefault((label, why), Counter())[regime.split(" ")[-1]] += n
    parts = []
    for (label, why), regimes in sorted(kinds.items(), key=lambda kv: -sum(kv[1].values())):
        where = ", ".join(f"{r} {n}" for r, n in regimes.most_common() if r)
        n = sum(regimes.values())
        parts.append(f"{label} in {n} of {total}: {why}" + (f" ({where})" if where else ""))
    return "; ".join(parts)


def survey(names: list[str]) -> None:
    for name in names:
        for mode in MODES:
            total, bad = 0, Counter()
            for plan in plans(name, mode):
                try:
                    result = run(plan)
                except bpcheck.BpcheckError as exc:
                    bad[("raises", f"{type(exc).__name__}: {str(exc)[:100]}", "")] += plan.cases
                    total += plan.cases
                    continue
                total += len(result.outcomes)
                bad += failures(result)
            n_bad = sum(v for k, v in bad.items() if k[0] != "finding")
            print(f"{name:22s} {mode:8s} {n_bad:3d} of {total:3d} cases fail")
            for (label, why, regime), n in sorted(bad.items(), key=lambda kv: -kv[1]):
                print(f"    {n:3d} {label:9s} {regime:18s} {why}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--bugs"]:
        from .bugs import survey_bugs

        survey_bugs(args[1:])
    else:
        survey(args or list(ENGINES))
