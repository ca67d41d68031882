"""report.json: RunResult.to_dict() (with format_version), the one input `render` reads back.

The layout is documented by bpcheck/report/schema.json (JSON Schema, draft 2020-12).
"""

from __future__ import annotations

import json
from typing import Any

from .. import jsonfile
from ..results import FORMAT_VERSION, RunResult
from ..spec import SpecError

_FIX = "give the report.json written by `bpcheck report`"
MAX_REFERENCES = 16  # one plot panel each: a crafted report must not ask for thousands


def render(run: RunResult) -> str:
    """meta.layer_kinds: kind -> {"cases": n, "labels": {label: n}}, the by-layer-kind breakdown (analysis.by_layer_kind)."""
    from .analysis import by_layer_kind

    d = run.to_dict()
    d["meta"]["layer_kinds"] = {k: {"cases": sum(c.values()), "labels": dict(c)} for k, c in by_layer_kind(run).items()}
    return json.dumps(d, indent=1, allow_nan=False) + "\n"


def schema() -> dict[str, Any]:
    return jsonfile.schema("report.schema.json")


def load(path: str) -> RunResult:
    """The RunResult in a report.json; anything else is a one-line SpecError naming the file and the fix.

    bpcheck.jsonfile reads it (bounded, strict, parsed once) and validates it against schema.json, so every
    field the renderers use has its type; the checks after it are those a schema cannot state."""
    data = jsonfile.read_json(path, _FIX)
    if not isinstance(data, dict) or "results" not in data or "meta" not in data or "format_version" not in data:
        raise SpecError(f"{path!r} is not a bpcheck report (no format_version, meta and results in "
                        f"{jsonfile.short(data, 40)}): {_FIX}")
    if data["format_version"] != FORMAT_VERSION:
        raise SpecError(f"{path!r} has format_version={jsonfile.short(data['format_version'])}, but this bpcheck reads "
                        f"{FORMAT_VERSION}: re-run `bpcheck report` with this version")
    jsonfile.validate(data, "report.schema.json", path, _FIX)
    for i, rep in enumerate(data["meta"].get("reproducers") or []):
        if rep["file"] != f"cases/{rep['case_id']}.json":
            raise SpecError(f"{path!r} has meta.reproducers[{i}].file = {jsonfile.short(rep['file'])}, but its case_id "
                            f"{rep['case_id']!r} names cases/{rep['case_id']}.json: {_FIX}")
    names = {v["reference"] for r in data["results"] for v in r["verdicts"]} | set(data["meta"]["references"])
    if len(names) > MAX_REFERENCES:
        raise SpecError(f"{path!r} names {len(names)} references (more than {MAX_REFERENCES}): {_FIX}")
    try:
        return RunResult.from_dict(data)
    except (SpecError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise SpecError(f"{path!r} is not a valid bpcheck report ({exc}): {_FIX}") from None

