"""What every renderer shows, computed once from a RunResult: counts, breakdowns, worst cases, kinds.

Renderers only lay these numbers out, so the Markdown, HTML and JUnit files of one RunResult (or of
its report.json, re-read by `render`) always say the same thing.

Counting unit: one verdict, i.e. one (case, reference) pair. A result whose producer raised (or
whose worker died) has no verdicts; it counts as ERROR for every reference of the run.
"""

from __future__ import annotations

import math
import re
import shlex
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..results import LABELS, CheckResult, RunResult, Verdict

DISAGREEMENTS = ("ENGINE", "REFERENCE", "CONVENTION")  # the labels that get a minimal reproducer
SAVED = ("ENGINE", "REFERENCE", "ERROR", "CONVENTION", "FD_NOISE")  # the labels whose cases are saved for replay
POSITIONS = ("output", "hidden", "first", "not localised")
DIMENSIONS = ("position", "activation", "loss", "dtype", "regime")
JUDGED_FLOOR = -6.0  # log10(excess / tol) at or below this (and an excess of 0: all explained) is drawn here
WORST_ROWS = 10
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def references_of(run: RunResult) -> list[str]:
    """The run's references, from meta, else from the verdicts, in first-seen order."""
    names = list((run.meta.get("references") or {}).keys())
    for r in run.results:
        names += [v.reference for v in r.verdicts if v.reference not in names]
    return list(dict.fromkeys(names))


def _arch(result: CheckResult) -> dict[str, Any]:
    arch = result.case.get("arch") if isinstance(result.case, dict) else None
    return arch if isinstance(arch, dict) else {}


def n_layers(result: CheckResult) -> int | None:
    arch = _arch(result)
    if isinstance(arch.get("layers"), list):  # spec_version 2
        return len(arch["layers"]) or None
    sizes = arch.get("sizes")  # spec_version 1
    return len(sizes) - 1 if sizes else None


def position(result: CheckResult, layer: int | None) -> str:
    """Where the first disagreeing layer sits: output (layer L), first (layer 1 of L > 1) or hidden."""
    depth = n_layers(result)
    if layer is None or depth is None:
        return "not localised"
    if layer == depth:
        return "output"
    return "first" if layer == 1 else "hidden"


def activations(result: CheckResult) -> list[str]:
    """The activations the case's net applies (a dense layer's, an activation layer's), or ['?']."""
    arch = _arch(result)
    acts = arch.get("activations")
    if isinstance(arch.get("layers"), list):
        configs = [layer[1] for layer in arch["layers"] if isinstance(layer, list) and len(layer) == 2]
        acts = [a for c in configs if isinstance(c, dict) for a in (c.get("activation"), c.get("fn")) if a]
    return sorted(set(acts or ["?"]))


def layer_kinds(result: CheckResult) -> list[str]:
    """The distinct layer kinds of the case's stack ('dense' for an MLP case file of spec_version 1), or ['?']."""
    arch = _arch(result)
    if isinstance(arch.get("layers"), list):
        kinds = [layer[0] for layer in arch["layers"] if isinstance(layer, list) and layer and isinstance(layer[0], str)]
        return list(dict.fromkeys(kinds)) or ["?"]
    return ["dense"] if arch.get("sizes") else ["?"]


def by_layer_kind(run: RunResult) -> dict[str, Counter]:
    """kind -> the labels of the cases whose stack contains it (one count per case, its overall label)."""
    table: dict[str, Counter] = {}
    for r in run.results:
        for k in layer_kinds(r):
            table.setdefault(k, Counter())[r.label] += 1
    return dict(sorted(table.items(), key=lambda item: (-sum(item[1].values()), item[0])))


def loss(result: CheckResult) -> str:
    return str(_arch(result).get("loss", "?"))


def pairs(run: RunResult) -> list[tuple[CheckResult, str, Verdict | None]]:
    """(result, reference, verdict) for every pair; verdict None when the producer itself failed."""
    names = references_of(run)
    out = []
    for r in run.results:
        if not r.verdicts:
            out += [(r, n, None) for n in names]
        else:
            out += [(r, v.reference, v) for v in r.verdicts]
    return out


def label_of(r: CheckResult, v: Verdict | None) -> str:
    return v.label if v is not None else r.label


def per_reference(run: RunResult) -> dict[str, Counter]:
    table: dict[str, Counter] = {n: Counter() for n in references_of(run)}
    for r, name, v in pairs(run):
        table.setdefault(name, Counter())[label_of(r, v)] += 1
    return table


