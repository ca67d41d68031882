"""The sweep: deterministic draws, --jobs independence, dead workers, interruption."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bpcheck.check import case_digest
from bpcheck.draw import draw_case, regime_and_dtype
from bpcheck.results import RunResult
from bpcheck.spec import UsageError
from bpcheck.sweep import KILL_HOOK, SweepConfig, run_sweep

FAST = dict(references=("fd",), max_depth=2, max_width=3)


def _stable(run: RunResult) -> list[dict]:
    return [r.without_timings().to_dict() for r in run.results]


def test_draw_is_a_function_of_seed_and_index_in_any_process():
    here = [case_digest(draw_case(7, i)) for i in range(6)]
    # The other process imports torch first where it is installed, so the draw is shown not to depend on it;
    # without torch (tox -e bare) the draw must still match.
    code = ("import importlib.util, json\n"
            "if importlib.util.find_spec('torch'):\n    import torch\n"
            "from bpcheck.draw import draw_case; from bpcheck.check import case_digest\n"
            "print(json.dumps([case_digest(draw_case(7, i)) for i in range(6)]))")
    there = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert here == there
    assert len(set(here)) == 6  # distinct cases, not one repeated draw
    assert case_digest(draw_case(8, 0)) != here[0]


def test_regimes_and_dtypes_are_cycled_evenly():
    combos = [regime_and_dtype(i, ("a", "b"), ("float64", "float32")) for i in range(8)]
    assert combos[:4] == [("a", "float64"), ("b", "float64"), ("a", "float32"), ("b", "float32")]
    case = draw_case(0, 3, regimes=("ordinary", "tiny"), dtypes=("float64", "float32"))
    assert (case.regime, case.x.dtype.name) == ("tiny", "float32")


def test_jobs_two_gives_the_same_results_as_jobs_one():
    one = run_sweep(SweepConfig(cases=5, jobs=1, **FAST))
    two = run_sweep(SweepConfig(cases=5, jobs=2, **FAST))
    assert _stable(one) == _stable(two)
    assert one.meta["case_indices"] == two.meta["case_indices"] == list(range(5))


def test_a_killed_worker_makes_its_case_error_and_the_rest_completes(monkeypatch):
    monkeypatch.setenv(KILL_HOOK, "2")
    run = run_sweep(SweepConfig(cases=5, jobs=2, **FAST))
    assert len(run.results) == 5 and not run.partial
    dead = run.results[2]
    assert dead.label == "ERROR" and not dead.ok
    assert "died (signal 9)" in dead.error
    assert dead.case_id == case_digest(draw_case(0, 2, max_depth=2, max_width=3))[:12]
    assert all(r.label != "ERROR" for i, r in enumerate(run.results) if i != 2)


def test_interrupt_returns_the_finished_cases_marked_partial():
    def progress(done, total, result):
        if done == 3:
            raise KeyboardInterrupt

    run = run_sweep(SweepConfig(cases=10, **FAST), progress=progress)
    assert run.partial and run.meta["partial"] is True
    assert len(run.results) == 3 and run.meta["case_indices"] == [0, 1, 2]


def test_meta_records_seed_options_versions_and_timings():
    run = run_sweep(SweepConfig(cases=2, seed=5, **FAST))
    m = run.meta
    assert m["seed"] == 5 and m["options"]["cases"] == 2 and m["options"]["references"] == ["fd"]
    assert set(m["versions"]) >= {"python", "numpy", "torch", "jax", "hypothesis"}
    assert m["references"]["fd"]["available"] is True
    assert m["timings"]["total_seconds"] > 0 and "fd_seconds" in m["timings"]
    assert m["partial"] is False


@pytest.mark.parametrize("bad, word", [(dict(cases=0), "--cases"), (dict(jobs=0), "--jobs"),
                                       (dict(regimes=("nope",)), "nope"), (dict(references=("tf",)), "tf")])
def test_bad_config_is_a_usage_error_naming_the_value(bad, word):
    with pytest.raises(UsageError, match=word):
        SweepConfig(**{**FAST, **bad}).validate()
