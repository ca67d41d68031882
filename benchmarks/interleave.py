"""Run contenders interleaved (A B C A B C ...), each in its own process.

numpy's OpenBLAS and torch's MKL/OpenMP thread pools fight when they share a process, so every contender
gets a process of its own; the coordinator asks each in turn for one timed call, so slow drift of the
machine (other load, clocks) hits all contenders alike.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    name: str
    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p90(self) -> float:
        return sorted(self.times)[int(0.9 * (len(self.times) - 1))]


def _worker(setup: Callable[[], Callable[[], float]], conn) -> None:
    try:
        step = setup()
        conn.send("ready")
        while conn.recv() == "go":
            conn.send(step())
    except Exception as exc:  # report, don't hang the coordinator
        conn.send(f"error: {exc!r}")


def interleave(setups: dict[str, Callable[[], Callable[[], float]]], rounds: int, *,
               rotate: bool = False) -> list[Timing]:
    """setups maps a name to a picklable factory that builds the contender and returns a step() -> seconds.

    rotate=True starts round r with contender r mod n (A B C, B C A, C A B, ...), so that the order
    within a round (warm caches, another process's thread pool still spinning) favours no contender:
    on a loaded machine the order alone moved bpcheck's fast mode at 100k between 1.1x and 1.5x torch's.
    """
    ctx = mp.get_context("spawn")
    procs, conns = {}, {}
    for name, setup in setups.items():
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(setup, child), daemon=True)
        proc.start()
        procs[name], conns[name] = proc, parent
    try:
        for name, conn in conns.items():
            msg = conn.recv()
            if msg != "ready":
                raise RuntimeError(f"{name}: {msg}")
        times: dict[str, list[float]] = {name: [] for name in setups}
        names = list(conns)
        for r in range(rounds):
            start = r % len(names) if rotate else 0
            for name in names[start:] + names[:start]:
                conn = conns[name]
                conn.send("go")
                value = conn.recv()
                if isinstance(value, str):
                    raise RuntimeError(f"{name}: {value}")
                times[name].append(value)
        return [Timing(name, t) for name, t in times.items()]
    finally:
        for conn in conns.values():
            conn.send("stop")
        for proc in procs.values():
            proc.join(timeout=10)


def table(timings: list[Timing], baseline: str, unit: float = 1e-3, unit_name: str = "ms") -> str:
    """A Markdown table of min / median / p90 / max and each median's ratio to the baseline's."""
    base = next(t for t in timings if t.name == baseline).median
    rows = [f"| contender | min {unit_name} | median {unit_name} | p90 {unit_name} | max {unit_name} | median / {baseline} |",
            "|---|---:|---:|---:|---:|---:|"]
    for t in timings:
        rows.append(f"| {t.name} | {min(t.times) / unit:.3f} | {t.median / unit:.3f} | {t.p90 / unit:.3f} | "
                    f"{max(t.times) / unit:.3f} | {t.median / base:.2f}x |")
    return "\n".join(rows)
