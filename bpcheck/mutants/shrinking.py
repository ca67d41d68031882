"""A mutant's minimal reproducer: bpcheck.shrink (Hypothesis find over the strategies, the same kind
of disagreement kept), or, when that finds nothing or cannot run, a greedy fallback.

The fallback has three moves, each kept when the mutant is still caught (label ENGINE): fewer
batch rows (the first 1, then 2, ...), the float64 copy of a float32 case, and every number
rounded to 2, then 3 significant digits (short numbers a person can retype).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..check import check_case
from ..spec import BpcheckError, Case


def _round(case: Case, digits: int) -> Case:
    def r(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        mag = np.where(v == 0, 1.0, 10.0 ** (np.floor(np.log10(np.abs(np.where(v == 0, 1.0, v)))) - digits + 1))
        return (np.round(v / mag) * mag).astype(case.dtype)

    return Case(case.arch, {k: r(v) for k, v in case.params.items()}, r(case.x), r(case.y), case.regime)


def _caught(producer, case: Case, references) -> bool:
    return check_case(case, references, producer=producer, skip_missing=True).label == "ENGINE"


def minimal_case(producer, case: Case, references=None) -> dict[str, Any]:
    """{'arch', 'batch', 'dtype', 'moves', 'case', 'by'}: a smaller case on which the mutant is still caught."""
    try:
        found = _hypothesis_shrunk(producer, case, references)
    except Exception:  # bpcheck.shrink missing or failing: the greedy moves still give a smaller case
        found = None
    if found is not None:
        return found
    return {**greedy(producer, case, references), "by": "greedy"}


def _hypothesis_shrunk(producer, case: Case, references) -> dict[str, Any] | None:
    from .. import references as refs
    from ..report.analysis import kind
    from ..shrink import shrink_one

    names = refs.resolve(references)
    result = check_case(case, names, producer=producer, skip_missing=True)
    verdict = next(v for v in result.verdicts if v.label == "ENGINE")
    shrunk, calls = shrink_one(case, kind(result, verdict), names, producer, result.fail_on, 3, 4)
    if shrunk is None:
        return None
    return {"arch": shrunk.arch, "batch": shrunk.batch, "dtype": shrunk.dtype, "moves": [f"{calls} checks"],
            "case": shrunk.case, "by": "bpcheck.shrink"}


def greedy(producer, case: Case, references=None) -> dict[str, Any]:
    """Fewer rows, float64, rounded numbers: each move kept when the mutant is still caught."""
    moves = []
    for rows in range(1, case.batch):
        smaller = Case(case.arch, case.params, case.x[:rows], case.y[:rows], case.regime)
        if _caught(producer, smaller, references):
            case = smaller
            moves.append(f"batch {rows}")
            break
    if case.dtype is not np.float64 and _caught(producer, case.astype(np.float64), references):
        case = case.astype(np.float64)
        moves.append("float64")
    for digits in (2, 3):
        try:
            rounded = _round(case, digits)
        except BpcheckError:  # rounding made a target invalid for its loss
            continue
        if _caught(producer, rounded, references):
            case = rounded
            moves.append(f"{digits} digits")
            break
    return {"arch": case.arch.label(), "batch": case.batch, "dtype": case.x.dtype.name, "moves": moves,
            "case": case.to_dict()}
