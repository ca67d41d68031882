"""What check_layer found: per case, per argument and reference, a label; the failed checks; a diagnosis."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..byo.result import CHECK_NAMES, Finding, Outcomes
from .judge import PASSING, ArgVerdict

PROPERTIES = ("shapes", "finite", "dtype", "forward", "mutation", "stale", "twice", "linearity", "zero", "permutation",
              "float32")


@dataclass(frozen=True)
class LayerOutcome:
    """One case: its verdicts (one per argument and reference), label, and the diagnosis of a failure."""

    index: int
    label: str
    ok: bool
    describe: str
    batch: int
    verdicts: tuple[ArgVerdict, ...] = ()
    diagnosis: str = ""
    shape_args: tuple[str, ...] = ()   # arguments whose gradient came back in the wrong shape
    traits: tuple = ()                 # (("batch", 3), ("stride", 2), ...): what 'fails only for' compares

    @property
    def bad_args(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.shape_args, *(v.arg for v in self.verdicts if v.label not in PASSING)]))

    def message(self, kind: str) -> str:
        bad = [v for v in self.verdicts if v.label not in PASSING]
        if self.shape_args:
            return f"{self.label} on {self.describe}\n    {self.diagnosis}: see the shapes check"
        if not bad:
            return f"{self.label}: {self.describe}"
        parts = []
        for arg in self.bad_args:
            vs = [v for v in bad if v.arg == arg]
            m = vs[0].metrics
            at = f" (worst at {m.worst.index}: yours {m.worst.engine:.6g}, {vs[0].reference} {m.worst.reference:.6g})" \
                if m.worst is not None else ""
            parts.append(f"d{arg} of {kind} differs from {', '.join(v.reference for v in vs)}: relative error "
                         f"{m.norm_rel:.3g}{at}; {vs[0].reason}")
        diagnosis = f"\n    diagnosis: {self.diagnosis}" if self.diagnosis else ""
        return f"{self.label} on {self.describe}\n    " + "\n    ".join(parts) + diagnosis


@dataclass(frozen=True)
class LayerResult(Outcomes):
    """check_layer's answer. ok: every case passed (KINK, CONVENTION, FD_NOISE count as passes), no check failed."""

    function: str
    kind: str
    references: tuple[str, ...]
    seed: int
    outcomes: tuple[LayerOutcome, ...]
    findings: tuple[Finding, ...]
    diagnosis: str
    ok: bool
    smallest: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    check_names: ClassVar[dict[str, str]] = {
        **CHECK_NAMES, "interface": "what forward and backward return", "shapes": "gradient shapes",
        "crash": "no exception on any case", "dtype": "gradients in the arrays' dtype", "forward": "the forward's output",
        "mutation": "arrays, dout and cache left unmodified", "twice": "the same answer twice",
        "linearity": "linear in dout", "zero": "zero dout gives zero gradients",
        "permutation": "permuting the batch permutes dx and leaves the parameter gradients alone",
        "float32": "in float32, within float32's rounding of the float64 reference",
    }

    @property
    def wrong_args(self) -> tuple[str, ...]:
        """The arguments whose gradient some case or check found wrong ('x', 'w', ...), in the forward's order."""
        args = [a for o in self.outcomes for a in o.bad_args]
        args += [f.arg for f in self.findings if f.arg]
        return tuple(dict.fromkeys(args))

    def summary(self) -> str:
        lines = self.verdict_lines(f"{self.function} as {self.kind}, {len(self.outcomes)} case(s), seed {self.seed}, "
                                   f"references {', '.join(self.references) or 'none'}")
        failed = {f.check for f in self.findings}
        lines += self.passed_lines([self.check_names[c] for c in PROPERTIES
                                    if c not in failed and c in self.meta.get("ran", ())])
        first = next((o for o in self.outcomes if not o.ok), None)
        if first is not None:
            lines.append(f"first failing case, #{first.index}: {first.message(self.kind)}")
        if self.smallest:
            lines.append(f"smallest failing case (shrunk): {self.smallest}")
        only = only_for(self.outcomes)
        if only:
            lines.append(f"fails only for {only} (every failing case here has it, no passing case does)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def only_for(outcomes: tuple[LayerOutcome, ...]) -> str:
    """'batch >= 2' or 'pad >= 1, stride = 2' when a trait splits these cases: every failing case on one side of a
    value, every passing case on the other; '' when none does."""
    bad = [dict(o.traits) for o in outcomes if not o.ok]
    good = [dict(o.traits) for o in outcomes if o.ok]
    if not bad or not good:
        return ""
    found = []
    for key in bad[0]:
        b = [t[key] for t in bad if key in t]
        g = [t[key] for t in good if key in t]
        if len(b) < len(bad) or not g:
            continue
        if max(g) < min(b):
            found.append(f"{key} {'=' if max(b) == min(b) and min(b) == max(g) + 1 and key != 'batch' else '>='} {min(b)}")
        elif min(g) > max(b):
            found.append(f"{key} {'=' if min(b) == max(b) else '<='} {max(b)}")
    return ", ".join(found)


def common(texts: list[str]) -> str:
    """The diagnoses of the failing cases, most frequent first: 'X (in 6 of 8 failing cases); Y (in 2 of 8 ...)'."""
    texts = [t for t in texts if t]
    if not texts:
        return ""
    counts = Counter(texts).most_common()
    if len(counts) == 1:
        return counts[0][0]
    return "; ".join(f"{t} (in {n} of {len(texts)} failing cases)" for t, n in counts[:3])
