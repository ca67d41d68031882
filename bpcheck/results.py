"""Plain data for what a check found: numbers and labels, never arrays, plus the Case as JSON.

A `CheckResult` is one case checked against every reference: one `Verdict` per reference (its label,
per-tensor `TensorMetrics`, the `Tolerance` used, the worst `Entry`, the first layer that disagrees, a
diagnosis; those parts live in result_parts.py) and an overall label. A `RunResult` is a sweep: a meta block
and a list of CheckResults. Everything round-trips through JSON: `X.from_dict(x.to_dict()) == x`.
Non-finite numbers are written as the strings "inf", "-inf" and "nan", so the files stay strict
JSON; NaN is normalised to one shared object so that equality survives the round trip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from .labels import DEFAULT_FAIL_ON, LABEL_MEANING, LABELS  # noqa: F401 (LABEL_MEANING re-exported from here)
from .message import check_message, verdict_message
from .result_parts import Diagnosis, Entry, TensorMetrics, Tolerance, check_keys, dec, enc, num  # noqa: F401 (re-exported)
from .spec import SpecError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Verdict:
    """The engine against one reference: a label from LABELS, why, and where and how it differs.

    first_bad_layer is the first layer, from the output down, whose dL/dz disagrees (localised_by
    "dz"), or whose W or b disagrees when a side has no dz trace (localised_by "params").
    """

    reference: str
    label: str
    tensors: tuple[TensorMetrics, ...] = ()
    tolerance: Tolerance | None = None
    first_bad_layer: int | None = None
    localised_by: str = ""
    kinks: int = 0
    diagnosis: str = ""
    reason: str = ""
    seconds: float = 0.0
    version: str = ""
    bug: Diagnosis | None = None   # the diagnosis as data (None: none, or a report written before it existed)

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise SpecError(f"Verdict label {self.label!r} is unknown: use one of {', '.join(LABELS)}")
        object.__setattr__(self, "tensors", tuple(self.tensors))
        object.__setattr__(self, "seconds", num(self.seconds))
        object.__setattr__(self, "kinks", int(self.kinks))

    @property
    def failing_tensors(self) -> tuple[TensorMetrics, ...]:
        return tuple(t for t in self.tensors if not t.ok)

    def worst_tensor(self) -> TensorMetrics | None:
        """The disagreeing tensor to lead a message with: W or b of the first bad layer if one disagrees,
        then params and x before traces, then the furthest beyond its bound (excess / tol)."""
        bad = self.failing_tensors
        if not bad:
            return None
        here = {f"W{self.first_bad_layer}", f"b{self.first_bad_layer}"}
        return max(bad, key=lambda t: (t.name in here, not t.name.startswith(("dz", "da")), _ratio(t.excess, t.tol)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference, "label": self.label,
            "tensors": [t.to_dict() for t in self.tensors],
            "tolerance": None if self.tolerance is None else self.tolerance.to_dict(),
            "first_bad_layer": self.first_bad_layer, "localised_by": self.localised_by, "kinks": self.kinks,
            "diagnosis": self.diagnosis, "reason": self.reason, "seconds": enc(self.seconds), "version": self.version,
            "bug": None if self.bug is None else self.bug.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Any) -> Verdict:
        check_keys(d, cls, ("reference", "label"))
        tol = d.get("tolerance")
        layer = d.get("first_bad_layer")
        return cls(
            str(d["reference"]), str(d["label"]), tuple(TensorMetrics.from_dict(t) for t in d.get("tensors", [])),
            None if tol is None else Tolerance.from_dict(tol), None if layer is None else int(layer),
            str(d.get("localised_by", "")), int(d.get("kinks", 0)), str(d.get("diagnosis", "")),
            str(d.get("reason", "")), dec(d.get("seconds", 0.0)), str(d.get("version", "")),
            None if d.get("bug") is None else Diagnosis.from_dict(d["bug"]),
        )

    def message(self) -> str:
        """'[ENGINE] dW2 (engine vs torch) at (2, 0): engine=0.3125, torch=0.31261, rel err 3.5e-4; ...'
        (bpcheck.message.verdict_message)."""
        return verdict_message(self)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.inf


def worst_label(labels: list[str] | tuple[str, ...]) -> str:
    """The most severe of labels (LABELS order); SKIPPED when there are none."""
    return min(labels, key=LABELS.index) if labels else "SKIPPED"


class _CaseDict:
    """A CheckResult's case field: set to a Case or to its dict, read as the dict.

    A Case is turned into Case.to_dict() on first read and kept: for a 100k-param case that costs ~2 ms,
    more than a fast check's arithmetic, and most results of a passing run are never written out.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, obj: Any, owner: type | None = None) -> dict[str, Any]:
        if obj is None:
            raise AttributeError(self.slot)  # no class-level default: the field stays required
        value = obj.__dict__[self.slot]
        if not isinstance(value, dict):
            value = obj.__dict__[self.slot] = value.to_dict()
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value


