"""Never a PASS without a check: a named reference that cannot run stops the run (exit 2, or a UsageError from
the API), a case that no reference compared is not ok, an interrupted run with no finished case does not say
PASS, a gradient that overflows its dtype is an ERROR that says so (never ENGINE or REFERENCE), a float16
answer is not a passed dtype check and a NaN answer is not hidden state.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bpcheck import engine
from bpcheck import references as refs
from bpcheck.byo import check_gradients
from bpcheck.check import check_case, check_cases, compared
from bpcheck.commands.report import execute
from bpcheck.report.analysis import verdict_line
from bpcheck.report.summary import summary_lines
from bpcheck.results import RunResult
from bpcheck.spec import Arch, Case, init_params
from bpcheck.sweep import SweepConfig

from .hide_optional import hidden_env, run_bpcheck

ROOT = Path(__file__).resolve().parent.parent
FIXED = str(ROOT / "examples" / "seed_xor_fixed.py") + ":grads"
XOR = ["--arch", "2-2-1", "--activations", "sigmoid,sigmoid", "--loss", "mse"]
RELU = Arch((2, 3, 1), ("relu", "identity"), "mse")
# every reference that can run here under "all" (fd alone under tox -e bare), each with the same label
def every(label: str) -> dict[str, str]:
    return {n: label if refs.status(n).available else "SKIPPED" for n in refs.NAMES}


TORCH_MISSING = "--refs names 'torch', which cannot run here: torch is not installed: pip install torch==2.13.0"

API = """
import bpcheck, numpy as np
from bpcheck import Arch, Case, init_params, check_case, check_gradients, replay
from bpcheck.check import check_cases
from bpcheck.spec import UsageError
arch = Arch((2, 2, 1), ("sigmoid", "sigmoid"), "mse")
rng = np.random.default_rng(0)
case = Case(arch, init_params(arch, rng), rng.standard_normal((3, 2)), rng.random((3, 1)))
grads = lambda p, x, y: {k: v for k, v in bpcheck.engine.gradients(Case(arch, p, x, y)).grads.items()}
calls = {"check_case": lambda: check_case(case, "fd,torch"), "check_cases": lambda: check_cases([case], ["torch"]),
         "check_gradients": lambda: check_gradients(grads, arch, cases=1, references="torch"),
         "replay": lambda: replay(CASE_FILE, references="torch")}
for name, call in calls.items():
    try:
        call()
        print(name, "returned")
    except UsageError as exc:
        print(name, "raised", exc)
