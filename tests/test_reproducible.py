"""Reproducible: one seed and one set of options give the same report, whatever --jobs, and every saved
case replays to the same numbers, bit for bit.

The producer is a user engine with a planted bug (bias gradients averaged over the batch, so every
case with batch > 1 is ENGINE and saved), so the report holds saved cases and a minimal reproducer
(hypothesis.find) to reproduce too, not only AGREE lines.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from bpcheck.cli import main
from bpcheck.replaying import replay
from bpcheck.results import CheckResult
from bpcheck.user_engine import UserEngine

pytest.importorskip("torch", reason="torch is not installed: pip install torch==2.13.0 (or bpcheck[torch])")
pytest.importorskip("jax", reason="jax is not installed: pip install jax (or bpcheck[jax])")

AVERAGED_BIAS = """
from bpcheck import engine
from bpcheck.spec import Case


def grads(arch, params, x, y):
    g = engine.gradients(Case(arch, params, x, y)).grads
    return {k: (v / x.shape[0] if k.startswith("b") else v) for k, v in g.items()}
"""


def _without_timings(value, key: str = ""):
    """The JSON with every wall time (seconds, *_seconds, timings), the --jobs and --scheduler options and the
    executor's own meta set to None."""
    if key in ("seconds", "timings", "jobs", "scheduler", "executor") or key.endswith("_seconds"):
        return None
    if isinstance(value, dict):
        return {k: _without_timings(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _report(out: Path, engine: str, jobs: int) -> dict[str, bytes]:
    """Run the report command into out (the same directory each time, as out is recorded in meta) and
    return every JSON file it wrote, by relative name, with the timings blanked, as bytes."""
    for old in out.rglob("*.json"):
        old.unlink()
    code = main(["report", "--cases", "12", "--seed", "3", "--out", str(out), "--formats", "json",
                 "--engine", engine, "--jobs", str(jobs)])
    assert code == 1  # the planted bug is found
    return {str(p.relative_to(out)): json.dumps(_without_timings(json.loads(p.read_text())), indent=1).encode()
            for p in sorted(out.rglob("*.json"))}


def test_same_seed_same_report_any_jobs_and_every_case_replays_bit_for_bit(tmp_path, capsys):
    user = tmp_path / "averaged_bias.py"
    user.write_text(textwrap.dedent(AVERAGED_BIAS))
    engine, out = f"{user}:grads", tmp_path / "out"

    first = _report(out, engine, jobs=1)
    again = _report(out, engine, jobs=1)
    two = _report(out, engine, jobs=2)
    capsys.readouterr()

    report = json.loads(first["report.json"])
    labels = [r["label"] for r in report["results"]]
    cases = [name for name in first if name.startswith("cases/")]
    assert len(labels) == 12 and "ENGINE" in labels and len(cases) >= 2, (labels, cases)
    assert report["meta"]["reproducers"], "no minimal reproducer was written"
    assert set(first) == set(again) == set(two)
    for name in first:
        assert first[name] == again[name], f"{name} differs between two runs with the same seed"
        assert first[name] == two[name], f"{name} differs between --jobs 1 and --jobs 2"

    # Replay each saved case (the sweep's and the reproducer's) with the same producer: every number
    # of the recorded result comes back, bit for bit (floats are compared through their exact JSON repr).
    producer = UserEngine(engine).load()
    for name in cases:
        recorded = CheckResult.from_dict(json.loads((out / name).read_text()))
        replayed = replay(out / name, producer)
        assert replayed.without_timings().to_dict() == recorded.without_timings().to_dict(), name
    # and through the CLI, in this process: same verdict, exit 1 for an ENGINE case
    assert main(["replay", str(out / cases[0]), "--engine", engine]) == 1
    assert "the same verdict" in capsys.readouterr().out
