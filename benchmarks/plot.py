"""The log-log plot of check cost against parameter count (matplotlib, Agg), written atomically."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path


def plot_cost(points: list[tuple[str, int, float]], path: Path) -> None:
    """One line per contender through its (n_params, median seconds) points; writes path via a temp name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for name, n_params, seconds in points:
        if n_params > 0 and seconds > 0:
            lines[name].append((n_params, seconds))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in lines.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", linestyle="--" if "bpcheck" not in name else "-",
                label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters (float64 MLP, batch 16)")
    ax.set_ylabel("median seconds per check")
    ax.set_title("Cost of one gradient check against parameter count")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
