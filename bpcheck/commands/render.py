"""Re-render every report format from a saved report.json alone (no torch or jax, no re-checking).

Exit 0 when no case carries a --fail-on label, 1 when some do (as `report` exited for the same results),
2 for a bad file: report.json is validated against its schema before anything is written, and every
file it names is a cases/<hex digest>.json under --out.
"""

from __future__ import annotations

import argparse
import os

HELP = "re-render report.md/html/junit/png (and cases/) from a saved report.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("report", help="a report.json written by `bpcheck report`")
    p.add_argument("--out", default=None, help="output directory (default: the report's directory)")
    p.add_argument("--formats", default="all", help="md,json,html,junit,png or all (default all)")


def run(args: argparse.Namespace) -> int:
    """Exit like `report` for the same results: 0 when no case carries a --fail-on label, 1 when some do."""
    from ..report import parse_formats, write_report
    from ..report.analysis import exit_code
    from ..report.jsonfmt import load

    formats = parse_formats(args.formats)
    run = load(args.report)  # a bad file fails here, before anything is written
    out = args.out if args.out is not None else (os.path.dirname(args.report) or ".")
    if "json" not in formats and _same_file(args.report, os.path.join(out, "report.json")):
        formats = (*formats, "json")  # the new set replaces the folder's whole report: keep the one it is rendered from
    paths = write_report(run, out, formats)
    print(f"rendered {len(paths)} file(s) into {out}")
    return exit_code(run)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
