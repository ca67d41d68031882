"""--scheduler: the same report on a Dask cluster as in one process, and the faults of a cluster.

Real clusters only, on 127.0.0.1 with free ports: a LocalCluster that bpcheck starts itself (--scheduler local:2),
and a `dask scheduler` with two `dask worker` processes started here, each in its own session so it can be
killed whole and is always torn down. The producer is a user engine that sleeps a little per case, so that a run
lasts long enough to be interrupted mid-way; it computes the engine's gradients (every case AGREE).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

from bpcheck.cli import main
from bpcheck.sweep import KILL_HOOK

from .hide_optional import hidden_env, run_bpcheck
from .interrupt import ctrl_c_once_started, interruptible

pytest.importorskip("distributed", reason="dask.distributed is not installed: pip install 'bpcheck[cluster]'")

FAST = ["--refs", "fd", "--max-depth", "2", "--max-width", "3", "--no-shrink"]
SLOW_ENGINE = """
import time

from bpcheck import engine
from bpcheck.spec import Case


def grads(arch, params, x, y):
    time.sleep(0.03)
    return engine.gradients(Case(arch, params, x, y)).grads
"""
EXECUTOR_KEYS = ("seconds", "timings", "jobs", "scheduler", "executor", "out")


def _comparable(value, key: str = ""):
    """report.json without what may differ between executors: wall times, --jobs/--scheduler, the executor's
    meta and the output directory."""
    if key in EXECUTOR_KEYS or key.endswith("_seconds"):
        return None
    if isinstance(value, dict):
        return {k: _comparable(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


@pytest.fixture(scope="module")
def slow_engine(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("engine") / "slow_engine.py"
    path.write_text(textwrap.dedent(SLOW_ENGINE))
    return f"{path}:grads"


def _report(out: Path, *argv: str) -> tuple[int, dict]:
    code = main(["report", *FAST, "--formats", "json", "--out", str(out), *argv])
    return code, json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, slow_engine) -> dict:
    """The reference run: 24 cases in this process."""
    code, report = _report(tmp_path_factory.mktemp("one"), "--cases", "24", "--engine", slow_engine)
    assert code == 0 and len(report["results"]) == 24
    return report


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@contextmanager
def dask_cluster(env: dict[str, str] | None = None):
    """`dask scheduler` + two `dask worker --nthreads 1` on 127.0.0.1; yields (address, scheduler, workers)."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0", **(env or {})}
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], **quiet)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
                                           "--host", "127.0.0.1", "--no-dashboard"], **quiet))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address, procs[0], procs[1:]
    finally:
        for proc in reversed(procs):
            _stop(proc)


def test_local_cluster_gives_the_same_report_as_one_process(tmp_path, one_process, slow_engine):
    code, report = _report(tmp_path, "--cases", "24", "--engine", slow_engine, "--scheduler", "local:2")
    assert code == 0
    assert report["meta"]["executor"]["kind"] == "dask" and report["meta"]["executor"]["workers"] == 2
    assert _comparable(report) == _comparable(one_process)


def test_jobs_two_gives_the_same_report_as_one_process(tmp_path, one_process, slow_engine):
    code, report = _report(tmp_path, "--cases", "24", "--engine", slow_engine, "--jobs", "2")
    assert code == 0 and report["meta"]["executor"] == {"kind": "processes", "workers": 2, "chunk": 1}
    assert _comparable(report) == _comparable(one_process)


def test_a_case_that_kills_its_local_worker_is_retried_once_then_error(tmp_path, monkeypatch):
    monkeypatch.setenv(KILL_HOOK, "5")  # every worker that checks case 5 SIGKILLs itself (spawned workers inherit it)
    code, report = _report(tmp_path, "--cases", "12", "--scheduler", "local:2")
    assert code == 1
    labels = [r["label"] for r in report["results"]]
    assert len(labels) == 12 and not report["meta"]["partial"]
    assert labels[5] == "ERROR" and "ERROR" not in labels[:5] + labels[6:], labels
    error = report["results"][5]["error"]
    assert "Dask worker" in error and "died while checking this case, and again when it was retried alone" in error