print("all:", check_case(case, "all").labels, check_case(case).ok)
"""


def _overflow_case(dtype: str, scale: float) -> Case:
    """relu then identity with mse: dW1 = x^T dz ~ scale^2, past float64 at 1e160 and past float32 at 1e30."""
    rng = np.random.default_rng(0)
    return Case(RELU, init_params(RELU, rng), scale * rng.standard_normal((3, 2)), rng.standard_normal((3, 1))).astype(dtype)


def test_a_named_reference_that_cannot_run_is_exit_2_everywhere_and_the_api_raises(tmp_path):
    """torch really hidden (tests/hide_optional.py): --refs naming it is a one-line exit 2 in every command
    that takes --refs, before any work; the API raises the same UsageError; only "all" skips it."""
    env = hidden_env(tmp_path, "torch")
    case = _overflow_case("float64", 1.0)
    case_file = tmp_path / "case.json"
    case_file.write_text(json.dumps(case.to_dict()))
    commands = {
        "report": ["report", "--refs", "torch", "--cases", "1", "--out", str(tmp_path / "rep")],
        "check": ["check", FIXED, *XOR, "--refs", "fd,torch", "--report", str(tmp_path / "chk")],
        "replay": ["replay", str(case_file), "--refs", "torch"],
        "mutants": ["mutants", "--refs", "fd,torch", "--only", "mse_missing_2", "--cases", "1", "--fp-cases", "0",
                    "--no-baselines", "--out", str(tmp_path / "mut")],
    }
    for name, argv in commands.items():
        done = run_bpcheck(argv, env=env)
        assert done.returncode == 2, f"{name}: {done.returncode} {done.stdout} {done.stderr}"
        assert done.stderr.splitlines() == [f"bpcheck {name}: error: {TORCH_MISSING} (or bpcheck[torch])"], done.stderr
        assert done.stdout == "" and "PASS" not in done.stderr
    assert not any((tmp_path / d).exists() for d in ("rep", "chk", "mut"))  # nothing was written

    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", API.replace("CASE_FILE", repr(str(case_file)))], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for name in ("check_case", "check_cases", "check_gradients", "replay"):
        assert any(ln.startswith(f"{name} raised references names 'torch', which cannot run here: torch is not installed")
                   for ln in lines), done.stdout
    # "all" skips the hidden torch and checks with the rest
    assert lines[-1].startswith("all: {'fd': 'AGREE', 'torch': 'SKIPPED', 'jax': ") and lines[-1].endswith(" True"), lines


def test_a_run_that_no_reference_compared_is_not_a_pass():
    run = check_cases([_overflow_case("float64", 1e160)], seed=0)
    assert run.results[0].labels == every("ERROR")
    assert not run.ok and run.failures()
    line = verdict_line(run)
    assert line.startswith("FAIL: 1 of 1 cases were compared by no reference"), line
    # the same through check_gradients: fixed data at 1e160 overflows every reference
    x, y = _overflow_case("float64", 1e160).x, np.ones((3, 1))
    result = check_gradients(lambda p, x_, y_: engine.gradients(Case(RELU, p, x_, y_)).grads, RELU, cases=(x, y),
                             dtype="float64")
    assert not result.ok and set(result.labels) == {"ERROR"}, result.summary()
    assert result.summary().splitlines()[1].startswith("FAIL")


def test_a_run_that_finished_no_case_says_not_checked():
    assert verdict_line(RunResult({"fail_on": ["ENGINE"], "partial": True}, ())) == \
        "NOT CHECKED: no case was checked (partial: interrupted)"

    def interrupted():
        raise KeyboardInterrupt
        yield  # a generator: Ctrl-C before its first case

    run = check_cases(interrupted(), "fd")
    assert run.partial and not run.results and not verdict_line(run).startswith("PASS")


def slow_engine(case: Case):
    """The engine, 3 s late: Ctrl-C (below) arrives before the first case finishes."""
    time.sleep(3)
    return engine.gradients(case)


def test_ctrl_c_before_the_first_case_finishes_does_not_print_pass(tmp_path):
    printed: list[str] = []

    def ctrl_c(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, ctrl_c)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        code = execute(SweepConfig(cases=3, references=("fd",)).validate(), str(tmp_path / "out"), ("md", "json"),
                       slow_engine, log=printed.append)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert code == 130
    assert printed[0] == "NOT CHECKED: no case was checked (partial: interrupted)", printed
    assert not any("PASS" in line for line in printed)
    assert "PASS" not in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("dtype, scale", [("float64", 1e160), ("float32", 1e30)])
def test_a_gradient_that_overflows_its_dtype_is_an_error_that_says_so(dtype, scale):
    result = check_case(_overflow_case(dtype, scale))
    assert result.labels == every("ERROR") and not result.ok, result.labels
    for v in (v for v in result.verdicts if v.label == "ERROR"):
        assert v.reason.startswith(f"not finite in {dtype}: {v.reference}'s"), v.reason
    assert "ENGINE" not in result.message() and "REFERENCE" not in result.message()
    # at the square root of the scale, dW1 ~ scale fits the dtype, and the case is compared as usual
    assert check_case(_overflow_case(dtype, scale ** 0.5)).labels == every("AGREE")


def test_an_infinite_answer_where_the_gradient_fits_the_dtype_is_still_engine():
    """The overflow rule reads the references, never the producer: a producer's own inf is its bug."""
    case = _overflow_case("float64", 1.0)

    def planted(c: Case):
        g = engine.gradients(c)
        return replace(g, grads={**g.grads, "W1": np.full_like(g.grads["W1"], np.inf)})

    assert check_case(case, producer=planted).labels == every("ENGINE")


def _sigmoid_grads(dtype=None, nan=False):
    arch = Arch((2, 2, 1), ("sigmoid", "sigmoid"), "mse")

    def grads(params, x, y):
        g = engine.gradients(Case(arch, params, x, y)).grads
        if nan:
            g = {**g, "W1": g["W1"] * np.nan}
        return {k: v.astype(dtype) if dtype else v for k, v in g.items()}

    return grads, arch


def test_a_float16_answer_is_not_a_passed_dtype_check():
    grads, arch = _sigmoid_grads(np.float16)
    result = check_gradients(grads, arch, cases=2, dtype="float64")
    summary = result.summary()
    assert not result.ok
    assert [f.check for f in result.findings] == ["dtype"], result.findings
    assert "returned dW1 as float16 for a float64 case" in result.findings[0].message
    passed = next(ln for ln in summary.splitlines() if ln.startswith("checks passed"))
    assert "dtypes" not in passed and passed.startswith("checks passed: keys and shapes;"), passed
    # the same math in float64 passes every check, dtypes included
    grads64, _ = _sigmoid_grads()
    assert "checks passed: keys, shapes and dtypes;" in check_gradients(grads64, arch, cases=2, dtype="float64").summary()


def test_a_nan_answer_is_reported_as_nan_not_as_hidden_state():
    grads, arch = _sigmoid_grads(nan=True)
    result = check_gradients(grads, arch, cases=2, dtype="float64")
    checks = {f.check for f in result.findings}
    assert not result.ok and checks == {"finite"}, result.findings
    assert "no hidden state" in next(ln for ln in result.summary().splitlines() if ln.startswith("checks passed"))


def test_the_summary_of_a_run_with_no_case_names_no_pass():
    lines = summary_lines(RunResult({"seed": 0, "fail_on": ["ENGINE", "REFERENCE"], "partial": True}, ()), "out", [])
    assert lines[0].startswith("NOT CHECKED") and not any("PASS" in ln for ln in lines)


def test_a_verdict_that_compared_no_tensor_compared_nothing():
    """AGREE over zero tensors is not a comparison; SKIPPED and ERROR never are."""
    real = check_case(_overflow_case("float64", 1.0), "fd").verdicts[0]
    assert compared(real) and real.label == "AGREE"
    assert not compared(replace(real, tensors=()))
    assert not compared(replace(real, label="SKIPPED")) and not compared(replace(real, label="ERROR"))
