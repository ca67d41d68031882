"""The report: one renderer per format over one RunResult, and one writer for every file.

    files = render_files(run, ("md", "json"))       # {"report.md": str, "report.json": str}, nothing written
    paths = write_report(run, "reports/")           # every format, plus cases/<id>.json for replay, as one set

Renderers are pure functions of the RunResult (bpcheck.report.analysis computes what they show),
so `bpcheck render report.json` rebuilds every format from the JSON alone, without torch or jax.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from ..results import RunResult
from ..spec import SpecError, UsageError, suggest
from . import analysis
from .writer import REPORT, OutputFolder, ensure_writable

FORMATS: tuple[str, ...] = ("md", "json", "html", "junit", "png")
FILE_NAMES: dict[str, str] = {"md": "report.md", "json": "report.json", "html": "report.html", "junit": "junit.xml"}


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """'md,json' -> ('md', 'json'); 'all' -> FORMATS; an unknown name is a UsageError."""
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    if parts == ["all"]:
        return FORMATS
    if not parts:
        raise UsageError(f"--formats {text!r} names none: give some of {','.join(FORMATS)}")
    for p in parts:
        if p not in FORMATS:
            raise UsageError(f"--formats has unknown {p!r}{suggest(p, FORMATS)}: choose from {','.join(FORMATS)}")
    return tuple(dict.fromkeys(parts))


def render_files(run: RunResult, formats: Sequence[str] = FORMATS) -> dict[str, bytes | str]:
    """file name -> content for each format; the PNG bytes are shared by the png files and the HTML."""
    from . import html, jsonfmt, junit, markdown, plots

    files: dict[str, bytes | str] = {}
    pngs = plots.render(run) if ("png" in formats or "html" in formats) else {}
    if "md" in formats:
        files[FILE_NAMES["md"]] = markdown.render(run, {n: n for n in pngs} if "png" in formats else None)
    if "json" in formats:
        files[FILE_NAMES["json"]] = jsonfmt.render(run)
    if "html" in formats:
        files[FILE_NAMES["html"]] = html.render(run, pngs)
    if "junit" in formats:
        files[FILE_NAMES["junit"]] = junit.render(run)
    if "png" in formats:
        files.update(pngs)
    return files


def case_files(run: RunResult) -> dict[str, str]:
    """cases/<id>.json for every saved result and every minimal reproducer: CheckResult JSON, replayable.

    Every name is checked to be cases/<hex digest>.json: a case id comes from a file when `render` reads a
    report.json (its schema says the same), and must never name a path outside the report's directory."""
    files = {_case_name(r.case_id): json.dumps(r.to_dict(), indent=1) + "\n" for r in analysis.saved(run)}
    for rep in run.meta.get("reproducers") or []:
        files[_case_name(rep["case_id"], rep["file"])] = json.dumps(rep["result"], indent=1) + "\n"
    return files


_CASE_ID = re.compile(r"[0-9a-f]{12}|draw-[0-9]{1,12}")


def _case_name(case_id: str, file: str | None = None) -> str:
    name = f"cases/{case_id}.json"
    if not (isinstance(case_id, str) and _CASE_ID.fullmatch(case_id)) or file not in (None, name):
        raise SpecError(f"case id {case_id!r} (file {file!r}) is not a hex digest under cases/: give the report.json "
                        "written by `bpcheck report`")
    return name


def write_report(run: RunResult, out: str | os.PathLike[str] | OutputFolder, formats: Sequence[str] = FORMATS, *,
                 cases: bool = True) -> list[Path]:
    """Render every format (and the case files) and swap them into out as one set, replacing the report there
    (stale cases and formats included); returns the written paths. out may be a folder the caller holds open."""
    files: dict[str, bytes | str] = dict(case_files(run)) if cases else {}
    files.update(render_files(run, formats))
    folder = out if isinstance(out, OutputFolder) else OutputFolder(out, REPORT)
    return folder.write(files)


__all__ = ["FILE_NAMES", "FORMATS", "REPORT", "OutputFolder", "case_files", "ensure_writable", "parse_formats",
           "render_files", "write_report"]
