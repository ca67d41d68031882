"""Replay a stored case: re-run check_case on it and get the same verdict, bit for bit.

    result = bpcheck.replay("minimal.json", producer=my_gradients)
    print(result.message())

The file is either a Case (Case.to_dict(), as a shrunk Hypothesis example is written) or a
CheckResult (CheckResult.to_dict(), whose 'case' is replayed with the references, fast flag and
fail_on it recorded). Case JSON stores every float as a Python float, whose repr round-trips
exactly, so the replayed case has the same bytes, the same case_id and the same numbers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from . import engine
from .check import Producer, check_case
from .results import DEFAULT_FAIL_ON, CheckResult
from .spec import Case, SpecError


def load_case(path: str | os.PathLike[str]) -> tuple[Case, dict[str, Any]]:
    """The Case stored at path, and the recorded check settings (empty for a bare Case file)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise SpecError(f"cannot read case file {os.fspath(path)!r} ({exc.strerror}): give the path of a JSON "
                        "file written by bpcheck") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"case file {os.fspath(path)!r} is not JSON ({exc.msg} at line {exc.lineno}): give a file "
                        "written by bpcheck") from None
    if isinstance(data, dict) and "format_version" in data and "results" in data:
        raise SpecError(f"{os.fspath(path)!r} is a whole report, not one case: give cases/<id>.json from the "
                        "report's directory (or re-render the report with `bpcheck render`)")
    if isinstance(data, dict) and "verdicts" in data and "case" in data:
        result = CheckResult.from_dict(data)
        recorded = {"references": [v.reference for v in result.verdicts] or None, "fast": result.fast,
                    "fail_on": result.fail_on}
        return Case.from_dict(result.case), recorded
    return Case.from_dict(data), {}


def replay(
    path: str | os.PathLike[str],
    producer: Producer = engine.gradients,
    *,
    references: str | Sequence[str] | None = None,
    fast: bool | None = None,
    fail_on: Sequence[str] | None = None,
) -> CheckResult:
    """check_case on the case stored at path; unset options take the values a CheckResult file recorded
    (else: every reference, fast=False, the default fail_on)."""
    case, recorded = load_case(path)
    return check_case(
        case,
        references if references is not None else recorded.get("references"),
        producer=producer,
        fast=fast if fast is not None else recorded.get("fast", False),
        fail_on=fail_on if fail_on is not None else recorded.get("fail_on", DEFAULT_FAIL_ON),
    )
