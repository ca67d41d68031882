"""The code under test runs in a worker process: nothing it does reaches bpcheck's own process or its verdict.

One test per hostile behaviour, each a real user file (or a function defined in the test) run through the CLI or
the API as a user would: exiting (sys.exit, SystemExit, os._exit), patching numpy to hide a 2x bug, forking,
ignoring SIGALRM past --timeout, leaving a non-daemon thread, chdir, closing stdout, lowering the recursion limit,
raising KeyboardInterrupt, returning an object whose unpickling would run code. Each must end in the right label,
exit code and message, never a PASS. Then: functions defined in a test travel by value, an unpicklable one falls
back with one warning, and `report --engine`'s reproducer replays the same engine.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest

from bpcheck import Arch, Case, engine
from bpcheck.byo import check_gradients
from bpcheck.byo.isolation import IsolationWarning

from .hide_optional import run_bpcheck

ARCH = Arch((2, 2, 1), ("tanh", "identity"), "mse")
CLI_ARCH = ["--arch", "2-2-1", "--activations", "tanh,identity", "--loss", "mse", "--refs", "fd", "--cases", "2",
            "--dtype", "float64"]
HEAD = """
import os, signal, sys, threading, time
import numpy as np
from bpcheck import Case, engine

def right(arch, params, x, y):
    return dict(engine.gradients(Case(arch, params, x, y)).grads)

def doubled(arch, params, x, y):
    return {k: 2 * v for k, v in right(arch, params, x, y).items()}
"""


def user_file(tmp_path, body: str, name: str = "mine.py") -> str:
    path = tmp_path / name
    path.write_text(HEAD + textwrap.dedent(body))
    return str(path)


def check(tmp_path, body: str, *extra: str, cwd=None):
    return run_bpcheck(["check", f"{user_file(tmp_path, body)}:grads", *CLI_ARCH, *extra], cwd=cwd or tmp_path,
                       timeout=300)


def right(params, x, y):
    return dict(engine.gradients(Case(ARCH, params, x, y)).grads)


def no_traceback(done) -> None:
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr


# ---------------------------------------------------------------------------------------------
# Exiting


def test_sys_exit_0_is_an_error_not_a_silent_pass(tmp_path):
    done = check(tmp_path, """
        def grads(arch, params, x, y):
            sys.exit(0)
    """)
    assert done.returncode == 2, done.stdout
    assert "grads raised SystemExit(0) (sys.exit)" in done.stderr and "mine.py" in done.stderr
    no_traceback(done)


def test_sys_exit_in_report_engine_jobs_1_is_error_in_every_case(tmp_path):
    spec = user_file(tmp_path, "def grads(arch, params, x, y):\n    sys.exit(0)\n") + ":grads"
    done = run_bpcheck(["report", "--engine", spec, "--jobs", "1", "--cases", "3", "--refs", "fd", "--no-shrink",
                        "--formats", "json", "--out", str(tmp_path / "r")], cwd=tmp_path, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    results = json.loads((tmp_path / "r" / "report.json").read_text())["results"]
    assert [r["label"] for r in results] == ["ERROR"] * 3
    assert all("raised SystemExit(0)" in r["error"] for r in results)


def test_raise_systemexit_via_the_api_is_a_raises_finding():
    def grads(params, x, y):
        raise SystemExit

    result = check_gradients(grads, ARCH, cases=2, references="fd")
    assert not result.ok
    assert result.input_error.check == "raises" and "grads raised SystemExit(None)" in result.input_error.message


def test_os_exit_0_is_reported_as_the_worker_dying(tmp_path):
    done = check(tmp_path, """
        def grads(arch, params, x, y):
            os._exit(0)
    """)
    assert done.returncode == 2, done.stdout
    assert "grads ended bpcheck's worker process (exit code 0, as os._exit(0) or a crash gives)" in done.stderr
    no_traceback(done)


def test_os_exit_in_report_engine_restarts_the_worker_for_each_case(tmp_path):
    spec = user_file(tmp_path, "def grads(arch, params, x, y):\n    os._exit(0)\n") + ":grads"
    done = run_bpcheck(["report", "--engine", spec, "--cases", "2", "--refs", "fd", "--no-shrink", "--formats", "json",
                        "--out", str(tmp_path / "r")], cwd=tmp_path, timeout=300)
    assert done.returncode == 1
    results = json.loads((tmp_path / "r" / "report.json").read_text())["results"]
    assert [r["label"] for r in results] == ["ERROR", "ERROR"]
    assert all("ended bpcheck's worker process (exit code 0" in r["error"] for r in results)


# ---------------------------------------------------------------------------------------------
# Changing bpcheck's process


PATCH_ABS = """
    def grads(arch, params, x, y):
        np.abs = lambda a, *args, **kw: np.zeros(np.shape(a))   # every error bpcheck measures would read 0
        return doubled(arch, params, x, y)
