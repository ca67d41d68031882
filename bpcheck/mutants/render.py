"""reports/mutants.md and reports/mutants.json from one sweep's plain data, written as one set.

The summary dict (summarise) is the one data model: the markdown, the JSON and the printed table
all read it. Both files are swapped in together (bpcheck.report.writer.OutputFolder), so a reader
never sees half a report, nor one run's markdown beside another's JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..baselines import BASELINES

SHORT = {"gradcheck": "gradcheck", "gradcheck_fast": "gradcheck fast", "check_grads": "check_grads"}


def summarise(mutants: list[dict[str, Any]], engine: dict[str, Any] | None, meta: dict[str, Any]) -> dict[str, Any]:
    """Totals over the mutants: caught, localised, each baseline's catches, and where a baseline beat bpcheck."""
    baselines = meta.get("baselines", list(BASELINES))
    beaten = []
    for m in mutants:
        for c in m["cases"]:
            for b in baselines:
                if c["baselines"].get(b) and not c["caught"]:
                    beaten.append({"mutant": m["name"], "case": c["index"], "baseline": b, "label": c["label"],
                                   "arch": c["arch"], "dtype": c["dtype"], "regime": c["regime"]})
    one_layer = [m for m in mutants if m["localised"] is not None]
    totals = {
        "mutants": len(mutants),
        "bpcheck_caught": sum(m["caught"] for m in mutants),
        "bpcheck_cases": [sum(m["caught_cases"] for m in mutants), sum(m["k"] for m in mutants)],
        "one_layer_mutants": len(one_layer),
        "localised": sum(bool(m["localised"]) for m in one_layer),
        "baselines_caught": {b: sum(m["baselines"][b] > 0 for m in mutants) for b in baselines},
        "baselines_cases": {b: sum(m["baselines"][b] for m in mutants) for b in baselines},
        "baseline_only_catches": beaten,
    }
    return {"format_version": 1, "meta": meta, "totals": totals, "mutants": mutants, "engine": engine}


def _rate(n: int, k: int) -> str:
    return f"{n}/{k}"


def mutant_table(summary: dict[str, Any]) -> list[str]:
    baselines = summary["meta"].get("baselines", list(BASELINES))
    head = ["mutant", "where", "reveals it", "bpcheck", "1st", "label", "located"] + [SHORT[b] for b in baselines]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in summary["mutants"]:
        labels = ",".join(sorted(m["labels"]))
        loc = {None: "n/a (every layer)", True: "yes", False: "NO"}[m["localised"]]
        row = [f"`{m['name']}`", m["where"], m["conditions"], _rate(m["caught_cases"], m["k"]),
               str(m["cases_to_catch"] or "-"), labels, loc] + [_rate(m["baselines"][b], m["k"]) for b in baselines]
        lines.append("| " + " | ".join(row) + " |")
    t = summary["totals"]
    k = t["bpcheck_cases"][1]
    lines.append("| **mutants caught** | | | " + " | ".join(
        [f"**{t['bpcheck_caught']}/{t['mutants']}** ({t['bpcheck_cases'][0]}/{k} cases)", "", "",
         f"{t['localised']}/{t['one_layer_mutants']}"]
        + [f"**{t['baselines_caught'][b]}/{t['mutants']}** ({t['baselines_cases'][b]}/{k})" for b in baselines]) + " |")
    return lines


def engine_table(engine: dict[str, Any], baselines: list[str]) -> list[str]:
    head = ["regime/dtype", "cases", "bpcheck"] + [SHORT[b] for b in baselines]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for group, g in sorted(engine["by_group"].items()):
        lines.append("| " + " | ".join([group, str(g["cases"]), str(g["bpcheck"])] + [str(g[b]) for b in baselines]) + " |")
    lines.append("| " + " | ".join(["**all**", f"**{engine['n']}**", f"**{engine['bpcheck_false_positives']}**"]
                                     + [f"**{engine['baseline_false_positives'][b]}**" for b in baselines]) + " |")
    return lines


def time_table(summary: dict[str, Any]) -> list[str]:
    baselines = summary["meta"].get("baselines", list(BASELINES))
    checkers = ["bpcheck"] + baselines
    mut = {c: sum(m["seconds"].get(c, 0.0) for m in summary["mutants"]) for c in checkers}
    n_mut = summary["totals"]["bpcheck_cases"][1]
    eng = summary["engine"]["seconds"] if summary["engine"] else {}
    n_eng = summary["engine"]["n"] if summary["engine"] else 0
    lines = ["| checker | mutant cases: total s | ms/case | engine cases: total s | ms/case |", "|---|---|---|---|---|"]
    for c in checkers:
        e = eng.get(c, 0.0)
        lines.append(f"| {SHORT.get(c, c)} | {mut[c]:.1f} | {1e3 * mut[c] / max(n_mut, 1):.1f} | {e:.1f} | "
                     f"{1e3 * e / max(n_eng, 1):.1f} |")
    return lines


