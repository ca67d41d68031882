"""Replay a stored case: re-run check_case on it and get the same verdict, bit for bit.

    result = bpcheck.replay("minimal.json", producer=my_gradients)
    print(result.message())

The file is either a Case (Case.to_dict(), as a shrunk Hypothesis example is written) or a
CheckResult (CheckResult.to_dict(), whose 'case' is replayed with the references, fast flag and
fail_on it recorded). Case JSON stores every float as a Python float, whose repr round-trips
exactly, so the replayed case has the same bytes, the same case_id and the same numbers.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from typing import Any

from . import engine, jsonfile
from .check import Producer, check_case
from .results import DEFAULT_FAIL_ON, CheckResult
from .spec import SPEC_VERSIONS, Case, SpecError, UsageError

_FIX = "give a file written by bpcheck (cases/<id>.json from a report, or a Case JSON)"


def load_case(path: str | os.PathLike[str]) -> tuple[Case, dict[str, Any]]:
    """The Case stored at path, and the recorded check settings (empty for a bare Case file).

    The file is read once by bpcheck.jsonfile (bounded, strict) and validated against case.schema.json; the
    settings hold the recorded label and producer too (for a CheckResult file), so nothing reads it again."""
    name = os.fspath(path)
    data = jsonfile.read_json(name, _FIX)
    if isinstance(data, dict) and "format_version" in data and "results" in data:
        raise SpecError(f"{name!r} is a whole report, not one case: give cases/<id>.json from the "
                        "report's directory (or re-render the report with `bpcheck render`)")
    is_result = isinstance(data, dict) and "verdicts" in data
    case = data.get("case") if is_result else data
    version = case.get("spec_version") if isinstance(case, dict) else None
    if isinstance(case, dict) and (isinstance(version, bool) or version not in SPEC_VERSIONS):  # before the layout it would explain
        raise SpecError(f"case JSON has spec_version={jsonfile.short(version)}, but this bpcheck reads "
                        f"{', '.join(map(str, SPEC_VERSIONS))}: re-create the case with this version")
    jsonfile.validate(data, "case.schema.json", name, _FIX)
    if is_result:
        try:
            result = CheckResult.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"{name!r} is not a valid case file ({exc}): {_FIX}") from None
        recorded = {"references": [v.reference for v in result.verdicts] or None, "fast": result.fast,
                    "fail_on": result.fail_on, "label": result.label, "producer": result.producer,
                    "engine": result.engine}
        return Case.from_dict(result.case), recorded
    return Case.from_dict(data), {}


def replay(
    path: str | os.PathLike[str],
    producer: Producer | None = None,
    *,
    references: str | Sequence[str] | None = None,
    fast: bool | None = None,
    fail_on: Sequence[str] | None = None,
) -> CheckResult:
    """check_case on the case stored at path; unset options take the values a CheckResult file recorded
    (else: every reference, fast=False, the default fail_on). Named references must be able to run here
    (else UsageError); recorded ones that cannot are SKIPPED, as under "all". producer None: bpcheck's
    engine, or a UsageError when the file records an --engine (pass that function as producer)."""
    case, recorded = load_case(path)
    if producer is None:
        producer = recorded_producer(recorded)
    return replay_case(case, recorded, producer, references=references, fast=fast, fail_on=fail_on)


def replay_case(
    case: Case,
    recorded: dict[str, Any],
    producer: Producer = engine.gradients,
    *,
    references: str | Sequence[str] | None = None,
    fast: bool | None = None,
    fail_on: Sequence[str] | None = None,
) -> CheckResult:
    """replay() on a case load_case has read already (the CLI reads the file once)."""
    return check_case(
        case,
        references if references is not None else recorded.get("references"),
        producer=producer,
        fast=fast if fast is not None else recorded.get("fast", False),
        fail_on=fail_on if fail_on is not None else recorded.get("fail_on", DEFAULT_FAIL_ON),
        skip_missing=references is None,
    )


def recorded_producer(recorded: dict[str, Any], engine_spec: str | None = None, **options: Any) -> Producer:
    """The producer to replay with: the --engine the user gave (options: timeout, in_process), else bpcheck's engine.
    A case file that records an --engine is a UsageError without one: replay never runs code that a file names
    (case files come from others), so the user spells the function out, as the printed reproducer does."""
    if engine_spec:
        from .user_engine import UserEngine, absolute_spec, recorded_engine

        same = absolute_spec(engine_spec) == recorded.get("engine")  # its file gone: say it was the recorded one
        return (recorded_engine if same else UserEngine)(engine_spec, **options).load()
    if recorded.get("engine"):
        spec = recorded["engine"]
        raise UsageError(f"the case was checked with --engine {spec!r}, and replay runs no code that a file names: "
                         f"add --engine {shlex.quote(spec)} to run it (or --engine FILE.py:FUNCTION for another one)")
    return engine.gradients
