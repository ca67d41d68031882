"""The PNG plots: a histogram of log10 relative error per reference (matplotlib, Agg backend).

Returns bytes rather than writing files: the writer owns every file, and the HTML embeds the same
bytes as data URIs. matplotlib is imported here, inside the function, so the rest of the report
(and `import bpcheck`) does not pay for it.
"""

from __future__ import annotations

import io

from ..results import RunResult
from . import analysis as an

PLOT_NAME = "errors.png"


def error_histogram(run: RunResult) -> bytes:
    """One panel per reference: counts of verdicts by log10 of their relative error (bpcheck.report.analysis)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    errors = an.log_errors(run)
    names = list(errors) or ["(none)"]
    fig = Figure(figsize=(4.2 * len(names), 3.2), dpi=90)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    bins = [x / 2 for x in range(2 * int(__import__("math").log10(an.REL_FLOOR)), 3)]
    for ax, name in zip(axes, names, strict=True):
        values = errors.get(name, [])
        ax.hist(values, bins=bins, color="#4878a8", edgecolor="white")
        ax.set_title(f"{name} ({len(values)} compared)", fontsize=10)
        ax.set_xlabel("log10 relative error")
        ax.set_ylabel("verdicts")
        ax.set_xlim(bins[0], bins[-1])
    fig.suptitle("engine vs each reference: relative error", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    # No Software/date metadata, so the same RunResult gives the same bytes.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def render(run: RunResult) -> dict[str, bytes]:
    """file name -> PNG bytes."""
    return {PLOT_NAME: error_histogram(run)}