"""


def test_monkey_patching_np_abs_cannot_hide_a_2x_bug(tmp_path):
    done = check(tmp_path, PATCH_ABS)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL: 2 ENGINE" in done.stdout


def test_the_np_abs_patch_does_hide_it_in_process(tmp_path):
    # what --in-process trusts: the same file turns the 2x bug into a pass in bpcheck's own process
    done = check(tmp_path, PATCH_ABS, "--in-process")
    assert "FAIL: 2 ENGINE" not in done.stdout


def test_os_fork_is_stopped_and_reported(tmp_path):
    marker = tmp_path / "child-ran"
    done = check(tmp_path, f"""
        def grads(arch, params, x, y):
            if os.fork() == 0:
                open({str(marker)!r}, "w").write("the child ran user code")
                os._exit(0)
            return right(arch, params, x, y)
    """)
    assert done.returncode == 2
    assert "grads called os.fork() (1 time(s)): bpcheck's worker stopped each child at once" in done.stderr
    assert not marker.exists()


def test_a_fork_bomb_is_stopped_by_the_timeout(tmp_path):
    done = check(tmp_path, """
        def grads(arch, params, x, y):
            while True:
                os.fork()
    """, "--timeout", "2")
    assert done.returncode == 2
    assert "grads did not return within --timeout 2 s" in done.stderr and "killed the worker process" in done.stderr


def test_ignoring_sigalrm_does_not_defeat_the_timeout(tmp_path):
    done = check(tmp_path, """
        def grads(arch, params, x, y):
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
            signal.setitimer(signal.ITIMER_REAL, 0)
            time.sleep(600)
    """, "--timeout", "1")
    assert done.returncode == 2
    assert "grads did not return within --timeout 1 s" in done.stderr
    no_traceback(done)


def test_a_non_daemon_thread_does_not_keep_bpcheck_alive(tmp_path):
    # in bpcheck's own process this thread would hold the exit for an hour (run_bpcheck's timeout is 300 s)
    done = check(tmp_path, """
        def grads(arch, params, x, y):
            threading.Thread(target=time.sleep, args=(3600,), daemon=False).start()
            return doubled(arch, params, x, y)
    """)
    assert done.returncode == 1 and "FAIL: 2 ENGINE" in done.stdout


CHDIR = """
    def grads(arch, params, x, y):
        os.makedirs("elsewhere", exist_ok=True)
        os.chdir("elsewhere")
        return doubled(arch, params, x, y)
