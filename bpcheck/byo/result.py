"""What check_gradients found: plain data, a readable summary, and a RunResult for the report writer."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..results import CheckResult, RunResult

VAGUE = ("factor", "unexplained", "factor+unexplained", "shape")  # Diagnosis codes that name no bug of their own
SHOWN_KINDS = 3  # the top line names at most this many kinds of disagreement; the case lines show the rest
# Findings the CLI treats as input errors (exit 2): the function cannot be checked at all.
INPUT_CHECKS: tuple[str, ...] = ("interface", "raises", "timeout")
# The checks check_gradients and check_layer share, in words; each answer's check_names adds its own.
CHECK_NAMES: dict[str, str] = {
    "raises": "calls", "timeout": "calls", "finite": "finite values", "stale": "no hidden state (A, B, A gives A twice)",
}


@dataclass(frozen=True)
class Finding:
    """A failed check beyond the value comparison: check is a key of the answer's check_names; case its index (if
    any); arg the argument it names (check_layer's 'x', 'w', ...; '' for none)."""

    check: str
    message: str
    case: int | None = None
    arg: str = ""


@dataclass(frozen=True)
class CaseOutcome:
    """One case: the comparison against the references (None when the call failed first), its label,
    whether it passed, and the loss-convention explanation of a disagreement ('' when none)."""

    index: int
    label: str
    ok: bool
    result: CheckResult | None = None
    explanation: str = ""
    describe: str = ""   # "float64 ordinary, 2-2-1 sigmoid,sigmoid mse, batch 4"
    convention: str = ""  # the loss convention explanation names (Variant.key), 'shape' when simple shapes relative
    #                       to the declared loss explain every tensor (a weight-decay term), '' when neither

    def name(self) -> str:
        """What this case shows, in words without its own numbers: a loss convention (or weight-decay term)
        when one explains the gradient, else the bug the verdicts name ("layer 1 computes tanh' as 1 - a (should be 1 - a²)"),
        else the explanation; '' for a case that agrees."""
        bug = self.bug()
        named = bug is not None and bug.code not in VAGUE
        if self.convention and (self.convention != "shape" or not named):
            return self.explanation
        return bug.name if bug is not None else self.explanation

    def bug(self):
        """The Diagnosis of the case's disagreement: an analytic reference's first, then finite differences'."""
        verdicts = [] if self.result is None else [v for v in self.result.verdicts if v.bug is not None]
        verdicts.sort(key=lambda v: v.reference.startswith("fd"))
        return verdicts[0].bug if verdicts else None


class Outcomes:
    """What check_gradients' and check_layer's answers share: outcomes with a label and ok, findings with a check."""

    outcomes: tuple
    findings: tuple
    diagnosis: str
    ok: bool
    check_names: ClassVar[dict[str, str]] = CHECK_NAMES

    @property
    def input_error(self):
        """The finding that kept the function from being checked (raised, hung, wrong keys or shapes)."""
        return next((f for f in self.findings if f.check in INPUT_CHECKS), None)

    @property
    def labels(self) -> dict[str, int]:
        """Case label -> count, most severe first."""
        from ..results import LABELS

        counts = Counter(o.label for o in self.outcomes)
        return {label: counts[label] for label in LABELS if counts[label]}

    def failing(self) -> tuple:
        return tuple(o for o in self.outcomes if not o.ok)

    def verdict_lines(self, head: str) -> list[str]:
        """The summary's top: head, ok or FAIL with the label counts, the diagnosis, one line per failed check."""
        counts = ", ".join(f"{n} {label}" for label, n in self.labels.items()) or "none compared"
        lines = [head, f"{'ok' if self.ok else 'FAIL'}: {counts}"]
        if self.diagnosis:
            lines.append(f"diagnosis: {self.diagnosis}")
        for f in self.findings:
            where = f" (case {f.case})" if f.case is not None else ""
            lines.append(f"check failed, {self.check_names.get(f.check, f.check)}{where}: {f.message}")
        return lines

    def passed_lines(self, passed: list[str]) -> list[str]:
        """'checks passed: ...' naming passed, unless none did or the function could not be checked at all."""
        return ["checks passed: " + "; ".join(passed)] if passed and not self.input_error else []


@dataclass(frozen=True)
class Result(Outcomes):
    """check_gradients' answer. ok: every case passed (CONVENTION counts as a pass) and no check failed."""

    function: str
    layout: str
    references: tuple[str, ...]
    seed: int
    outcomes: tuple[CaseOutcome, ...]
    findings: tuple[Finding, ...]
    diagnosis: str
    ok: bool
    meta: dict[str, Any] = field(default_factory=dict)
    check_names: ClassVar[dict[str, str]] = {
        **CHECK_NAMES, "interface": "keys, shapes and dtypes", "dtype": "the case's precision (no float16 for a float64 case)",
        "mutation": "inputs left unmodified",
    }

    def run_result(self) -> RunResult:
        """The compared cases as a RunResult with a meta block in the sweep's form (what the report renders)."""
        from .. import references as refs
        from ..results import DEFAULT_FAIL_ON

        results = tuple(o.result for o in self.outcomes if o.result is not None)
        names = list(dict.fromkeys([*self.references, *(v.reference for r in results for v in r.verdicts)]))
        # A verdict against bpcheck's own engine (user_oracle.ENGINE_REF) needs only numpy, as fd does.
        found = {n: refs.status(n.split(":")[0] if n.split(":")[0] in refs.NAMES else "fd") for n in names}
        meta = {"seed": self.seed, "producer": self.function, "fail_on": list(DEFAULT_FAIL_ON),
                "references": {n: {"available": s.available, "version": s.version, "reason": s.reason}
                               for n, s in found.items()},
                "skipped": {n: s.reason for n, s in found.items() if not s.available},
                "cases": len(results), "partial": False, "layout": self.layout, "diagnosis": self.diagnosis,
                "findings": [{"check": f.check, "message": f.message, "case": f.case} for f in self.findings],
                **self.meta}
        return RunResult(meta, results)

    def summary(self) -> str:
        """Several lines: verdict, diagnosis, the checks, the first failing case in full, then one line per case."""
        head = (f"{self.function} ({self.layout} layout), {len(self.outcomes)} case(s), seed {self.seed}, "
                f"references {', '.join(self.references)}")
        lines = self.verdict_lines(head)
        failed = {f.check for f in self.findings}
        passed = [self.check_names[c] for c in ("interface", "finite", "mutation", "stale") if c not in failed]
        if "dtype" in failed and passed and passed[0] == self.check_names["interface"]:
            passed[0] = "keys and shapes"  # a float16 answer did not pass a dtype check
        lines += self.passed_lines(passed)
        first = next((o for o in self.outcomes if not o.ok and o.result is not None), None)
        if first is not None:
            lines.append(f"first failing case, #{first.index}: {first.result.message()}")
        usual = most_common(list(self.outcomes))
        for o in self.outcomes:
            extra = f": {o.explanation}" if o.explanation and o.explanation != usual else ""
            lines.append(f"  case {o.index}: {o.label:<10} {o.describe}{extra}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def most_common(outcomes: list[CaseOutcome]) -> str:
    texts = [o.explanation for o in outcomes if o.explanation]
    return Counter(texts).most_common(1)[0][0] if texts else ""


def common_diagnosis(outcomes: list[CaseOutcome]) -> str:
    """What the cases that differ show, grouped by name, most frequent first: 'layer 1 computes tanh' as
    1 - a (should be 1 - a²) (in 6 of 8 cases that differ); dW1 transposed (in 2 of 8 ...)'. Each case
    counts once, under its loss convention when one explains it, else under its bug's name (CaseOutcome.name)."""
    names = [o.name() for o in outcomes if not o.ok or o.label == "CONVENTION" or o.explanation]
    names = [n for n in names if n]
    if not names:
        return ""
    counts = Counter(names).most_common()
    if len(counts) == 1 and counts[0][1] == len(names):
        return counts[0][0]
    shown = [f"{text} (in {n} of {len(names)} cases that differ)" for text, n in counts[:SHOWN_KINDS]]
    rest = sum(n for _, n in counts[SHOWN_KINDS:])
    return "; ".join(shown) + (f"; {rest} more case(s) of {len(counts) - SHOWN_KINDS} other kind(s)" if rest else "")
