"""Orchestration: run a producer and the references on a case, compare, blame, localise, diagnose.

    result = check_case(case)                          # the engine against fd, torch and jax
    result = check_case(case, "fd,torch", producer=my_gradients, fast=True)
    print(result.message())
    run = check_cases(cases, seed=0)                   # a sweep: RunResult with a meta block

References run on the float64 copy of the case (they do not depend on the producer), so their
outputs are cached per case and reference (reference_runs.py): checking a second producer on the same case
reuses them.
fast=True replaces the per-coordinate FD reference by FD along FAST_DIRECTIONS random unit
directions (seeded from the case), g.u against the directional derivative; on any disagreement the
full per-coordinate FD check runs instead, so that the fault can be located.
"""

from __future__ import annotations

import itertools
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from . import engine
from . import references as refs
from .compare import (
    CaseContext,
    Comparison,
    blame,
    compare,
    compare_all,
    compare_tensor,
    explained,
    find_bug,
    kind_of,
    references_agree,
)
from .compare.convention import exact_zeros, find_convention
from .compare.overflow import overflows
from .compare.tolerance import dtype_name
from .reference_runs import (  # noqa: F401 (clear_cache and reference_trace are imported from check)
    cached,
    case_digest,
    clear_cache,
    pick_trace,
    reference_trace,
    run_reference,
)
from .results import DEFAULT_FAIL_ON, LABELS, CheckResult, RunResult, TensorMetrics, Verdict, worst_label
from .spec import Case, Gradients, UsageError, suggest
from .version import __version__

Producer = Callable[[Case], Gradients]
FAST_DIRECTIONS = 3


def producer_name(producer: Producer) -> str:
    if producer is engine.gradients:
        return "engine"
    return f"{getattr(producer, '__module__', '?')}.{getattr(producer, '__qualname__', repr(producer))}"


def _fail_on(labels: Sequence[str]) -> tuple[str, ...]:
    labels = (labels,) if isinstance(labels, str) else tuple(labels)
    for label in labels:
        if label not in LABELS:
            raise UsageError(f"fail_on has unknown label {label!r}{suggest(label, LABELS)}: choose from {', '.join(LABELS)}")
    return labels


def _trace(ran: dict[str, Gradients], case64: Case) -> Gradients | None:
    """The trace the rounding bounds read: one of the references that ran, or, when none left one (--refs fd on a
    stack: FD keeps no per-layer trace), torch's or jax's run on the side as a measuring instrument, not a judge;
    with neither installed, FD's gradient, whose magnitudes alone scale probe.py's norm-wise bound for float32."""
    if case64.arch.is_mlp:
        return pick_trace(ran)
    return pick_trace(ran) or reference_trace(case64, ["torch"]) or reference_trace(case64, ["jax"]) \
        or next(iter(ran.values()), None)


