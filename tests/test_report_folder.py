"""The report folder holds one run's set: a run's files are swapped in whole (stale cases and formats go), a
failure or a signal in the middle of writing leaves the old set or the new one whole, what a SIGKILL leaves is
finished or removed by the next run, and a lock keeps a second run out of the folder.

Failures are injected mid-write through BPCHECK_TEST_WRITE_HOOK ("stage:3:FAIL": writing the 3rd file fails halfway
through; "commit:2:KILL": SIGKILL once the 2nd name is swapped in), and the signals go to real processes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bpcheck.cli import main
from bpcheck.report import analysis, jsonfmt
from bpcheck.report.writer import MUTANTS, REPORT, WRITE_HOOK, OutputFolder
from bpcheck.spec import UsageError

from .interrupt import interruptible

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--refs", "fd", "--max-depth", "2", "--max-width", "3", "--no-shrink"]
BUGGY = ["--engine", f"{ROOT / 'examples' / 'averaged_bias.py'}:grads"]
OLD = (1, 6, BUGGY)  # seed 1: 6 cases of an engine with a bug, so cases/ holds several saved cases
NEW = (2, 3, [])  # seed 2: 3 cases of bpcheck's engine, a PASS that saves no case


def _argv(out: Path, run: tuple, *extra: str) -> list[str]:
    seed, cases, engine = run
    return ["report", "--seed", str(seed), "--cases", str(cases), *FAST, *engine, *extra, "--out", str(out)]


def _snapshot(out: Path) -> dict[str, bytes]:
    """Every file under out, hidden ones included, with its bytes."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _assert_whole_set(out: Path, run: tuple) -> None:
    """out holds exactly one run's set: every file names that run, cases/ holds exactly its saved cases, nothing else."""
    seed, cases, _ = run
    report = jsonfmt.load(str(out / "report.json"))
    saved = {r.case_id for r in analysis.saved(report)}
    ids = {r.case_id for r in report.results}
    assert report.meta["seed"] == seed and len(report.results) == cases
    assert f"seed: `{seed}`; cases: {cases}" in (out / "report.md").read_text()
    assert f"seed={seed}," in (out / "report.html").read_text()
    assert set(re.findall(r'name="([0-9a-f]{12})\[', (out / "junit.xml").read_text())) == ids
    top = {"report.md", "report.json", "report.html", "junit.xml", "errors.png"} | ({"cases"} if saved else set())
    assert {p.name for p in out.iterdir()} == top  # no stale format, no hidden leftover, no lock file
    if saved:
        assert {p.stem for p in (out / "cases").iterdir()} == saved


def test_a_run_replaces_the_whole_set_stale_cases_and_formats_included(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_argv(out, OLD)) == 1
    _assert_whole_set(out, OLD)
    assert (out / "cases").is_dir()
    assert main(_argv(out, NEW)) == 0
    _assert_whole_set(out, NEW)  # the PASS report stands alone: the old run's cases/ went with its set
    other = (3, 6, BUGGY)
    assert main(_argv(out, OLD)) == 1 and main(_argv(out, other)) == 1
    _assert_whole_set(out, other)  # two runs into one --out: only the second one's case files
    assert main(_argv(out, NEW, "--formats", "md")) == 0
    assert {p.name for p in out.iterdir()} == {"report.md"}  # no report.json of another run beside it
    capsys.readouterr()


@pytest.mark.parametrize("step", [1, 3, 6])
def test_a_write_that_fails_mid_set_keeps_the_old_set_byte_for_byte(tmp_path, monkeypatch, capsys, step):
    """Writing the step-th file of the new set fails halfway (ENOSPC): one line, exit 2, the old set untouched."""
    out = tmp_path / "out"
    assert main(_argv(out, OLD)) == 1
    before = _snapshot(out)
    monkeypatch.setenv(WRITE_HOOK, f"stage:{step}:FAIL")
    capsys.readouterr()
    assert main(_argv(out, (4, 6, BUGGY))) == 2
    err = capsys.readouterr().err
    line, = err.strip().splitlines()
    assert f"--out {str(out)!r}" in line and "No space left on device" in line and "keeps its previous files" in line
    assert _snapshot(out) == before


def _run_with_hook(out: Path, hook: str) -> subprocess.CompletedProcess:
    env = {**os.environ, WRITE_HOOK: hook}
    return subprocess.run([sys.executable, "-m", "bpcheck", *_argv(out, NEW)], capture_output=True, text=True,
                          env=env, timeout=300, preexec_fn=interruptible)


