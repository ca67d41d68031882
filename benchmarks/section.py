"""What each benchmark case hands to the suite: a Markdown section, the points of the cost plot, and
the goals it measured (name, target, measured value, met or not)."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.interleave import Timing


@dataclass
class Goal:
    """One goal of issue 8 as measured in this run: `value` is shown as measured, `met` says whether it holds."""

    name: str
    target: str
    value: str
    met: bool


@dataclass
class Section:
    """title and Markdown lines; points are (contender, n_params, median seconds) for the log-log plot."""

    title: str
    lines: list[str] = field(default_factory=list)
    points: list[tuple[str, int, float]] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)

    def markdown(self) -> str:
        return "\n".join([f"## {self.title}", "", *self.lines, ""])


def median_of(timings: list[Timing], name: str) -> float:
    return next(t for t in timings if t.name == name).median


def speedup(timings: list[Timing], fast: str, slow: str) -> float:
    """median(slow) / median(fast), both from one interleaved run."""
    return median_of(timings, slow) / median_of(timings, fast)