def check_case(
    case: Case,
    references: str | Sequence[str] | None = None,
    *,
    producer: Producer = engine.gradients,
    fast: bool = False,
    fail_on: Sequence[str] = DEFAULT_FAIL_ON,
    skip_missing: bool = False,
) -> CheckResult:
    """Check producer(case) against every reference in references (None or "all": fd, torch and jax).

    With None or "all", references that cannot run here are SKIPPED with the reason; a named one that
    cannot run is a UsageError (skip_missing=True SKIPs it too: for callers that validated their names
    already). A reference that raises, or whose gradient is not finite in the case's dtype (it
    overflows), is ERROR with the reason; a producer that raises, or returns something that is not a
    Gradients, makes the whole result ERROR and not ok. ok is False when any verdict's label is in
    fail_on, and when no reference compared anything.
    """
    fail_on = _fail_on(fail_on)
    names = refs.resolve(references) if skip_missing else refs.require(references)
    case64 = case if case.dtype is np.float64 else case.astype(np.float64)
    digest = case_digest(case64)
    head = dict(case_id=(digest if case64 is case else case_digest(case))[:12], arch=case.arch.label(),
                dtype=dtype_name(case.x.dtype), regime=case.regime, batch=case.batch, case=case,
                producer=producer_name(producer), fail_on=fail_on, fast=fast,
                engine=getattr(producer, "engine_spec", ""))
    start = time.perf_counter()
    try:
        produced = producer(case)
        if not isinstance(produced, Gradients):
            raise TypeError(f"it returned {type(produced).__name__}, not a bpcheck.spec.Gradients")
        for value in produced.tensors().values():
            np.asarray(value, dtype=np.float64)  # raises on junk, before any comparison reads it
    except Exception as exc:  # the producer under test may fail in any way; the result says how
        return CheckResult(**head, verdicts=(), label="ERROR", ok=False, seconds=time.perf_counter() - start,
                           error=f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - start

    skipped: dict[str, Verdict] = {}
    ran: dict[str, Gradients] = {}
    timing: dict[str, float] = {}
    versions: dict[str, str] = {}
    for name in names:
        status = refs.status(name)
        versions[name] = status.version or ""
        if not status.available:
            skipped[name] = Verdict(name, "SKIPPED", reason=status.reason or "not available", version=versions[name])
        elif not (fast and kind_of(name) == "fd"):
            grads, timing[name], error = run_reference(name, case64, digest)
            if error:
                skipped[name] = Verdict(name, "ERROR", reason=error, seconds=timing[name], version=versions[name])
            else:
                ran[name] = grads
    for name, reason in overflows(case, ran).items():
        skipped[name] = Verdict(name, "ERROR", reason=reason, seconds=timing[name], version=versions[name])
        del ran[name]

    ctx = CaseContext.build(case, _trace(ran, case64), case64)
    comparisons = compare_all(ctx, produced, ran)
    fast_notes: dict[str, str] = {}
    for name in names:
        if not (fast and kind_of(name) == "fd" and name not in skipped):
            continue
        metrics, took, note = _fast_fd(ctx, produced, name, digest, case64)
        if metrics is not None and metrics.ok and all(c.agree for c in comparisons.values()):
            comparisons[name] = Comparison(name, ctx.tolerance(name), (metrics,), (), metrics.kinks, (None, ""))
            timing[name], fast_notes[name] = took, note
            continue
        grads, timing[name], error = run_reference(name, case64, digest)  # escalate to every coordinate
        error = error or overflows(case, {name: grads}).get(name, "")
        if error:
            skipped[name] = Verdict(name, "ERROR", reason=error, seconds=timing[name], version=versions[name])
            continue
        ran[name] = grads
        fast_notes[name] = f"{note}; escalated to the per-coordinate FD check"
        if not ctx.traced:  # FD's trace is the first one: the rounding bounds need it
            ctx = CaseContext.build(case, _trace(ran, case64), case64)
            comparisons = {n: c for n, c in comparisons.items() if n not in ran}
            comparisons.update(compare_all(ctx, produced, ran))
        comparisons[name] = compare(ctx, produced, grads, name)

    verdicts = _judge(ctx, produced, ran, comparisons, timing, versions, fast_notes)
    verdicts.update(skipped)
    ordered = tuple(verdicts[n] for n in names if n in verdicts)
    label = worst_label([v.label for v in ordered])
    ok = not any(v.label in fail_on for v in ordered) and any(compared(v) for v in ordered)
    return CheckResult(**head, verdicts=ordered, label=label, ok=ok, seconds=seconds)


def compared(verdict: Verdict) -> bool:
    """Did this reference compare anything? SKIPPED, ERROR and a verdict with no tensor did not: a case
    none of whose references compared anything is not ok, whatever its labels."""
    return verdict.label not in ("SKIPPED", "ERROR") and bool(verdict.tensors)


def _judge(ctx: CaseContext, produced: Gradients, ran: dict[str, Gradients], comparisons: dict[str, Comparison],
           timing: dict[str, float], versions: dict[str, str], notes: dict[str, str]) -> dict[str, Verdict]:
    """Blame, then localise and diagnose each disagreement: one Verdict per compared reference."""
    agree = {n: c.agree for n, c in comparisons.items()}
    pairs: dict[frozenset[str], bool] = {}
    convention: dict[str, bool] = {}
    sentences: dict[str, str] = {}
    if not all(agree.values()):
        for a, b in itertools.combinations([n for n in comparisons if n in ran], 2):
            pairs[frozenset((a, b))] = references_agree(ctx, ran[a], a, ran[b], b)
        if exact_zeros(ctx):
            for n, c in comparisons.items():
                if not c.agree and kind_of(n) == "analytic":
                    sentences[n] = find_convention(ctx, produced, c.tol, ctx.kinks)
                    convention[n] = bool(sentences[n])
    labels = blame(agree, pairs, convention=convention, kinked={n: c.kinks > 0 for n, c in comparisons.items()})
    out = {}
    for name, c in comparisons.items():
        label, reason = labels[name]
        diagnosis = sentences.get(name, "") if label == "CONVENTION" else ""
        bug = None
        if label == "ENGINE" and name in ran:
            bug = find_bug(ctx, produced, ran[name], name, c.tol, c.tensors, c.first_bad)
            diagnosis = "" if bug is None else bug.sentence
        layer, how = c.first_bad if not c.agree else (None, "")
        note = notes.get(name, "")
        reason = "; ".join(p for p in (reason, note) if p)
        out[name] = Verdict(name, label, c.tensors + c.traces, c.tol, layer, how, c.kinks, diagnosis, reason,
                            timing.get(name, 0.0), versions.get(name, ""), bug)
    return out


def _fast_fd(ctx: CaseContext, produced: Gradients, name: str, digest: str,
             case64: Case) -> tuple[TensorMetrics | None, float, str]:
    """g.u against FD's directional derivative along FAST_DIRECTIONS seeded random unit directions.

    Returns (metrics named 'directions', seconds, note), or (None, 0, note) when the fast check
    cannot judge this case (rounding can push a kink either way, so the full check must run).
    """
    if ctx.kinks:
        return None, 0.0, "fast check not used: pre-activations within rounding of a kink"
    from .references import directions, fd_directional, fd_stack_directional

    include_x = produced.dx is not None
    rng = np.random.default_rng(int(digest[:16], 16))
    dirs = directions.random_directions(case64, FAST_DIRECTIONS, rng, include_x=include_x)
    try:
        fd, seconds = cached((f"{name}:directional:{int(include_x)}", digest),
                              lambda: (fd_directional.DirectionalFD if getattr(case64.arch, "is_mlp", True)
                                       else fd_stack_directional.StackDirectionalFD)(case64, dirs))
    except Exception as exc:  # the full check will report it
        return None, 0.0, f"fast check failed to run ({type(exc).__name__}: {exc})"
    mine = produced.tensors()
    pred = np.zeros(FAST_DIRECTIONS)
    bound = np.zeros(FAST_DIRECTIONS)
    for t, u in dirs.items():
        g = mine.get(t)
        if g is None or np.shape(g) != u.shape[1:]:
            return None, seconds, f"fast check cannot read d{t}"
        pred += (u.reshape(FAST_DIRECTIONS, -1) @ np.asarray(g, dtype=np.float64).ravel())
        bound += ctx.scales.get(t, 0.0) * np.sqrt(directions.squared_norms(u))
    values, errors = fd.values, fd.errors(full=False)
    kink = ~np.isfinite(errors)
    tol = ctx.tolerance(name)
    if not explained(pred, values, tol, err=np.where(kink, 0.0, errors), kink=kink):
        # The lower estimate leaves some difference unexplained: the metrics need the full one. When
        # it explains all, any larger estimate gives the same metrics, so the FD of every dz is skipped.
        start = time.perf_counter()
        errors = fd.errors()
        seconds += time.perf_counter() - start
    metrics = compare_tensor("directions", pred, values, tol, float(np.linalg.norm(bound)),
                             err=np.where(kink, 0.0, errors), kink=kink)
    return metrics, seconds, f"fast check along {FAST_DIRECTIONS} random directions"


def run_meta(names: Sequence[str], producer: Producer, fail_on: Sequence[str], results: tuple[CheckResult, ...],
             seconds: float, partial: bool) -> dict[str, Any]:
    """The part of a run's meta block every sweep shares: who was checked, against which references (found,
    or skipped with the reason), the time each took, how many cases, and whether the run was interrupted."""
    found = {n: refs.status(n) for n in names}
    per_ref = {n: sum(v.seconds for r in results for v in r.verdicts if v.reference == n) for n in names}
    return {
        "producer": producer_name(producer),
        "fail_on": list(fail_on),
        "references": {n: {"available": s.available, "version": s.version, "reason": s.reason} for n, s in found.items()},
        "skipped": {n: s.reason for n, s in found.items() if not s.available},
        "timings": {"total_seconds": seconds, "producer_seconds": sum(r.seconds for r in results),
                    "per_case_seconds": seconds / len(results) if results else 0.0,
                    **{f"{n}_seconds": t for n, t in per_ref.items()}},
        "cases": len(results),
        "partial": partial,
    } | ({"engine": producer.engine_spec} if getattr(producer, "engine_spec", "") else {})


def check_cases(
    cases: Iterable[Case],
    references: str | Sequence[str] | None = None,
    *,
    producer: Producer = engine.gradients,
    fast: bool = False,
    fail_on: Sequence[str] = DEFAULT_FAIL_ON,
    seed: int | None = None,
    meta: dict[str, Any] | None = None,
) -> RunResult:
    """check_case over cases, with a meta block: seed, versions, references found and skipped, timings.

    Ctrl-C stops the sweep and returns what was checked, with meta['partial'] = True.
    """
    names = refs.require(references)
    fail_on = _fail_on(fail_on)
    results: list[CheckResult] = []
    partial = False
    start = time.perf_counter()
    try:
        for case in cases:
            results.append(check_case(case, names, producer=producer, fast=fast, fail_on=fail_on, skip_missing=True))
    except KeyboardInterrupt:
        partial = True
    info = {"seed": seed, "bpcheck": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "fast": fast, **run_meta(names, producer, fail_on, tuple(results), time.perf_counter() - start, partial)}
    info.update(meta or {})
    return RunResult(info, tuple(results))