def test_separate_scheduler_and_workers_give_the_same_report_while_a_worker_is_killed(tmp_path, one_process,
                                                                                       slow_engine):
    """A `dask worker` SIGKILLed mid-run: its chunks are retried on the other worker and nothing changes."""
    with dask_cluster() as (address, _, workers):
        out = tmp_path / "out"
        proc = subprocess.Popen([sys.executable, "-m", "bpcheck", "report", *FAST, "--formats", "json", "--out",
                                 str(out), "--cases", "24", "--engine", slow_engine, "--scheduler", address],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for line in proc.stdout:  # plain progress lines: one every 5% of the cases
                if line.startswith("["):
                    break
            os.killpg(workers[0].pid, signal.SIGKILL)
            stdout, stderr = proc.communicate(timeout=300)
        finally:
            _stop(proc) if proc.poll() is None else None
    assert proc.returncode == 0, stdout + stderr
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["executor"]["scheduler"] == address
    assert _comparable(report) == _comparable(one_process)


def test_the_scheduler_going_away_gives_a_partial_report_and_exit_1(tmp_path, slow_engine):
    with dask_cluster() as (address, scheduler, _):
        out = tmp_path / "out"
        proc = subprocess.Popen([sys.executable, "-m", "bpcheck", "report", *FAST, "--out", str(out), "--cases", "2000",
                                 "--engine", slow_engine, "--scheduler", address],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for line in proc.stdout:
                if line.startswith("["):
                    break
            os.killpg(scheduler.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate(timeout=300)
        finally:
            _stop(proc) if proc.poll() is None else None
    assert proc.returncode == 1, stdout + stderr
    assert "Traceback" not in stderr, stderr
    report = json.loads((out / "report.json").read_text())
    done = len(report["results"])
    assert report["meta"]["partial"] is True and 100 <= done < 2000, done
    assert f"the Dask scheduler at {address} went away" in report["meta"]["partial_reason"]
    assert report["meta"]["case_indices"] == sorted(report["meta"]["case_indices"])
    assert f"partial: the Dask scheduler at {address} went away" in stdout


def test_ctrl_c_on_a_local_cluster_writes_a_partial_report_and_exits_130(tmp_path, slow_engine):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "bpcheck", "report", *FAST, "--out", str(out), "--cases", "2000",
                             "--engine", slow_engine, "--scheduler", "local:2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=interruptible)
    stdout, stderr = ctrl_c_once_started(proc)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["partial"] is True and 100 <= len(report["results"]) < 2000
    assert report["meta"]["partial_reason"] == "interrupted"


@pytest.mark.parametrize("scheduler, words", [("local:0", "local:N with N >= 1"), ("tcp:/x", "not a scheduler address"),
                                              ("local:2 --jobs 2", "give one of them")])
def test_a_bad_scheduler_is_one_line_exit_2(tmp_path, capsys, scheduler, words):
    first, *rest = scheduler.split()
    code = main(["report", *FAST, "--out", str(tmp_path), "--scheduler", first, *rest])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_an_unreachable_scheduler_is_one_line_exit_2(tmp_path, capsys):
    code = main(["report", *FAST, "--out", str(tmp_path), "--scheduler", f"tcp://127.0.0.1:{_free_port()}"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach a Dask scheduler there" in err and "dask scheduler" in err, err


def test_scheduler_without_dask_installed_is_exit_2_with_the_install_line(tmp_path):
    done = run_bpcheck(["report", *FAST, "--out", str(tmp_path / "out"), "--scheduler", "local:2"],
                       env=hidden_env(tmp_path, "distributed"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "pip install 'bpcheck[cluster]'" in done.stderr, done.stderr


def test_mutants_give_the_same_results_in_one_process_in_two_and_on_a_local_cluster(tmp_path, capsys):
    """mutants --jobs 2 and --scheduler local:2: one task a mutant, the false-alarm cases in chunks; mutants.json
    equal to one process's but for wall times, the command line and the executor."""
    argv = ["mutants", "--only", "bias_sign_flipped,ce_forgets_y,missing_1_over_batch", "--cases", "3",
            "--fp-cases", "30", "--fp-stacks", "6", "--shrink", "greedy", "--refs", "fd,torch", "--no-baselines"]
    got = {}
    for name, where in (("one", []), ("jobs", ["--jobs", "2"]), ("dask", ["--scheduler", "local:2"])):
        assert main([*argv, *where, "--out", str(tmp_path / name)]) == 0
        got[name] = json.loads((tmp_path / name / "mutants.json").read_text())
    capsys.readouterr()
    assert got["dask"]["meta"]["executor"]["kind"] == "dask" and got["jobs"]["meta"]["executor"]["workers"] == 2
    assert got["one"]["totals"]["bpcheck_caught"] == 3 and got["one"]["engine"]["n"] == 30
    strip = lambda d: _comparable(d)["meta"] | {"command": None, "wall_seconds": None}  # noqa: E731
    for name in ("jobs", "dask"):
        assert strip(got[name]) == strip(got["one"])
        assert _comparable(got[name])["mutants"] == _comparable(got["one"])["mutants"]
        assert _comparable(got[name])["engine"] == _comparable(got["one"])["engine"]
