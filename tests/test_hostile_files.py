"""Hostile files given to `render` and `replay`: each is one line, exit 2, no traceback, and nothing written.

Every crafted file is built here from a real report (a small run with a planted bug, so it has saved cases
and a minimal reproducer): paths that would escape --out, binary and UTF-16 content, JSON nested 10,000 deep,
numbers a float cannot hold, a wrong type in many fields, a FIFO, a device, a file over the size limit, a
missing file and a directory. Each row asserts exit code 2, one line on stderr naming the bad value and the
fix, no traceback, and that the folder holding the file and --out are exactly as before (nothing written
outside --out, nothing half-written inside). Then: report.html keeps a <script> in any field as text, render
exits like report, and `check ... | head -1` / `report | head -1` exit quietly.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from bpcheck import jsonfile
from bpcheck.cli import main
from bpcheck.commands.report import execute
from bpcheck.sweep import SweepConfig
from tests import planted

from .hide_optional import run_bpcheck

REPORT_FIX = "give the report.json written by `bpcheck report`"
CASE_FIX = "give a file written by bpcheck"
USER = '''
import numpy as np

def grads(params, x, y):
    a1 = 1 / (1 + np.exp(-(x @ params["W1"] + params["b1"])))
    a2 = 1 / (1 + np.exp(-(a1 @ params["W2"] + params["b2"])))
    dz2 = 2.0 / a2.size * (a2 - y) * a2 * (1 - a2)
    dz1 = (dz2 @ params["W2"].T) * a1 * (1 - a1)
    return {"W1": x.T @ dz1, "b1": dz1.sum(0), "W2": a1.T @ dz2, "b2": dz2.sum(0)}
'''


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> tuple[dict[str, Any], dict[str, Any]]:
    """report.json and one saved case file of a real run (the bias gradient averaged: every case fails)."""
    out = tmp_path_factory.mktemp("real")
    config = SweepConfig(cases=4, references=("fd",), max_depth=2, max_width=3).validate()
    assert execute(config, str(out), ("json",), planted.bias_averaged, log=lambda *a: None) == 1
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["reproducers"], "the crafted files need a reproducer to tamper with"
    case = json.loads(sorted((out / "cases").glob("*.json"))[0].read_text())
    return report, case


def _json(t: Path, data: Any, name: str = "crafted.json") -> str:
    (t / name).write_text(json.dumps(data))
    return str(t / name)


def _bytes(t: Path, data: bytes) -> str:
    (t / "crafted.json").write_bytes(data)
    return str(t / "crafted.json")


def _edit(data: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    change(data)
    return data


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set data[a][b]... for a dotted path ('meta.reproducers.0.file'); integers index lists."""
    *head, last = [int(p) if p.isdigit() else p for p in path.split(".")]

    def change(data: dict[str, Any]) -> None:
        for p in head:
            data = data[p]
        data[last] = value
    return change


def _failing(report: dict[str, Any]) -> int:
    return next(i for i, r in enumerate(report["results"]) if not r["ok"] and r["case"])


def _deep(n: int) -> str:
    return "[" * n + "]" * n


def _fifo(t: Path) -> str:
    os.mkfifo(t / "fifo.json")
    return str(t / "fifo.json")


def _over_limit(t: Path) -> str:
    with open(t / "big.json", "wb") as f:
        f.truncate(jsonfile.MAX_BYTES + 1)  # sparse: no disk, and it must be refused before a byte is read
    return str(t / "big.json")


class Row(NamedTuple):
    id: str
    make: Callable  # (report, case, tmp) -> path of the crafted file
    value: str      # what the one line must name
    fix: str = ""   # defaults to the command's own fix


