"""The parts of a Verdict, as plain data with a JSON round trip: the Tolerance a comparison used, a tensor's
TensorMetrics with its worst Entry, and the Diagnosis of a disagreement; and the JSON number helpers every result
uses (non-finite numbers written as the strings "inf", "-inf" and "nan"; NaN normalised to one shared object so
that equality survives the round trip)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from .spec import SpecError

NAN = float("nan")


def num(value: Any) -> float:
    """A Python float; every NaN becomes the one shared NAN, so dataclass equality holds for it."""
    value = float(value)
    return NAN if math.isnan(value) else value


def set_nums(obj: Any, names: tuple[str, ...]) -> None:
    """num() on each named field of a frozen dataclass. A Python float other than NaN is num's answer
    already and is left as it is: results are built per tensor, and the setattrs add up."""
    for f in names:
        value = getattr(obj, f)
        if type(value) is not float or value != value:
            object.__setattr__(obj, f, num(value))


def enc(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)  # 'inf', '-inf', 'nan'


def dec(value: Any) -> float:
    return num(value)  # float('inf') and float('nan') parse the strings _enc writes


def check_keys(d: Any, cls: type, required: tuple[str, ...]) -> None:
    if not isinstance(d, dict):
        raise SpecError(f"{cls.__name__} JSON is {type(d).__name__}, not an object: give a file written by bpcheck")
    missing = [k for k in required if k not in d]
    if missing:
        raise SpecError(f"{cls.__name__} JSON is missing {', '.join(missing)}: give a file written by this bpcheck")


@dataclass(frozen=True)
class Tolerance:
    """The bound one comparison used (see bpcheck.compare.tolerance for where each number comes from).

    A tensor t of n coordinates agrees when ||u_t|| <= rtol * max(||a_t||, ||b_t||) + gamma * E_t
    + atol * sqrt(n), where u_i = max(|a_i - b_i| - fd_mult * err_i - fd_floor, 0) is the error FD's
    own estimate err does not explain (u = |a - b| for analytic references) and E_t the rounding
    error scale of the computation (so gamma * E_t is the rounding the producer's dtype allows).
    """

    kind: str            # "analytic" (torch, jax) or "fd"
    dtype: str           # the engine's dtype: "float64" or "float32"
    rtol: float
    gamma: float
    fd_mult: float = 0.0
    fd_floor: float = 0.0
    atol: float = 0.0    # absolute, per sqrt(coordinate): below it the dtype underflows

    def __post_init__(self) -> None:
        set_nums(self, ("rtol", "gamma", "fd_mult", "fd_floor", "atol"))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (enc(v) if isinstance(v := getattr(self, f.name), float) else v) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Any) -> Tolerance:
        check_keys(d, cls, ("kind", "dtype", "rtol", "gamma"))
        return cls(str(d["kind"]), str(d["dtype"]), dec(d["rtol"]), dec(d["gamma"]),
                   dec(d.get("fd_mult", 0.0)), dec(d.get("fd_floor", 0.0)), dec(d.get("atol", 0.0)))


@dataclass(frozen=True)
class Entry:
    """One coordinate of a tensor: its index, the engine's and the reference's values and their errors."""

    index: tuple[int, ...]
    engine: float
    reference: float
    abs_err: float
    rel_err: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", tuple(map(int, self.index)))
        set_nums(self, ("engine", "reference", "abs_err", "rel_err"))

    def to_dict(self) -> dict[str, Any]:
        return {"index": list(self.index), "engine": enc(self.engine), "reference": enc(self.reference),
                "abs_err": enc(self.abs_err), "rel_err": enc(self.rel_err)}

    @classmethod
    def from_dict(cls, d: Any) -> Entry:
        check_keys(d, cls, ("index", "engine", "reference", "abs_err", "rel_err"))
        return cls(tuple(d["index"]), dec(d["engine"]), dec(d["reference"]), dec(d["abs_err"]), dec(d["rel_err"]))


_METRIC_FLOATS = ("max_abs", "max_rel", "norm_rel", "cosine", "excess", "tol")


@dataclass(frozen=True)
class TensorMetrics:
    """How one gradient tensor ("W1", "b1", ..., "x" for dL/dx, "dz2" for a trace) compares.

    max_abs = max |a - b|; max_rel = max |a - b| / max(|a|, |b|, floor); norm_rel = ||a - b|| /
    max(||a||, ||b||); cosine = <a, b> / (||a|| ||b||) (1 when both are zero); excess = the
    unexplained error ||u|| / max(||a||, ||b||) and tol the bound it is held to, so ok = excess <= tol.
    Coordinates in a kink are left out of every number and counted in kinks.
    """

    name: str
    max_abs: float
    max_rel: float
    norm_rel: float
    cosine: float
    excess: float
    tol: float
    ok: bool
    kinks: int = 0
    worst: Entry | None = None
    note: str = ""       # why the tensor could not be compared entry by entry (missing, another shape)

    def __post_init__(self) -> None:
        set_nums(self, _METRIC_FLOATS)
        if type(self.ok) is not bool or type(self.kinks) is not int:
            object.__setattr__(self, "ok", bool(self.ok))
            object.__setattr__(self, "kinks", int(self.kinks))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        d.update({f: enc(getattr(self, f)) for f in _METRIC_FLOATS})
        d.update(ok=self.ok, kinks=self.kinks, worst=None if self.worst is None else self.worst.to_dict(), note=self.note)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> TensorMetrics:
        check_keys(d, cls, ("name", *_METRIC_FLOATS, "ok"))
        worst = d.get("worst")
        return cls(str(d["name"]), *(dec(d[f]) for f in _METRIC_FLOATS), bool(d["ok"]), int(d.get("kinks", 0)),
                   None if worst is None else Entry.from_dict(worst), str(d.get("note", "")))


@dataclass(frozen=True)
class Diagnosis:
    """What a disagreement looks like, as data rather than a sentence to parse back.

    code: the bug shape ('wrong_derivative', 'missing_derivative', 'bias_averaged', 'factor', ...);
    params: its parameters as (key, value) pairs of JSON scalars (layer, activation, form, factor);
    name: the bug in words with none of the case's own numbers (batch, coefficients), so that the same
    bug on many cases reads the same ("layer 1 computes tanh' as 1 - a (should be 1 - a²)");
    sentence: the whole diagnosis of this case, numbers included (Verdict.diagnosis).
    """

    code: str
    name: str
    sentence: str
    params: tuple[tuple[str, Any], ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.params).get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "sentence": self.sentence, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, d: Any) -> Diagnosis:
        check_keys(d, cls, ("code", "name", "sentence"))
        params = d.get("params") or {}
        if not isinstance(params, dict):
            raise SpecError(f"Diagnosis params={params!r:.60} is not an object: give {{key: value}}")
        return cls(str(d["code"]), str(d["name"]), str(d["sentence"]), tuple(params.items()))
