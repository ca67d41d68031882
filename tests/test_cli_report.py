"""`python -m bpcheck report / render / replay` end to end: exit codes, files, summary, Ctrl-C, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from bpcheck import cli
from bpcheck.references import status

from .interrupt import interruptible

SMALL = ["--refs", "fd", "--max-depth", "2", "--max-width", "3"]
# fd and, where installed, torch: the point of the tests using it holds with fd alone (the bare venv of tox -e bare)
FD_TORCH = [name for name in ("fd", "torch") if status(name).available]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUGGY = textwrap.dedent("""
    from bpcheck import Case, engine

    def grads(arch, params, x, y):
        g = dict(engine.gradients(Case(arch, params, x, y)).grads)
        g["b1"] = g["b1"] / x.shape[0]  # the 1/batch bias bug
        return g
""")


def _run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "bpcheck", *args], capture_output=True, text=True, cwd=ROOT, **kw)


def _strip_timings(d):
    """The report JSON without wall times and the output path: what two runs of one seed must share."""
    if isinstance(d, dict):
        return {k: _strip_timings(v) for k, v in d.items() if k not in ("seconds", "timings", "out")}
    if isinstance(d, list):
        return [_strip_timings(v) for v in d]
    return d


def test_default_pipeline_small_n(tmp_path, capsys):
    out = tmp_path / "r"
    assert cli.main(["report", "--cases", "3", "--refs", ",".join(FD_TORCH), "--max-depth", "2", "--out", str(out)]) == 0
    for name in ("report.md", "report.json", "report.html", "junit.xml", "errors.png"):
        assert (out / name).stat().st_size > 0, name
    lines = [ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith("[")]
    assert lines[0].startswith("PASS") and lines[1].startswith("seed 0, 3 cases")
    assert all(any(ln.strip().startswith(f"{name} ") for ln in lines) for name in FD_TORCH), lines
    assert lines[-1].startswith(f"report: {out}")
    assert len(lines) <= 20


def test_as_a_subprocess(tmp_path):
    p = _run("report", "--cases", "2", *SMALL, "--formats", "md,json", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert "PASS" in p.stdout and sorted(os.listdir(tmp_path)) == ["report.json", "report.md"]


def test_same_seed_same_json_apart_from_timings(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert cli.main(["report", "--cases", "4", *SMALL, "--seed", "3", "--formats", "json", "--out", str(out)]) == 0
    ja, jb = (json.loads((o / "report.json").read_text()) for o in (a, b))
    assert _strip_timings(ja) == _strip_timings(jb)
    assert ja["meta"]["seed"] == 3


def test_user_engine_with_a_planted_bug_fails_and_replays(tmp_path, capsys):
    (tmp_path / "mine.py").write_text(BUGGY)
    spec = f"{tmp_path / 'mine.py'}:grads"
    out = tmp_path / "r"
    code = cli.main(["report", "--cases", "3", "--refs", ",".join(FD_TORCH), "--regimes", "ordinary", "--engine", spec,
                     "--formats", "md,json", "--out", str(out)])
    assert code == 1
    md = (out / "report.md").read_text()
    assert "1/batch" in md and "db1" in md
    case = next(p for p in (out / "cases").glob("*.json") if json.loads(p.read_text())["label"] == "ENGINE")
    capsys.readouterr()
    assert cli.main(["replay", str(case), "--engine", spec]) == 1
    text = capsys.readouterr().out
    assert "replayed ENGINE" in text and "the same verdict" in text and "verdict: FAIL ENGINE" in text
    assert cli.main(["replay", str(case)]) == 2  # the case file names the engine, but a file never picks code to run
    assert f"add --engine {spec} to run it" in capsys.readouterr().err


def test_ctrl_c_writes_a_partial_report_and_exits_130(tmp_path):
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "bpcheck", "report", "--cases", "400", *SMALL, "--formats", "md,json",
                             "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)
    for line in proc.stdout:
        if line.startswith("["):  # a progress line: some cases are done
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    data = json.loads((out / "report.json").read_text())
    assert data["meta"]["partial"] is True
    assert 1 <= len(data["results"]) < 400 and len(data["results"]) == len(data["meta"]["case_indices"])
    assert "partial" in (out / "report.md").read_text()
    leftovers = [p.name for p in out.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.parametrize("argv, needle", [
    (["report", "--bogus"], "unrecognized arguments: --bogus"),
    (["report", "--cases", "0"], "--cases"),
    (["report", "--jobs", "-1"], "--jobs"),
    (["report", "--refs", "tf"], "reference 'tf'"),
    (["report", "--formats", "pdf"], "--formats has unknown 'pdf'"),
    (["report", "--engine", "nothere.py:grads"], "nothere.py"),
])
def test_bad_input_is_one_line_exit_2_and_no_file(tmp_path, argv, needle):
    out = tmp_path / "r"
    p = _run(*argv, "--out", str(out))
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert needle in p.stderr
    assert not out.exists()


def test_unwritable_out_is_one_line_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["report", "--cases", "1", *SMALL, "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "is not a writable directory" in err
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_refs_naming_an_uninstalled_reference_gives_the_install_hint(tmp_path):
    # sys.modules["jax"] = None makes importlib.util.find_spec('jax') answer "not installed" in that process only.
    code = ("import sys; sys.modules['jax'] = None; from bpcheck.cli import main; "
            f"sys.exit(main(['report', '--refs', 'jax', '--out', {str(tmp_path / 'r')!r}]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1
    assert "pip install jax" in p.stderr
    assert not (tmp_path / "r").exists()


def test_render_and_replay_of_bad_files(tmp_path):
    bad = tmp_path / "not.json"
    bad.write_text("{]")
    for argv in (["render", str(bad)], ["replay", str(bad)]):
        p = _run(*argv)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert sorted(os.listdir(tmp_path)) == ["not.json"]