# Files that are bad whatever they were meant to be: each row runs through render and through replay.
ANY_FILE = [
    Row("binary content", lambda r, c, t: _bytes(t, bytes(range(256)) * 4), "NUL byte at offset 0"),
    Row("binary content without NUL", lambda r, c, t: _bytes(t, b"\xff\xd8\xff\xe0JFIF" + bytes(range(1, 256))),
        "byte 0xff at offset 0"),
    Row("UTF-16 with a BOM", lambda r, c, t: _bytes(t, json.dumps(r).encode("utf-16")), "UTF-16 text"),
    Row("UTF-16 without a BOM", lambda r, c, t: _bytes(t, json.dumps(r).encode("utf-16-le")), "NUL byte at offset 1"),
    Row("UTF-8 with a BOM", lambda r, c, t: _bytes(t, b"\xef\xbb\xbf" + json.dumps(r).encode()), "byte-order mark",
        "save it as UTF-8 without a BOM"),
    Row("JSON nested 10,000 deep", lambda r, c, t: _bytes(t, _deep(10_000).encode()), "deeper than 64 levels"),
    Row("JSON nested 100 deep", lambda r, c, t: _bytes(t, _deep(100).encode()), "deeper than 64 levels"),
    Row("integer too large for a float", lambda r, c, t: _bytes(t, b'{"batch": 1' + b"0" * 400 + b"}"),
        "(401 digits), too large for a float"),
    Row("bare NaN", lambda r, c, t: _bytes(t, b'{"seconds": NaN}'), "bare NaN"),
    Row("bare -Infinity", lambda r, c, t: _bytes(t, b'{"seconds": -Infinity}'), "bare -Infinity"),
    Row("truncated JSON", lambda r, c, t: _bytes(t, json.dumps(r).encode()[:200]), "is not JSON"),
    Row("empty file", lambda r, c, t: _bytes(t, b""), "is not JSON (Expecting value at line 1"),
    Row("a JSON list", lambda r, c, t: _json(t, [1, 2]), "[1, 2]"),
    Row("a device", lambda r, c, t: "/dev/zero", "'/dev/zero' is not a regular file"),
    Row("a file over the size limit", lambda r, c, t: _over_limit(t), f"{jsonfile.MAX_BYTES + 1} bytes, over the 256 MiB"),
    Row("a missing file", lambda r, c, t: str(t / "none.json"), "none.json' cannot be read (No such file"),
    Row("a directory", lambda r, c, t: str(t), "is a directory"),
]