def breakdown(run: RunResult, dimension: str) -> dict[str, Counter]:
    """value -> label counts over every (case, reference) pair; a case counts once per activation it has."""
    table: dict[str, Counter] = {}
    for r, _, v in pairs(run):
        if dimension == "position":
            keys = [position(r, v.first_bad_layer if v is not None else None)]
        elif dimension == "activation":
            keys = activations(r)
        elif dimension == "loss":
            keys = [loss(r)]
        else:
            keys = [getattr(r, dimension)]
        for key in keys:
            table.setdefault(key, Counter())[label_of(r, v)] += 1
    if dimension == "position":
        return {k: table[k] for k in POSITIONS if k in table}
    return dict(sorted(table.items()))


def breakdowns(run: RunResult) -> dict[str, dict[str, Counter]]:
    """The breakdown tables that carry information. Left out: a single row, which repeats the per-reference
    counts under a value the options already say (one dtype) or that says nothing ('not localised' for every
    case of a passing run), unless it is where every disagreement sits; and a table where every pair AGREEs."""
    out = {}
    for dim in DIMENSIONS:
        table = breakdown(run, dim)
        single = len(table) == 1 and not (dim == "position" and "not localised" not in table)
        if table and not single and labels_present(table) != ["AGREE"]:
            out[dim] = table
    return out


def labels_present(*tables: dict[str, Counter]) -> list[str]:
    """The labels that occur in any table, in LABELS order (columns of the count tables)."""
    seen = {label for t in tables for c in t.values() for label in c}
    return [label for label in LABELS if label in seen]


def judged_ratio(v: Verdict) -> float | None:
    """What the verdict judged: the largest excess / tol of its param and dx tensors, i.e. the error no
    estimate explains (kink-crossing coordinates left out), over the bound it was held to; <= 1 passes."""
    ratios = [t.excess / t.tol if t.tol > 0 else (math.inf if t.excess > 0 else 0.0) for t in v.tensors
              if not t.name.startswith(("dz", "da")) and math.isfinite(t.excess)]
    return max(ratios) if ratios else None


def log_judged(run: RunResult) -> dict[str, list[float]]:
    """reference -> log10(excess / tol) of each compared verdict, 0 and anything below drawn at JUDGED_FLOOR."""
    out: dict[str, list[float]] = {n: [] for n in references_of(run)}
    for r in run.results:
        for v in r.verdicts:
            e = judged_ratio(v)
            if e is not None:
                out.setdefault(v.reference, []).append(max(math.log10(e), JUDGED_FLOOR) if e > 0 else JUDGED_FLOOR)
    return out


def _ratio(v: Verdict) -> float:
    """How far past its bound the verdict's worst tensor went: max excess / tol (0 when none compared)."""
    ratios = [t.excess / t.tol if t.tol > 0 else (math.inf if t.excess > 0 else 0.0)
              for t in v.tensors if math.isfinite(t.excess)]
    return max(ratios, default=0.0)


@dataclass(frozen=True)
class Row:
    """One line of the worst-cases table."""

    result: CheckResult
    verdict: Verdict
    ratio: float

    @property
    def tensor(self) -> str:
        t = self.verdict.worst_tensor()
        return t.name if t is not None else ""


def worst_heading(run: RunResult) -> str:
    """'Worst cases' on a failing run; on a passing one the same rows are the cases closest to their tolerance."""
    return "Worst cases" if run.failures() else "Closest to their tolerance (all within it)"


def worst(run: RunResult, limit: int = WORST_ROWS) -> list[Row]:
    """The compared verdicts furthest past their tolerance: failing labels first, then by excess / tol."""
    rows = [Row(r, v, _ratio(v)) for r in run.results for v in r.verdicts if v.label not in ("SKIPPED",)]
    rows.sort(key=lambda row: (LABELS.index(row.verdict.label), -row.ratio, row.result.case_id, row.verdict.reference))
    return rows[:limit]


_TENSOR_LIST = re.compile(r"\b(d[A-Za-z]+#)(?:(?:, | and )d[A-Za-z]+#)+")


def pattern(diagnosis: str) -> str:
    """A diagnosis with its numbers blanked, and a list of tensors folded to its first: 'db1, db2 = 0.25 x
    torch' and 'db3 = 0.5 x torch' are one kind, 'db# = # x torch', however many layers the batch showed it in."""
    return _TENSOR_LIST.sub(r"\1", _NUMBER.sub("#", diagnosis)).strip()