def markdown(summary: dict[str, Any]) -> str:
    meta, t = summary["meta"], summary["totals"]
    baselines = meta.get("baselines", list(BASELINES))
    out = ["# bpcheck mutants: a catalog of real backprop bugs, and who catches them", "",
           f"Command: `{meta.get('command', '')}`  ", f"Seed {meta.get('seed')}, {meta.get('k')} cases per mutant, "
           f"references {meta.get('references')}; bpcheck {meta.get('bpcheck')}, numpy {meta.get('numpy')}, "
           f"torch {meta.get('torch')}, jax {meta.get('jax')}; wall time {meta.get('wall_seconds', 0):.0f} s.", "",
           "bpcheck catches a mutant on a case when check_case labels it ENGINE; a baseline catches it when it "
           "raises. Baselines run with their own default tolerances, in float64, on the same cases (a float32 "
           "case is cast to float64 at its float32 values): torch.autograd.gradcheck (eps 1e-6, atol 1e-5, rtol "
           "1e-3) in default and fast_mode, jax.test_util.check_grads (order 1, modes ['rev'], eps 1e-4, tol 1e-5). "
           "'located': bpcheck named the layer and tensor the bug lives in on every case it caught. "
           "'1st': cases it took bpcheck to catch it.", "", "## Mutants", ""]
    out += mutant_table(summary)
    out += ["", "## Where a baseline caught a case bpcheck missed", ""]
    if t["baseline_only_catches"]:
        out += [f"- `{b['mutant']}` case {b['case']} ({b['arch']}, {b['dtype']}, {b['regime']}): {b['baseline']} "
                f"raised, bpcheck said {b['label']}" for b in t["baseline_only_catches"]]
    else:
        out.append("None: on every case where a baseline raised, bpcheck said ENGINE.")
    if summary["engine"]:
        e = summary["engine"]
        out += ["", f"## False alarms on the unmutated engine ({e['n']} cases, every regime, float64 and float32)", "",
                "A false alarm is bpcheck saying ENGINE or REFERENCE, or a baseline raising, on the correct engine.", ""]
        out += engine_table(e, baselines)
        for b in baselines:
            if e["baseline_alarms"].get(b):
                first = e["baseline_alarms"][b][0]
                out.append(f"\nFirst {SHORT[b]} false alarm: case {first['index']} ({first['arch']}, {first['regime']}, "
                           f"{first['dtype']}): {first['message']}")
        if e["bpcheck_alarms"]:
            out += [f"\nbpcheck false alarm: case {a['index']} ({a['arch']}, {a['regime']}, {a['dtype']}): {a['label']}"
                    for a in e["bpcheck_alarms"]]
    stacks = summary["meta"].get("stacks_engine")
    if stacks:
        out += ["", f"## False alarms on the unmutated engine on layered stacks ({stacks['n']} cases of `report --layers "
                "all`: every kind, every regime, float64 and float32)", ""]
        out += engine_table(stacks, baselines)
        out += [f"\nbpcheck false alarm: case {a['index']} ({a['arch']}, {a['regime']}, {a['dtype']}): {a['label']}"
                for a in stacks["bpcheck_alarms"]]
    out += ["", "## Time", ""] + time_table(summary)
    out += ["", "## Minimal cases", "", "The first case that caught each mutant, made smaller while still caught "
            "(fewer rows, float64, rounded numbers); the full case is in mutants.json.", ""]
    for m in summary["mutants"]:
        if m["minimal"]:
            mc = m["minimal"]
            out.append(f"- `{m['name']}`: {mc['arch']}, batch {mc['batch']}, {mc['dtype']}"
                       + (f" ({', '.join(mc['moves'])})" if mc["moves"] else ""))
    out += ["", "## Catalog", ""]
    out += [f"- `{m['name']}` ({m['style']}; {m['where']}; {m['conditions']}): {m['description']}" for m in summary["mutants"]]
    return "\n".join(out) + "\n"


def compact(summary: dict[str, Any]) -> str:
    """The printed table: one line per mutant, then the totals and false alarms."""
    baselines = summary["meta"].get("baselines", list(BASELINES))
    w = max([len(m["name"]) for m in summary["mutants"]] + [6])
    rows = [f"{'mutant':{w}}  bpcheck  located  " + "  ".join(f"{SHORT[b]:>14}" for b in baselines)]
    for m in summary["mutants"]:
        loc = {None: "-", True: "yes", False: "NO"}[m["localised"]]
        rows.append(f"{m['name']:{w}}  {_rate(m['caught_cases'], m['k']):>7}  {loc:>7}  "
                    + "  ".join(f"{_rate(m['baselines'][b], m['k']):>14}" for b in baselines))
    t = summary["totals"]
    rows.append(f"{'caught':{w}}  {t['bpcheck_caught']:>4}/{t['mutants']:<2}  {t['localised']:>4}/{t['one_layer_mutants']:<2}  "
                + "  ".join(f"{str(t['baselines_caught'][b]) + '/' + str(t['mutants']):>14}" for b in baselines))
    if summary["engine"]:
        e = summary["engine"]
        rows.append(f"{'false alarms':{w}}  {e['bpcheck_false_positives']:>7}  {'':>7}  "
                    + "  ".join(f"{e['baseline_false_positives'][b]:>14}" for b in baselines) + f"   (of {e['n']} engine cases)")
    stacks = summary["meta"].get("stacks_engine")
    if stacks:
        rows.append(f"{'false alarms':{w}}  {stacks['bpcheck_false_positives']:>7}  {'':>7}  "
                    + "  ".join(f"{stacks['baseline_false_positives'][b]:>14}" for b in baselines)
                    + f"   (of {stacks['n']} layered stacks)")
    return "\n".join(rows)


def write(summary: dict[str, Any], folder) -> tuple[Path, Path]:
    """mutants.md and mutants.json into an open bpcheck.report.writer.OutputFolder of kind MUTANTS, as one set."""
    md, js = folder.write({"mutants.md": markdown(summary),
                           "mutants.json": json.dumps(summary, indent=1, default=str) + "\n"})
    return md, js