# report.json with one field of the wrong type (or value), anywhere in the file; and paths that would escape --out.
REPORTS = [
    Row("reproducer file absolute", lambda r, c, t: _json(t, _edit(r, _set("meta.reproducers.0.file", str(t / "evil.json")))),
        "meta.reproducers[0].file"),
    Row("reproducer file with ..", lambda r, c, t: _json(t, _edit(r, _set("meta.reproducers.0.file", "cases/../../evil.json"))),
        "'cases/../../evil.json'"),
    Row("reproducer case_id with ../", lambda r, c, t: _json(t, _edit(r, lambda d: (
        _set("meta.reproducers.0.case_id", "../../evil")(d), _set("meta.reproducers.0.file", "cases/../../evil.json")(d)))),
        "meta.reproducers[0].case_id = '../../evil'"),
    Row("reproducer file naming another case", lambda r, c, t: _json(t, _edit(r, _set("meta.reproducers.0.file",
                                                                                       "cases/0123456789ab.json"))),
        "'cases/0123456789ab.json', but its case_id"),
    Row("result case_id with ../", lambda r, c, t: _json(t, _edit(r, _set(f"results.{_failing(r)}.case_id", "../../evil"))),
        "case_id = '../../evil'"),
    Row("result case_id absolute", lambda r, c, t: _json(t, _edit(r, _set(f"results.{_failing(r)}.case_id", "/tmp/evil"))),
        "case_id = '/tmp/evil'"),
    Row("batch a string", lambda r, c, t: _json(t, _edit(r, _set("results.0.batch", "2"))), "results[0].batch = '2'"),
    Row("batch true", lambda r, c, t: _json(t, _edit(r, _set("results.0.batch", True))), "results[0].batch = True"),
    Row("unknown label", lambda r, c, t: _json(t, _edit(r, _set("results.1.label", "PASS"))), "results[1].label = 'PASS'"),
    Row("verdicts an object", lambda r, c, t: _json(t, _edit(r, _set("results.0.verdicts", {}))), "results[0].verdicts = {}"),
    Row("metric a string", lambda r, c, t: _json(t, _edit(r, _set("results.0.verdicts.0.tensors.0.max_rel", "big"))),
        "max_rel = 'big'"),
    Row("worst index of strings", lambda r, c, t: _json(t, _edit(r, _set("results.0.verdicts.0.tensors.0.worst.index", ["a"]))),
        "worst.index[0] = 'a'"),
    Row("timing a string", lambda r, c, t: _json(t, _edit(r, _set("meta.timings.total_seconds", "fast"))),
        "total_seconds = 'fast'"),
    Row("options a list", lambda r, c, t: _json(t, _edit(r, _set("meta.options", [1]))), "meta.options = [1]"),
    Row("reference available a string", lambda r, c, t: _json(t, _edit(r, _set("meta.references.fd.available", "yes"))),
        "available = 'yes'"),
    Row("reproducer count a <script>", lambda r, c, t: _json(t, _edit(r, _set("meta.reproducers.0.count", "<script>"))),
        "count = '<script>'"),
    Row("fail_on an unknown label", lambda r, c, t: _json(t, _edit(r, _set("meta.fail_on", ["BOGUS"]))), "'BOGUS'"),
    Row("result missing verdicts", lambda r, c, t: _json(t, _edit(r, lambda d: d["results"][0].pop("verdicts"))),
        "results[0] missing verdicts"),
    Row("case x of strings", lambda r, c, t: _json(t, _edit(r, _set("results.0.case.x", [["1", "2"]]))), "x[0][0] = '1'"),
    Row("reference name with mathtext", lambda r, c, t: _json(t, _edit(r, _set("results.0.verdicts.0.reference", "$\\frac$"))),
        "reference = '$\\\\frac$'"),
    Row("17 references", lambda r, c, t: _json(t, _edit(r, _set("meta.references", {
        f"r{i}": {"available": True} for i in range(17)}))), "less than or equal to 16 properties"),
    Row("17 references in the verdicts", lambda r, c, t: _json(t, _edit(r, _set("results.0.verdicts", [
        {**r["results"][0]["verdicts"][0], "reference": f"r{i}"} for i in range(17)]))), "names 18 references"),  # and fd, in meta
    Row("results an object", lambda r, c, t: _json(t, _edit(r, _set("results", {"0": 1}))), "results = {'0': 1}"),
]

# A case file (a saved CheckResult, or a bare Case) with one field of the wrong type.
CASES = [
    Row("case x of strings", lambda r, c, t: _json(t, _edit(c, _set("case.x", [["a", "b"]]))), "case.x[0][0] = 'a'"),
    Row("case in_shape a string", lambda r, c, t: _json(t, _edit(c, _set("case.arch.in_shape", "2"))), "in_shape = '2'"),
    Row("case layer kind a number", lambda r, c, t: _json(t, _edit(c, _set("case.arch.layers.0", [1, {}]))),
        "layers[0][0] = 1"),
    Row("case sizes a string (spec_version 1)", lambda r, c, t: _json(t, _edit(c, _set("case", {
        **c["case"], "spec_version": 1, "arch": {"sizes": "2-2-1", "activations": ["tanh"], "loss": "mse"}}))),
        "sizes = '2-2-1'"),
    Row("case params a list", lambda r, c, t: _json(t, _edit(c, _set("case.params", [1]))), "case.params = [1]"),
    Row("case param named ../x", lambda r, c, t: _json(t, _edit(c, _set("case.params", {"../x": [1.0]}))), "'../x'"),
    Row("case dtype float16", lambda r, c, t: _json(t, _edit(c, _set("case.dtype", "float16"))), "dtype = 'float16'"),
    Row("case verdicts an object", lambda r, c, t: _json(t, _edit(c, _set("verdicts", {}))), "verdicts = {}"),
    Row("case fast a string", lambda r, c, t: _json(t, _edit(c, _set("fast", "yes"))), "fast = 'yes'"),
    Row("case fail_on an unknown label", lambda r, c, t: _json(t, _edit(c, _set("fail_on", ["X"]))), "fail_on[0] = 'X'"),
    Row("case x 1e999 (inf)", lambda r, c, t: _bytes(t, json.dumps(_edit(c, _set("case.x.0.0", 12345.5))).replace(
        "12345.5", "1e999").encode()), "x has inf at (0, 0)", "every value must be finite"),
    Row("bare case x a number", lambda r, c, t: _json(t, _edit(c["case"], _set("x", 3))), "x = 3"),
    Row("bare case arch missing loss", lambda r, c, t: _json(t, _edit(c["case"], lambda d: d["arch"].pop("loss"))),
        "arch missing loss"),
]

