"""The PNG plots: a histogram per reference of the error each verdict judged (matplotlib, Agg backend).

Returns bytes rather than writing files: the writer owns every file, and the HTML embeds the same
bytes as data URIs. matplotlib is imported here, inside the function, so the rest of the report
(and `import bpcheck`) does not pay for it.
"""

from __future__ import annotations

import io
import math

from ..results import RunResult
from . import analysis as an

PLOT_NAME = "errors.png"


def error_histogram(run: RunResult) -> bytes:
    """One panel per reference: verdicts by log10 of the error each one judged, excess / tolerance
    (bpcheck.report.analysis.judged_ratio), with the pass line at 0: a passing run sits left of it."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    errors = an.log_judged(run)
    names = list(errors) or ["(none)"]
    fig = Figure(figsize=(4.2 * len(names), 3.2), dpi=90)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    top = max([2.0] + [math.ceil(v) + 1 for vs in errors.values() for v in vs if math.isfinite(v)])
    bins = [an.JUDGED_FLOOR - 0.5 + x / 2 for x in range(int(2 * (top - an.JUDGED_FLOOR)) + 2)]
    for ax, name in zip(axes, names, strict=True):
        values = [min(v, top) for v in errors.get(name, [])]
        passed = sum(v <= 0 for v in values)
        ax.hist(values, bins=bins, color="#4878a8", edgecolor="white")
        ax.axvline(0.0, color="#b3261e", linestyle="--", linewidth=1)
        ax.set_title(f"{name}: {passed} of {len(values)} within tolerance", fontsize=10)
        ax.set_xlabel("log10(unexplained error / tolerance)")
        ax.set_ylabel("verdicts")
        ax.set_xlim(bins[0], bins[-1])
    fig.suptitle("the error each verdict judged (kink crossings left out); dashed: the tolerance; "
                 f"at {an.JUDGED_FLOOR:g}: all explained", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    # No Software/date metadata, so the same RunResult gives the same bytes.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def render(run: RunResult) -> dict[str, bytes]:
    """file name -> PNG bytes."""
    return {PLOT_NAME: error_histogram(run)}
