"""report.json: RunResult.to_dict() (with format_version), the one input `render` reads back.

The layout is documented by bpcheck/report/schema.json (JSON Schema, draft 2020-12).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from ..results import FORMAT_VERSION, RunResult
from ..spec import SpecError


def render(run: RunResult) -> str:
    return json.dumps(run.to_dict(), indent=1, allow_nan=False) + "\n"


def schema() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8"))


def load(path: str) -> RunResult:
    """The RunResult in a report.json; anything else is a one-line SpecError naming the file and the fix."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise SpecError(f"cannot read {path!r} ({exc.strerror}): give the report.json written by `bpcheck report`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path!r} is not JSON ({exc}): give the report.json written by `bpcheck report`") from None
    if not isinstance(data, dict) or "results" not in data or "meta" not in data or "format_version" not in data:
        raise SpecError(f"{path!r} is not a bpcheck report (no format_version, meta and results): "
                        "give the report.json written by `bpcheck report`")
    if data["format_version"] != FORMAT_VERSION:
        raise SpecError(f"{path!r} has format_version={data['format_version']!r}, but this bpcheck reads "
                        f"{FORMAT_VERSION}: re-run `bpcheck report` with this version")
    try:
        return RunResult.from_dict(data)
    except (SpecError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise SpecError(f"{path!r} is not a valid bpcheck report ({exc}): give the report.json written by "
                        "`bpcheck report`") from None