@dataclass(frozen=True)
class CheckResult:
    """One case checked against every requested reference.

    case is Case.to_dict() (replay with Case.from_dict; a Case may be given, see _CaseDict); seconds is
    the producer's wall time;
    error is the producer's exception message when it raised (then label is ERROR and ok is False).
    """

    case_id: str
    arch: str
    dtype: str
    regime: str
    batch: int
    case: dict[str, Any] = _CaseDict()  # type: ignore[assignment]
    verdicts: tuple[Verdict, ...]
    label: str
    ok: bool
    producer: str = "engine"
    fail_on: tuple[str, ...] = DEFAULT_FAIL_ON
    fast: bool = False
    seconds: float = 0.0
    error: str = ""
    engine: str = ""  # the --engine FILE.py:FUNCTION checked (absolute path), '' for bpcheck's engine

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdicts", tuple(self.verdicts))
        object.__setattr__(self, "fail_on", tuple(self.fail_on))
        object.__setattr__(self, "seconds", num(self.seconds))
        object.__setattr__(self, "batch", int(self.batch))
        object.__setattr__(self, "ok", bool(self.ok))

    __hash__ = None  # type: ignore[assignment]  # holds the case dict

    def verdict(self, reference: str) -> Verdict | None:
        return next((v for v in self.verdicts if v.reference == reference), None)

    @property
    def labels(self) -> dict[str, str]:
        """reference -> label."""
        return {v.reference: v.label for v in self.verdicts}

    def without_timings(self) -> CheckResult:
        """The same result with every wall time set to 0: what a replay must reproduce exactly."""
        return replace(self, seconds=0.0, verdicts=tuple(replace(v, seconds=0.0) for v in self.verdicts))

    def message(self) -> str:
        """The localised, diagnosed one-paragraph message, most severe verdicts first (bpcheck.message)."""
        return check_message(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id, "arch": self.arch, "dtype": self.dtype, "regime": self.regime,
            "batch": self.batch, "producer": self.producer, "label": self.label, "ok": self.ok,
            "fail_on": list(self.fail_on), "fast": self.fast, "seconds": enc(self.seconds), "error": self.error,
            "verdicts": [v.to_dict() for v in self.verdicts], "case": self.case,
        } | ({"engine": self.engine} if self.engine else {})

    @classmethod
    def from_dict(cls, d: Any) -> CheckResult:
        check_keys(d, cls, ("case_id", "arch", "dtype", "regime", "batch", "case", "verdicts", "label", "ok"))
        return cls(
            str(d["case_id"]), str(d["arch"]), str(d["dtype"]), str(d["regime"]), int(d["batch"]), d["case"],
            tuple(Verdict.from_dict(v) for v in d["verdicts"]), str(d["label"]), bool(d["ok"]),
            str(d.get("producer", "engine")), tuple(d.get("fail_on", DEFAULT_FAIL_ON)), bool(d.get("fast", False)),
            dec(d.get("seconds", 0.0)), str(d.get("error", "")), str(d.get("engine", "")),
        )


@dataclass(frozen=True)
class RunResult:
    """A sweep: meta (seed, versions, references found and skipped with reasons, timings, partial) and results."""

    meta: dict[str, Any] = field(default_factory=dict)
    results: tuple[CheckResult, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "results", tuple(self.results))

    __hash__ = None  # type: ignore[assignment]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def partial(self) -> bool:
        return bool(self.meta.get("partial", False))

    def counts(self) -> dict[str, int]:
        """Overall label -> number of cases, in LABELS order, zeros left out."""
        out = {label: sum(r.label == label for r in self.results) for label in LABELS}
        return {k: v for k, v in out.items() if v}

    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "meta": self.meta, "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, d: Any) -> RunResult:
        check_keys(d, cls, ("format_version", "results"))
        if d["format_version"] != FORMAT_VERSION:
            raise SpecError(f"results JSON has format_version={d['format_version']!r}, but this bpcheck reads "
                            f"{FORMAT_VERSION}: re-run the check with this version")
        return cls(dict(d.get("meta", {})), tuple(CheckResult.from_dict(r) for r in d["results"]))