"""


@pytest.mark.parametrize("mode", [[], ["--in-process"]], ids=["worker", "in-process"])
def test_os_chdir_cannot_move_the_report(tmp_path, mode):
    done = check(tmp_path, CHDIR, "--report", "rep", *mode)
    assert done.returncode == 1, done.stderr
    assert (tmp_path / "rep" / "report.json").is_file()
    assert not (tmp_path / "elsewhere" / "rep").exists()
    assert f"report written to {tmp_path / 'rep'}" in done.stdout


def test_closing_stdout_gives_no_traceback(tmp_path):
    done = check(tmp_path, """
        def grads(arch, params, x, y):
            sys.stdout.close()
            if not getattr(grads, "closed", False):  # the second call would find fd 1 closed already
                grads.closed = True
                os.close(1)
            return doubled(arch, params, x, y)
    """)
    assert done.returncode == 1 and "FAIL: 2 ENGINE" in done.stdout
    no_traceback(done)


def test_lowering_the_recursion_limit_gives_no_traceback(tmp_path):
    done = check(tmp_path, """
        def grads(arch, params, x, y):
            sys.setrecursionlimit(60)
            return doubled(arch, params, x, y)
    """)
    assert done.returncode == 1 and "FAIL: 2 ENGINE" in done.stdout
    no_traceback(done)


# ---------------------------------------------------------------------------------------------
# KeyboardInterrupt, crafted replies


def test_keyboard_interrupt_raised_by_user_code_is_its_error_not_a_ctrl_c(tmp_path):
    done = check(tmp_path, """
        def grads(arch, params, x, y):
            raise KeyboardInterrupt
    """)
    assert done.returncode == 2, done.stderr  # not 130: nobody pressed Ctrl-C
    assert "grads raised KeyboardInterrupt itself (not a Ctrl-C)" in done.stderr and "interrupted" not in done.stderr


@pytest.mark.parametrize("in_process", [False, True], ids=["worker", "in-process"])
def test_keyboard_interrupt_via_the_api_is_a_raises_finding(in_process):
    def grads(params, x, y):
        raise KeyboardInterrupt

    result = check_gradients(grads, ARCH, cases=1, references="fd", in_process=in_process)
    assert not result.ok and "raised KeyboardInterrupt itself" in result.input_error.message


def test_a_returned_object_cannot_run_code_in_bpcheck(tmp_path):
    marker = tmp_path / "ran-in-bpcheck"
    done = check(tmp_path, f"""
        class Evil:
            def __reduce__(self):
                return (open, ({str(marker)!r}, "w"))

        def grads(arch, params, x, y):
            g = right(arch, params, x, y)
            g["W1"] = Evil()
            return g
    """)
    assert done.returncode == 2
    assert "returned 'W1' of dtype object (Evil)" in done.stderr
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# Functions from the API and the fixture


def test_closures_and_lambdas_defined_in_a_test_run_in_the_worker(tmp_path):
    record = tmp_path / "pids"
    scale = 1.0

    def grads(params, x, y):
        with open(record, "a") as f:
            f.write(f"{os.getpid()}\n")
        return {k: scale * v for k, v in right(params, x, y).items()}

    assert check_gradients(grads, ARCH, cases=2, references="fd").ok
    assert check_gradients(lambda p, x, y: right(p, x, y), ARCH, cases=1, references="fd").ok
    pids = {int(line) for line in record.read_text().split()}
    assert pids and os.getpid() not in pids


def test_an_unpicklable_function_says_so_once_and_runs_in_process():
    lock = threading.Lock()

    def grads(params, x, y):
        with lock:
            return {k: 2 * v for k, v in right(params, x, y).items()}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = check_gradients(grads, ARCH, cases=2, references="fd")
    isolation = [w for w in caught if issubclass(w.category, IsolationWarning)]
    assert len(isolation) == 1
    assert "cannot be sent to bpcheck's worker process" in str(isolation[0].message)
    assert "runs in bpcheck's own process" in str(isolation[0].message)
    assert not result.ok and set(result.labels) == {"ENGINE"}  # still checked, here


def test_the_gradcheck_fixture_isolates_a_function_that_exits(gradcheck):
    def grads(params, x, y):
        os._exit(0)

    with pytest.raises(AssertionError, match="ended bpcheck's worker process"):
        gradcheck(grads, ARCH, cases=1, references="fd")


def test_a_function_that_mutates_its_arguments_is_still_caught_in_the_worker():
    def grads(params, x, y):
        g = right(params, x, y)
        params["W1"] -= 0.1 * g["W1"]
        return g

    result = check_gradients(grads, ARCH, cases=1, references="fd")
    assert any(f.check == "mutation" and "modified params['W1'] in place" in f.message for f in result.findings)


# ---------------------------------------------------------------------------------------------
# report --engine's reproducer


def test_the_report_engine_reproducer_replays_the_same_engine(tmp_path):
    spec = user_file(tmp_path, "grads = doubled\n") + ":grads"
    done = run_bpcheck(["report", "--engine", spec, "--cases", "2", "--refs", "fd", "--no-shrink", "--formats", "json,md",
                        "--out", "r"], cwd=tmp_path, timeout=300)
    assert done.returncode == 1
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["meta"]["engine"] == spec
    case = next((tmp_path / "r" / "cases").glob("*.json"))
    assert json.loads(case.read_text())["engine"] == spec
    other = tmp_path / "elsewhere"
    other.mkdir()
    refused = run_bpcheck(["replay", str(case)], cwd=other, timeout=300)  # a file never names code to run
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip().splitlines() == [
        f"bpcheck replay: error: the case was checked with --engine {spec!r}, and replay runs no code that a file names: "
        f"add --engine {spec} to run it (or --engine FILE.py:FUNCTION for another one)"]
    md = (tmp_path / "r" / "report.md").read_text()
    assert f"`python -m bpcheck replay cases/<id>.json --engine {spec}`" in md  # the printed reproducer names it
    replayed = run_bpcheck(["replay", str(case), "--engine", spec], cwd=other, timeout=300)  # another cwd: absolute spec
    assert replayed.returncode == 1, replayed.stderr
    assert "the same verdict" in replayed.stdout and "verdict: FAIL ENGINE" in replayed.stdout
    os.remove(spec.rsplit(":", 1)[0])
    gone = run_bpcheck(["replay", str(case), "--engine", spec], cwd=other, timeout=300)
    assert gone.returncode == 2
    assert gone.stderr.strip().splitlines() == [
        f"bpcheck replay: error: the case was checked with --engine {spec!r}, but {spec.rsplit(':', 1)[0]!r} no longer "
        "exists: restore it, or give --engine FILE.py:FUNCTION"]


def test_numpy_in_bpcheck_is_untouched_after_a_patching_function():
    def grads(params, x, y):
        np.abs = lambda a, *args, **kw: np.zeros(np.shape(a))
        return right(params, x, y)

    real = np.abs
    check_gradients(grads, ARCH, cases=1, references="fd")
    assert np.abs is real and np.abs(-1.0) == 1.0
    assert sys.modules["numpy"].abs is real


def test_a_crafted_case_file_naming_an_engine_runs_no_code(tmp_path):
    done = run_bpcheck(["report", "--cases", "1", "--refs", "fd", "--no-shrink", "--formats", "json", "--out", "r"],
                       cwd=tmp_path, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    saved = json.loads((tmp_path / "r" / "report.json").read_text())["results"][0]
    evil = tmp_path / "evil.py"
    marker = tmp_path / "ran"
    evil.write_text(f"open({str(marker)!r}, 'w').close()\ndef grads(arch, params, x, y):\n    return {{}}\n")
    saved["engine"] = f"{evil}:grads"
    crafted = tmp_path / "crafted.json"
    crafted.write_text(json.dumps(saved))
    replayed = run_bpcheck(["replay", str(crafted)], cwd=tmp_path, timeout=300)
    assert replayed.returncode == 2 and "replay runs no code that a file names" in replayed.stderr
    assert "Traceback" not in replayed.stderr and not marker.exists()
