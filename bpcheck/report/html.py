"""report.html: one self-contained file; the plots are embedded as data:image/png;base64 URIs.

No scripts, no external stylesheets or fonts: it opens the same offline, in a CI artifact viewer or a mail.
"""

from __future__ import annotations

import base64
from collections import Counter
from html import escape

from ..message import tensor_label
from ..results import LABEL_MEANING, RunResult
from . import analysis as an

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child,td.t{text-align:left}th{background:#f3f3f3}
.pass{color:#17692e}.fail{color:#b3261e}code{background:#f5f5f5;padding:0 3px}
.ENGINE,.REFERENCE{background:#fde2e0}.ERROR{background:#fff1cc}img{max-width:100%}
"""


def _table(head: list[str], rows: list[list[object]], classes: list[str] | None = None) -> str:
    h = "".join(f"<th>{escape(str(x))}</th>" for x in head)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{escape(classes[i])}"' if classes and classes[i] else ""
        cells = "".join(f'<td{" class=t" if isinstance(c, str) and j else ""}>{escape(str(c))}</td>'
                        for j, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><tr>{h}</tr>{''.join(body)}</table>"


def _counts(first: str, table: dict[str, Counter], labels: list[str]) -> str:
    return _table([first, *labels, "total"],
                  [[k, *(c.get(label, 0) for label in labels), sum(c.values())] for k, c in table.items()])


def render(run: RunResult, plots: dict[str, bytes]) -> str:
    refs = an.per_reference(run)
    breakdowns = an.breakdowns(run)
    labels = an.labels_present(refs, *breakdowns.values())
    m = run.meta
    verdict = an.verdict_line(run)
    parts = [f'<h1>bpcheck report</h1><p class="{"fail" if run.failures() else "pass"}"><b>{escape(verdict)}</b></p>']
    info = [("seed", m.get("seed")), ("cases", f"{len(run.results)} of {m.get('requested_cases', len(run.results))}"),
            ("partial", run.partial), ("producer", m.get("producer")), ("fail on", ", ".join(m.get("fail_on", []))),
            ("options", ", ".join(f"{k}={v}" for k, v in m.get("options", {}).items())),
            ("versions", ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items() if v)),
            ("references found", ", ".join(n for n, s in m.get("references", {}).items() if s.get("available")))]
    info += [(f"skipped {n}", reason) for n, reason in (m.get("skipped") or {}).items()]
    info += [("timings", ", ".join(f"{k.removesuffix('_seconds')} {v:.3g} s" for k, v in m.get("timings", {}).items()))]
    parts.append(_table(["meta", "value"], [[k, str(v)] for k, v in info]))
    parts.append("<h2>Labels per reference</h2>" + _counts("reference", refs, labels))
    parts.append("<ul>" + "".join(f"<li><b>{escape(k)}</b>: {escape(LABEL_MEANING[k])}</li>" for k in labels) + "</ul>")
    if breakdowns:
        parts.append("<h2>Breakdown</h2><p>Counted per (case, reference) pair; a case counts once under each activation.</p>")
    for dim, table in breakdowns.items():
        parts.append(f"<h3>By {escape(dim)}</h3>" + _counts(dim, table, labels))
    kinds = an.by_layer_kind(run)
    if kinds:
        kind_labels = an.labels_present(kinds)
        parts.append("<h2>By layer kind</h2><p>Cases whose stack contains the kind, by the case's label.</p>" + _table(
            ["kind", "cases", *kind_labels],
            [[k, sum(c.values()), *(c.get(label, 0) for label in kind_labels)] for k, c in kinds.items()]))
    parts.append("<h2>Judged error per reference</h2><p>The part of |engine - reference| no error estimate explains "
                 "(kink crossings left out), over the tolerance; a verdict passes left of the dashed line.</p>")
    for name, png in plots.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<img alt="{escape(name)}" src="data:image/png;base64,{data}">')
    worst = an.worst(run)
    parts.append(f"<h2>{escape(an.worst_heading(run))}</h2>" + _table(
        ["case", "arch", "dtype", "regime", "reference", "label", "excess/tol", "tensor", "first bad layer", "diagnosis"],
        [[w.result.case_id, w.result.arch, w.result.dtype, w.result.regime, w.verdict.reference, w.verdict.label,
          f"{w.ratio:.3g}", tensor_label(w.tensor) if w.tensor else "",
          "" if w.verdict.first_bad_layer is None else str(w.verdict.first_bad_layer),
          w.verdict.diagnosis or w.verdict.reason] for w in worst],
        [w.verdict.label for w in worst]))
    parts.append("<h2>Minimal reproducers</h2>")
    repros = m.get("reproducers") or []
    items = [f"<li><b>{escape(r['kind']['label'])}</b> at the {escape(r['kind']['position'])} layer "
             f"({escape(str(r['count']))} verdicts): {escape(r['kind']['pattern'] or 'no diagnosis')}<br>"
             f"<code>{escape(r['case_id'])}</code> {escape(r['arch'])}, {escape(r['dtype'])}, batch {escape(str(r['batch']))}, "
             f"{'shrunk' if r['shrunk'] else 'not shrunk'}; replay: <code>{escape(an.replay_command(run, r['file']))}</code><br>"
             f"{escape(r['message'])}</li>" for r in repros]
    parts.append(f"<ul>{''.join(items)}</ul>" if items else "<p>No disagreement to reproduce.</p>")
    saved = an.saved(run)
    parts.append("<h2>Saved cases</h2>" + (_table(["file", "label", "arch", "dtype", "regime"],
                 [[f"cases/{r.case_id}.json", r.label, r.arch, r.dtype, r.regime] for r in saved],
                 [r.label for r in saved]) if saved else "<p>None.</p>"))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>bpcheck report</title>'
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