@pytest.mark.parametrize(("hook", "code", "survivor"), [
    ("stage:3:INT", 130, "old"), ("stage:3:TERM", 143, "old"),
    ("commit:2:INT", 130, "new"), ("commit:2:TERM", 143, "new"),
])
def test_a_signal_mid_write_leaves_one_whole_set(tmp_path, capsys, hook, code, survivor):
    """SIGINT or SIGTERM while the set is staged: the old set stays, untouched; while it is swapped in: the swap
    finishes first, so the new set is whole. Either way the interrupted exit code and no traceback."""
    out = tmp_path / "out"
    assert main(_argv(out, OLD)) == 1
    before = _snapshot(out)
    done = _run_with_hook(out, hook)
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    if survivor == "old":
        assert _snapshot(out) == before
        assert f"nothing written: --out {str(out)!r} keeps its previous files" in done.stderr
    else:
        _assert_whole_set(out, NEW)
    capsys.readouterr()


@pytest.mark.parametrize(("hook", "survivor"), [("stage:3:KILL", "old"), ("commit:2:KILL", "new")])
def test_what_a_sigkill_mid_write_leaves_the_next_run_finishes_or_removes(tmp_path, capsys, hook, survivor):
    out = tmp_path / "out"
    assert main(_argv(out, OLD)) == 1
    before = _snapshot(out)
    done = _run_with_hook(out, hook)
    assert done.returncode == -signal.SIGKILL
    left, = [p for p in out.iterdir() if p.is_dir() and p.name.startswith(".bpcheck-")]  # it did leave something
    if survivor == "old":  # killed halfway through the 3rd staged file
        assert sorted(p.name for p in left.iterdir()) == ["report.html", "report.json", "report.md"]
    with OutputFolder(out):  # what every later run into the folder does first
        pass
    if survivor == "old":
        assert _snapshot(out) == before
    else:  # the kill came after the commit point, halfway through the swap: the next run completes it
        _assert_whole_set(out, NEW)
    capsys.readouterr()


