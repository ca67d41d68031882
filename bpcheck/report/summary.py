"""The terminal summary: at most about 20 lines, from the RunResult alone."""

from __future__ import annotations

from ..message import tensor_label
from ..results import RunResult
from . import analysis as an


def summary_lines(run: RunResult, out: str | None = None, files: list[str] | None = None) -> list[str]:
    m = run.meta
    lines = [an.verdict_line(run), f"seed {m.get('seed')}, {len(run.results)} cases, "
             f"{m.get('timings', {}).get('total_seconds', 0.0):.1f} s"]
    for name, counts in an.per_reference(run).items():
        text = ", ".join(f"{label} {n}" for label, n in sorted(counts.items(), key=lambda kv: an.LABELS.index(kv[0])))
        reason = (m.get("skipped") or {}).get(name)
        lines.append(f"  {name:6s} {text}" + (f" ({reason})" if reason else ""))
    worst = an.worst(run, 1)
    if worst:
        w = worst[0]
        where = f", layer {w.verdict.first_bad_layer}" if w.verdict.first_bad_layer is not None else ""
        tensor = f", {tensor_label(w.tensor)}" if w.tensor else ""
        lines.append(f"worst: {w.result.case_id} ({w.result.arch}, {w.result.dtype}, {w.result.regime}) vs "
                     f"{w.verdict.reference}: {w.verdict.label}{tensor}{where}, excess/tol {w.ratio:.3g}")
        if w.verdict.diagnosis:
            lines.append(f"  {w.verdict.diagnosis[:200]}")
    repros = m.get("reproducers") or []
    for rep in repros[:3]:
        lines.append(f"reproducer {rep['kind']['label']} ({rep['kind']['position']}): "
                     + an.replay_command(run, rep['file'], out.rstrip('/') + '/' if out else ''))
    if len(repros) > 3:
        lines.append(f"... and {len(repros) - 3} more reproducers in the report")
    if out is not None:
        lines.append(f"report: {out} ({', '.join(files or [])})")
    return lines
