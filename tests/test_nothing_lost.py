"""Nothing lost: a Ctrl-C writes a partial report of the finished cases and exits 130, and a worker that dies is an
ERROR for its case in the written report while the rest completes.

tests/test_sweep.py holds the in-process side (run_sweep's partial result, the SIGKILLed worker's
ERROR); these run the real command, in a fresh process where a signal is involved. tests/test_report_folder.py
holds the folder's guarantees (one set swapped in whole, the lock, failures and signals mid-write).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bpcheck.cli import main
from bpcheck.sweep import KILL_HOOK

from .interrupt import ctrl_c_once_started, interruptible

FAST = ["--refs", "fd", "--max-depth", "2", "--max-width", "3"]


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".bpcheck-probe-")]


def test_report_over_a_directory_in_the_way_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "report.json").mkdir(parents=True)
    code = main(["report", "--cases", "2", *FAST, "--no-shrink", "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    line, = err.strip().splitlines()
    assert "report.json" in line and "give another --out" in line
    assert _temporaries(tmp_path) == []


def test_ctrl_c_writes_a_partial_report_of_the_finished_cases_and_exits_130(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C does, once some cases are done."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "bpcheck", "report", "--cases", "5000", "--jobs", "2", *FAST,
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=interruptible)
    stdout, stderr = ctrl_c_once_started(proc)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    report = json.loads((out / "report.json").read_text())
    done = len(report["results"])
    assert report["meta"]["partial"] is True and 250 <= done < 5000, done
    assert report["meta"]["case_indices"] == sorted(report["meta"]["case_indices"])
    assert "partial" in (out / "report.md").read_text()
    assert _temporaries(tmp_path) == []


def test_a_killed_worker_is_an_error_in_the_written_report_and_the_rest_completes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(KILL_HOOK, "2")  # the worker that draws case 2 SIGKILLs itself (spawned workers inherit it)
    out = tmp_path / "out"
    code = main(["report", "--cases", "6", "--jobs", "2", *FAST, "--no-shrink", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1  # an ERROR is not ok: the run does not pass
    report = json.loads((out / "report.json").read_text())
    labels = [r["label"] for r in report["results"]]
    assert len(labels) == 6 and labels[2] == "ERROR" and "ERROR" not in labels[:2] + labels[3:]
    assert "died" in report["results"][2]["error"] and report["meta"]["partial"] is False
    assert "ERROR" in printed
    # the summary says what failed: an ERROR, not a --fail-on label (this run has no ENGINE or REFERENCE)
    verdict = "FAIL: 1 of 6 cases ended in an ERROR (the gradient under test raised or its worker died)"
    assert next(ln for ln in printed.splitlines() if ln.startswith(("FAIL", "PASS"))) == verdict, printed
    assert f"**{verdict}**" in (out / "report.md").read_text()
    saved = out / "cases" / f"{report['results'][2]['case_id']}.json"
    assert saved.exists()  # the dead worker's case is saved for replay