_LAYER_INDEX = re.compile(r"\b(layer |d?W|d?b|dz|da)\d+")


def bug_pattern(name: str) -> str:
    """A Diagnosis name with its layer indices blanked and its tensor lists folded: the bug, wherever the
    case put it ('layer # computes tanh' as 1 - a (should be 1 - a²)'), since the shrinker changes depth."""
    return _TENSOR_LIST.sub(r"\1", _LAYER_INDEX.sub(r"\1#", name)).strip()


def kind(r: CheckResult, v: Verdict) -> tuple[str, str, str]:
    """(label, diagnosis pattern, layer position): what makes two disagreements the same kind.

    The diagnosis is read from its data (Verdict.bug: its name has no numbers of the case's own) when the
    verdict has one, else from its sentence with the numbers blanked (reports written before). The reference
    is left out (a bug shows against torch, jax and fd alike), and so are the reference names inside it."""
    text = bug_pattern(v.bug.name) if v.bug is not None else pattern(v.diagnosis).replace(v.reference, "REF")
    return v.label, text, position(r, v.first_bad_layer)


def kinds(run: RunResult) -> dict[tuple[str, str, str], list[tuple[CheckResult, Verdict]]]:
    """Every distinct kind of disagreement (DISAGREEMENTS labels), with its (result, verdict) pairs in order."""
    out: dict[tuple[str, str, str], list[tuple[CheckResult, Verdict]]] = {}
    for r in run.results:
        for v in r.verdicts:
            if v.label in DISAGREEMENTS:
                out.setdefault(kind(r, v), []).append((r, v))
    return out


def saved(run: RunResult) -> list[CheckResult]:
    """The results saved as cases/<id>.json: every one with a disagreement or an error (and a case to replay)."""
    return [r for r in run.results if r.case and (r.label in SAVED or not r.ok)]


def exit_code(run: RunResult) -> int:
    """1 when a case fails (what verdict_line counts), else 0: `report` (130 instead when interrupted) and
    `render` exit with it, so a rendered report exits as its run did."""
    return 1 if run.failures() else 0


def verdict_line(run: RunResult) -> str:
    """'FAIL: 3 of 200 cases carry a failing label (ENGINE, REFERENCE)' or 'PASS: ...'.

    A case fails either by a verdict with a --fail-on label or as an ERROR with no verdicts (the gradient under
    test raised, or its worker died), which carries no label to name: the line says which of the two happened.
    """
    n = len(run.results)
    fail_on = tuple(run.meta.get("fail_on", ()))
    failures = run.failures()
    names = ", ".join(fail_on)
    part = f" (partial: {run.meta.get('partial_reason', 'interrupted')})" if run.partial else ""
    if not n:
        return f"NOT CHECKED: no case was checked{part}"
    unchecked = [r for r in failures if r.verdicts and not any(v.label in fail_on for v in r.verdicts)]
    if unchecked:
        # check.compared: every reference of these cases SKIPPED or ERROR (e.g. a gradient that overflows)
        more = len(failures) - len(unchecked)
        return (f"FAIL: {len(unchecked)} of {n} cases were compared by no reference (skipped, raised, or not "
                f"finite in their dtype)" + (f"; {more} more fail" if more else "") + part)
    errors = sum(not any(v.label in fail_on for v in r.verdicts) for r in failures)
    if failures and not errors:
        return f"FAIL: {len(failures)} of {n} cases carry a failing label ({names}){part}"
    if failures and errors == len(failures):
        return f"FAIL: {errors} of {n} cases ended in an ERROR (the gradient under test raised or its worker died){part}"
    if failures:
        return (f"FAIL: {len(failures)} of {n} cases carry a failing label ({names}) or an error: "
                f"{len(failures) - errors} labelled, {errors} ERROR{part}")
    return f"PASS: none of {n} cases carries a failing label ({names}){part}"


def engine_option(run: RunResult) -> str:
    """' --engine SPEC' for a run of the user's --engine, else '': replay never runs code that a file names,
    so every printed replay command spells the function out."""
    engine = run.meta.get("engine")
    return f" --engine {shlex.quote(engine)}" if engine else ""


def replay_command(run: RunResult, file: str, folder: str = "") -> str:
    return f"python -m bpcheck replay {shlex.quote(folder + file)}{engine_option(run)}"