def test_leftovers_of_older_versions_and_killed_runs_are_removed(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    leftovers = [out / ".report.md.k2j3h4.tmp", out / ".bpcheck-probe-x1y2", out / ".bpcheck-staging-report-abc" / "x"]
    for p in leftovers:
        p.parent.mkdir(exist_ok=True)
        p.write_text("half")
    (out / "notes.txt").write_text("mine")  # not bpcheck's: stays
    assert main(_argv(out, NEW)) == 0
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    assert (out / "notes.txt").read_text() == "mine"
    capsys.readouterr()


def _start_long_run(out: Path, cases: int, *extra: str) -> subprocess.Popen:
    """A real `report` run in its own process group, returned once its sweep is under way."""
    proc = subprocess.Popen([sys.executable, "-m", "bpcheck", "report", "--cases", str(cases), *FAST, *extra,
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=interruptible)
    for line in proc.stdout:  # the plain progress lines (not a tty): one every 5% of the cases
        if line.startswith("["):
            return proc
    proc.wait()
    pytest.fail(f"the run ended before its first progress line: {proc.stderr.read()}")


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("to", ["process", "group"])
def test_sigterm_writes_the_partial_report_and_stops_the_workers(tmp_path, to):
    """SIGTERM (from `kill`, a CI runner or `timeout`) is handled as Ctrl-C: partial report, exit 143, no traceback."""
    out = tmp_path / "out"
    proc = _start_long_run(out, 1000, "--jobs", "2")
    try:
        time.sleep(0.5)
        (os.kill if to == "process" else os.killpg)(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        _end(proc)
    assert proc.returncode == 143, stdout + stderr
    assert "Traceback" not in stderr
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["partial"] is True and 50 <= len(report["results"]) < 1000
    assert "partial" in (out / "report.md").read_text()
    deadline = time.monotonic() + 10
    while not _group_gone(proc.pid) and time.monotonic() < deadline:  # the workers were stopped, not orphaned
        time.sleep(0.1)
    assert _group_gone(proc.pid)


def test_a_second_run_into_a_busy_folder_is_refused_and_a_killed_holder_leaves_no_stale_lock(tmp_path, capsys):
    out = tmp_path / "out"
    first = _start_long_run(out, 5000)  # far longer than the test: it is killed
    try:
        second = subprocess.run([sys.executable, "-m", "bpcheck", *_argv(out, NEW)], capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        line, = second.stderr.strip().splitlines()
        assert line == (f"bpcheck report: error: --out {str(out)!r} is in use by another bpcheck report run "
                        f"(pid {first.pid}): wait for it to finish, or give another --out")
        assert first.poll() is None  # the refused run did not disturb the first one
        os.killpg(first.pid, signal.SIGKILL)  # the holder dies without a chance to unlock
        first.wait()
    finally:
        _end(first)
    assert main(_argv(out, NEW)) == 0  # the kernel freed the lock: no stale lock blocks the next run
    _assert_whole_set(out, NEW)  # ... which also removes the dead run's lock file
    capsys.readouterr()


def test_report_and_mutants_runs_do_not_lock_each_other_out(tmp_path, capsys):
    """The default --out (reports/) is shared by `report` and `mutants`: each locks and replaces only its own set."""
    out = tmp_path / "reports"
    out.mkdir()
    (out / "mutants.md").write_text("the mutants' own")
    with OutputFolder(out, MUTANTS):  # a mutants run holds the folder
        assert main(_argv(out, NEW)) == 0
    assert (out / "mutants.md").read_text() == "the mutants' own"
    (out / "mutants.md").unlink()
    _assert_whole_set(out, NEW)
    capsys.readouterr()


USER = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")

def grads(params, x, y):
    dz = 2.0 / x.shape[0] * (x @ params["W1"] + params["b1"] - y)
    return {{"W1": x.T @ dz, "b1": dz.sum(0)}}
"""


@pytest.fixture
def user(tmp_path):
    marker = tmp_path / "imported"
    path = tmp_path / "user_net.py"
    path.write_text(textwrap.dedent(USER.format(marker=str(marker))))
    return f"{path}:grads", marker


def _check(capsys, user_fn, report: Path):
    code = main(["check", user_fn, "--arch", "2-1", "--activations", "identity", "--loss", "mse", "--cases", "2",
                 "--refs", "fd", "--report", str(report)])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_report_is_checked_before_any_work_and_named(tmp_path, capsys, user):
    user_fn, marker = user
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = _check(capsys, user_fn, blocker / "sub")
    assert code == 2 and err.strip() == (f"bpcheck check: error: --report {str(blocker / 'sub')!r} is not a writable "
                                         "directory (Not a directory): give a directory you can write to")
    assert not marker.exists()  # refused before the user's file was imported
    busy = tmp_path / "busy"
    with OutputFolder(busy, REPORT):
        code, _, err = _check(capsys, user_fn, busy)
    assert code == 2 and "--report" in err and "is in use by another bpcheck report run" in err
    assert not marker.exists()
    code, out, err = _check(capsys, user_fn, busy)
    assert code == 0, out + err
    assert marker.exists() and (busy / "report.json").exists()  # the refusal was the lock and nothing else


def test_mutants_out_is_checked_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = subprocess.run([sys.executable, "-m", "bpcheck", "mutants", "--only", "mse_missing_2", "--cases", "1",
                           "--fp-cases", "0", "--no-baselines", "--out", str(blocker / "sub")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"bpcheck mutants: error: --out {str(blocker / 'sub')!r} is not a writable "
                                   "directory (Not a directory): give a directory you can write to")  # no mutant ran


def test_render_into_its_own_folder_keeps_the_report_it_renders_from(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_argv(out, OLD)) == 1
    source = json.loads((out / "report.json").read_text())
    assert main(["render", str(out / "report.json"), "--formats", "md"]) == 1  # exits as the report did
    assert json.loads((out / "report.json").read_text()) == source
    assert {p.name for p in out.iterdir()} == {"report.md", "report.json", "cases"}  # html/junit/png of the set: gone
    _, err = capsys.readouterr()
    assert err == ""


def test_a_directory_in_the_way_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "report.html").mkdir(parents=True)
    assert main(_argv(out, NEW)) == 2
    line, = capsys.readouterr().err.strip().splitlines()
    assert "report.html" in line and "a directory is in the way" in line and "give another --out" in line
    (out / "report.html").rmdir()
    (out / "cases").write_text("not a directory")
    assert main(_argv(out, NEW)) == 2
    line, = capsys.readouterr().err.strip().splitlines()
    assert "cases" in line and "give another --out" in line
    assert sorted(p.name for p in out.iterdir()) == ["cases"]  # nothing half-written


@pytest.mark.parametrize("name", ["../evil.json", "/tmp/evil.json", "cases/../../evil.json", "notes.txt", "cases"])
def test_the_writer_refuses_a_name_outside_its_set(tmp_path, name):
    """A last line of defence under render's own checks: a name from a crafted report.json never leaves --out."""
    out = tmp_path / "a" / "out"
    with pytest.raises(UsageError, match="refusing to write"):
        OutputFolder(out).write({"report.md": "x", name: "evil"})
    assert list(tmp_path.rglob("*")) == []  # refused before anything was created
