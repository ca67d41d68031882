"""report.md: GitHub-flavoured Markdown, pasteable into a CI job summary. A pure function of the RunResult."""

from __future__ import annotations

from collections import Counter

from ..message import tensor_label
from ..results import LABEL_MEANING, RunResult
from . import analysis as an


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(head: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def count_table(first: str, table: dict[str, Counter], labels: list[str]) -> list[str]:
    rows = [[key, *(c.get(label, 0) for label in labels), sum(c.values())] for key, c in table.items()]
    return _table([first, *labels, "total"], rows)


def _g(x: float) -> str:
    return f"{x:.3g}"


def meta_lines(run: RunResult) -> list[str]:
    m = run.meta
    opts = m.get("options", {})
    versions = m.get("versions", {})
    t = m.get("timings", {})
    lines = [
        f"- seed: `{m.get('seed')}`; cases: {len(run.results)} of {m.get('requested_cases', len(run.results))}"
        + (f"; **partial ({m.get('partial_reason', 'interrupted')})**" if run.partial else ""),
        f"- producer: `{m.get('producer', 'engine')}`; fail on: {', '.join(m.get('fail_on', []))}",
        "- options: " + ", ".join(f"{k}={_cell(v)}" for k, v in opts.items()),
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v),
    ]
    refs = m.get("references", {})
    found = [n for n, s in refs.items() if s.get("available")]
    lines.append(f"- references found: {', '.join(found) or 'none'}")
    for name, reason in (m.get("skipped") or {}).items():
        lines.append(f"- skipped {name}: {reason}")
    if t:
        lines.append("- timings: " + ", ".join(f"{k.removesuffix('_seconds')} {_g(v)} s" for k, v in t.items()))
    return lines


def render(run: RunResult, plots: dict[str, str] | None = None) -> str:
    """The Markdown text; plots maps a plot name to its file name (linked when given)."""
    refs = an.per_reference(run)
    breakdowns = an.breakdowns(run)
    labels = an.labels_present(refs, *breakdowns.values())
    out = ["# bpcheck report", "", f"**{an.verdict_line(run)}**", ""]
    out += meta_lines(run) + ["", "## Labels per reference", ""]
    out += count_table("reference", refs, labels)
    out += ["", "Labels: " + "; ".join(f"**{k}** {LABEL_MEANING[k]}" for k in labels), ""]
    if breakdowns:
        out += ["## Breakdown", "", "Counted per (case, reference) pair; a case counts once under each activation it uses.",
                ""]
    for dim, table in breakdowns.items():
        out += [f"### By {dim}", ""] + count_table(dim, table, labels) + [""]
    kinds = an.by_layer_kind(run)
    if kinds:
        kind_labels = an.labels_present(kinds)
        out += ["## By layer kind", "", "Cases whose stack contains the kind, by the case's label.", ""]
        out += _table(["kind", "cases", *kind_labels],
                      [[k, sum(c.values()), *(c.get(label, 0) for label in kind_labels)] for k, c in kinds.items()]) + [""]
    out += ["## Judged error per reference", "",
            "The error each verdict judged: the part of |engine - reference| no error estimate explains (kink crossings "
            "left out), over the tolerance it was held to; a verdict passes at <= 1 (log10 <= 0).", ""]
    rows = []
    for name, values in an.log_judged(run).items():
        if values:
            s = sorted(values)
            rows.append([name, len(s), sum(v <= 0 for v in s), _g(s[len(s) // 2]), _g(s[-1])])
    out += (_table(["reference", "compared", "within tolerance", "median log10(excess/tol)", "max log10(excess/tol)"], rows)
            if rows else ["No comparisons."])
    for name, file in (plots or {}).items():
        out += ["", f"![{name}]({file})"]
    out += ["", f"## {an.worst_heading(run)}", ""]
    worst = an.worst(run)
    if worst:
        out += _table(["case", "arch", "dtype", "regime", "reference", "label", "excess/tol", "tensor", "first bad layer",
                       "diagnosis"],
                      [[f"`{w.result.case_id}`", w.result.arch, w.result.dtype, w.result.regime, w.verdict.reference,
                        w.verdict.label, _g(w.ratio), tensor_label(w.tensor) if w.tensor else "",
                        "" if w.verdict.first_bad_layer is None else w.verdict.first_bad_layer,
                        w.verdict.diagnosis or w.verdict.reason] for w in worst])
    else:
        out.append("No comparisons.")
    out += ["", "## Minimal reproducers", ""]
    repros = run.meta.get("reproducers") or []
    if not repros:
        out.append("No disagreement to reproduce.")
    for rep in repros:
        k = rep["kind"]
        state = "shrunk" if rep["shrunk"] else "not shrunk (find found no smaller example)"
        out += [f"- **{k['label']}** at the {k['position']} layer, {rep['count']} verdict(s): {k['pattern'] or 'no diagnosis'}",
                f"  - `{rep['case_id']}` ({rep['arch']}, {rep['dtype']}, batch {rep['batch']}, {rep['regime']}), {state}; "
                f"replay: `{an.replay_command(run, rep['file'])}`",
                f"  - {rep['message']}"]
    failing = an.saved(run)
    out += ["", "## Saved cases", ""]
    if failing:
        out.append(f"{len(failing)} case(s) with a disagreement or an error, each replayable with "
                   f"`python -m bpcheck replay cases/<id>.json{an.engine_option(run)}`:")
        out += [""] + [f"- `cases/{r.case_id}.json`: {r.label} ({r.arch}, {r.dtype}, {r.regime})"
                       + (f": {r.error}" if r.error else "") for r in failing]
    else:
        out.append("None.")
    return "\n".join(out) + "\n"