ROWS = ([("render", row) for row in ANY_FILE + REPORTS] + [("replay", row) for row in ANY_FILE + CASES])
IDS = [f"{cmd}: {row.id}" for cmd, row in ROWS]


def _tree(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every entry under roots (hidden ones too): path -> (size, mtime), to prove nothing was written."""
    out = {}
    for root in roots:
        for p in [root, *root.rglob("*")] if root.exists() else []:
            st = p.lstat()
            out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


def _argv(cmd: str, path: str, out: Path) -> list[str]:
    return ["render", path, "--out", str(out)] if cmd == "render" else ["replay", path]


def _assert_one_line(err: str, row: Row, fix: str) -> None:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bpcheck "), lines[0]
    assert row.value in lines[0], f"the message does not name {row.value!r}: {lines[0]}"
    assert (row.fix or fix) in lines[0], f"the message does not say the fix {row.fix or fix!r}: {lines[0]}"


def test_there_are_many_hostile_files():
    assert len(ROWS) >= 40 and len(set(IDS)) == len(IDS)


@pytest.mark.parametrize(("cmd", "row"), ROWS, ids=IDS)
def test_hostile_file_is_one_line_exit_2_and_nothing_written(cmd, row, real, tmp_path, capsys):
    report, case = real
    path = row.make(report, case, tmp_path)
    out = tmp_path / "out"
    before = _tree(tmp_path, Path.cwd() / "cases")
    code = main(_argv(cmd, path, out))
    stdout, err = capsys.readouterr()
    assert code == 2, stdout + err
    _assert_one_line(err, row, REPORT_FIX if cmd == "render" else CASE_FIX)
    assert _tree(tmp_path, Path.cwd() / "cases") == before  # nothing outside --out, and no --out at all
    assert not out.exists()
    assert not (tmp_path / "evil.json").exists() and not (tmp_path.parent / "evil.json").exists()


SUBPROCESS = ["JSON nested 10,000 deep", "integer too large for a float", "binary content", "a device",
              "a file over the size limit", "reproducer case_id with ../"]


@pytest.mark.parametrize(("cmd", "row"), [(c, r) for c, r in ROWS if r.id in SUBPROCESS],
                         ids=[i for i, (c, r) in zip(IDS, ROWS) if r.id in SUBPROCESS])
def test_hostile_file_through_python_m_bpcheck(cmd, row, real, tmp_path):
    report, case = real
    path = row.make(report, case, tmp_path)
    before = _tree(tmp_path)
    done = run_bpcheck(_argv(cmd, path, tmp_path / "out"), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    _assert_one_line(done.stderr, row, REPORT_FIX if cmd == "render" else CASE_FIX)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("cmd", ["render", "replay"])
def test_a_fifo_is_refused_without_waiting_for_a_writer(cmd, tmp_path):
    """Opened for reading, a FIFO with no writer blocks forever; bpcheck never waits on it (timeout = failure)."""
    fifo = _fifo(tmp_path)
    done = run_bpcheck(_argv(cmd, fifo, tmp_path / "out"), timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    _assert_one_line(done.stderr, Row("fifo", None, "fifo.json' is not a regular file (a FIFO"),
                     REPORT_FIX if cmd == "render" else CASE_FIX)
    assert not (tmp_path / "out").exists()


# --- a wrong value in any field: a one-line error, or a file that still works; never another exception ---

WRONG = ["text", -1, 1e308, 10**300, [], {}, None, True, [[1.0]], "nan"]
MISSING = object()


def _fields(node: Any, prefix: tuple = ()) -> list[tuple]:
    """The path of every field, lists represented by their first item (the rest are laid out alike)."""
    items = node.items() if isinstance(node, dict) else enumerate(node[:1]) if isinstance(node, list) else ()
    out = []
    for key, value in items:
        out += [(*prefix, key), *_fields(value, (*prefix, key))]
    return out


def _mutations(doc: dict[str, Any]):
    """doc with one field set to a wrong value (rotating through WRONG, so each kind of value lands on a third of
    the fields) or removed: every field of the file is hit at least twice."""
    for i, path in enumerate(_fields(doc)):
        for value in (WRONG[i % len(WRONG)], WRONG[(i + 3) % len(WRONG)], MISSING):
            data = copy.deepcopy(doc)
            node = data
            for key in path[:-1]:
                node = node[key]
            if value is MISSING:
                node.pop(path[-1])
            else:
                node[path[-1]] = value
            yield path, value, data


def _render(path: str) -> None:
    from bpcheck.report import html, jsonfmt, render_files

    run = jsonfmt.load(path)
    render_files(run, ("md", "junit"))
    html.render(run, {})  # the plots need matplotlib per call: tested once, by the html test above


def _replay(path: str) -> None:
    from bpcheck.replaying import load_case, replay_case

    case, recorded = load_case(path)
    replay_case(case, recorded, references="fd")


@pytest.mark.parametrize("what", ["report", "case"])
def test_a_wrong_value_in_any_field_is_one_error_or_still_works(what, real, tmp_path):
    from bpcheck.spec import BpcheckError

    report, case = real
    doc = case if what == "case" else {**report, "results": [r for r in report["results"] if not r["ok"]][:1],
                                       "meta": {**report["meta"], "reproducers": report["meta"]["reproducers"][:1]}}
    rejected = tried = 0
    for path, value, data in _mutations(doc):
        file = _json(tmp_path, data)
        tried += 1
        try:
            with np.errstate(all="ignore"):  # 1e308 in a case is valid input, whose arithmetic overflows
                (_replay if what == "case" else _render)(file)
        except BpcheckError as exc:
            rejected += 1
            assert "\n" not in str(exc), (path, value, str(exc))
        except Exception as exc:  # noqa: BLE001 -- the point: nothing but a BpcheckError may come out
            raise AssertionError(f"{'.'.join(map(str, path))} = {value!r}: {type(exc).__name__}: {exc}") from None
    assert tried > 200 and rejected > tried / 2, (tried, rejected)


# --- report.html keeps whatever report.json says as text ---

PAYLOADS = ('<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', "' onmouseover='alert(1)")
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "b", "table", "tr", "th", "td",
                "ul", "li", "br", "code", "img"}


def _inject(report: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Every string value and every free-form key the schema still accepts, replaced by a payload: the crafted
    report that puts markup in each field a renderer could interpolate. Returns it and how many fields took one."""
    data = copy.deepcopy(report)
    taken = 0

    def valid() -> bool:
        try:
            jsonfile.validate(data, "report.schema.json", "crafted.json", "")
        except Exception:
            return False
        return all(rep["file"] == f"cases/{rep['case_id']}.json" for rep in data["meta"].get("reproducers", []))

    def walk(node: Any) -> None:
        nonlocal taken
        items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        for key, value in items:
            if isinstance(value, (dict, list)):
                walk(value)
            elif isinstance(value, str):
                node[key] = PAYLOADS[taken % len(PAYLOADS)]
                if valid():
                    taken += 1
                else:
                    node[key] = value
        if isinstance(node, dict):
            for key in list(node):
                node[PAYLOADS[0] + key] = node.pop(key)
                if valid():
                    taken += 1
                else:
                    node[key] = node.pop(PAYLOADS[0] + key)

    walk(data)
    return data, taken


class _Html(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.handlers, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.handlers += [(tag, k) for k, _ in attrs if k.startswith("on")]

    def handle_data(self, data):
        self.text.append(data)


def test_html_keeps_markup_from_every_field_as_text(real, tmp_path, capsys):
    report, _ = real
    crafted, taken = _inject(report)
    assert taken > 100, taken  # most fields are free text: the test covers them, not a chosen few
    path = _json(tmp_path, crafted)
    assert main(["render", path, "--out", str(tmp_path / "out"), "--formats", "html,md"]) == 1
    html = (tmp_path / "out" / "report.html").read_text()
    parser = _Html()
    parser.feed(html)
    parser.close()
    assert "script" not in parser.tags and parser.handlers == []
    assert set(parser.tags) <= ALLOWED_TAGS, set(parser.tags) - ALLOWED_TAGS
    text = "".join(parser.text)
    assert all(p in text for p in PAYLOADS)  # interpolated, and shown as the text it is
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cases", "report.html", "report.md"]
    assert all(re.fullmatch(r"[0-9a-f]{12}\.json", p.name) for p in (tmp_path / "out" / "cases").iterdir())


# --- render exits like report ---

@pytest.mark.parametrize("producer", [None, planted.bias_averaged], ids=["passing run", "failing run"])
def test_render_exits_as_report_did(producer, tmp_path, capsys):
    config = SweepConfig(cases=3, references=("fd",), max_depth=2, max_width=3).validate()
    code = execute(config, str(tmp_path / "run"), ("json",), producer, shrink=False, log=lambda *a: None)
    assert code == (0 if producer is None else 1)
    assert main(["render", str(tmp_path / "run" / "report.json"), "--out", str(tmp_path / "again")]) == code


# --- a reader that goes away (`| head -1`) ---

def _closed_stdout(argv: list[str], cwd: Path) -> tuple[int, str]:
    """bpcheck with its stdout a pipe whose reader has already gone: every write is EPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "bpcheck", *argv], stdout=write, stderr=subprocess.PIPE,
                              text=True, cwd=cwd, timeout=300)
    finally:
        os.close(write)
    return done.returncode, done.stderr


@pytest.mark.parametrize("what", ["check", "report"])
def test_closed_stdout_is_quiet_and_the_run_still_finishes(what, tmp_path):
    (tmp_path / "net.py").write_text(USER)
    argv = (["check", f"{tmp_path / 'net.py'}:grads", "--arch", "2-2-1", "--activations", "sigmoid", "--loss", "mse",
             "--cases", "3", "--refs", "fd", "--report", str(tmp_path / "out")] if what == "check"
            else ["report", "--cases", "3", "--refs", "fd", "--out", str(tmp_path / "out"), "--formats", "json"])
    code, err = _closed_stdout(argv, tmp_path)
    assert code == 0, err  # the run's own exit code: a correct net passes
    assert err == "", err  # no BrokenPipeError traceback, no "Exception ignored"
    assert (tmp_path / "out" / "report.json").exists()


def test_piped_into_head_prints_one_line_and_exits_quietly(tmp_path):
    """The shell pipeline itself, pipefail on, so bpcheck's own exit code is the pipeline's."""
    out = tmp_path / "out"
    cmd = (f"set -o pipefail; {sys.executable} -m bpcheck report --cases 40 --refs fd --formats json "
           f"--out {out} | head -1")
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1 and done.stderr == ""
    assert (out / "report.json").exists()
