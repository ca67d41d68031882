"""The renderers: HTML is self-contained with embedded PNGs, JUnit counts, the writer is atomic, render rejects non-reports."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from xml.etree import ElementTree as ET

import pytest

from bpcheck import cli
from bpcheck.report import FORMATS, parse_formats, render_files, write_report
from bpcheck.report.writer import OutputFolder
from bpcheck.spec import UsageError
from bpcheck.sweep import SweepConfig, run_sweep
from tests import planted

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run():
    return run_sweep(SweepConfig(cases=4, references=("fd",), max_depth=2, max_width=3), planted.bias_averaged)


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images, self.external = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        for key in ("src", "href"):
            if a.get(key) and not a[key].startswith(("data:", "#")):
                self.external.append(a[key])


def test_html_parses_and_embeds_its_images(run):
    html = render_files(run, ("html",))["report.html"]
    parser = _Collect()
    parser.feed(html)
    parser.close()
    assert {"html", "table", "img"} <= set(parser.tags)
    assert parser.external == []  # no external assets
    assert parser.images
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert "ENGINE" in html and "1/batch" in html


def test_png_plot_is_a_png_and_deterministic(run):
    a, b = render_files(run, ("png",)), render_files(run, ("png",))
    assert list(a) == ["errors.png"] and a["errors.png"].startswith(PNG_MAGIC)
    assert a == b


def test_junit_has_one_testcase_per_case_and_reference(run):
    root = ET.fromstring(render_files(run, ("junit",))["junit.xml"].encode())
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(run.results) * 1  # one reference
    failures = [c for c in cases if c.find("failure") is not None]
    assert len(failures) == int(suite.get("failures")) == sum(not r.ok for r in run.results) > 0
    assert all(f.find("failure").get("type") == "ENGINE" for f in failures)


def test_junit_marks_skipped_references(tmp_path):
    run = run_sweep(SweepConfig(cases=1, references=("fd",), max_depth=1, max_width=2))
    from dataclasses import replace

    from bpcheck.results import Verdict

    r = run.results[0]
    skipped = replace(r, verdicts=(*r.verdicts, Verdict("jax", "SKIPPED", reason="jax is not installed: pip install jax")))
    xml = render_files(replace(run, results=(skipped,)), ("junit",))["junit.xml"]
    suite = ET.fromstring(xml.encode()).find("testsuite")
    assert suite.get("skipped") == "1" and "jax is not installed" in suite.find("testcase/skipped").get("message")


def test_formats_parse_and_reject_unknown_names():
    assert parse_formats("all") == FORMATS
    assert parse_formats("md, json") == ("md", "json")
    with pytest.raises(UsageError, match="'htm'.*did you mean 'html'"):
        parse_formats("md,htm")


def test_writer_replaces_the_set_and_leaves_no_temporary(tmp_path):
    folder = tmp_path / "a"
    OutputFolder(folder).write({"report.md": "one", "report.json": "{}"})
    OutputFolder(folder).write({"report.md": "two"})
    assert (folder / "report.md").read_text() == "two"
    assert [p.name for p in folder.iterdir()] == ["report.md"]  # the old run's report.json went with its set


def test_write_report_writes_every_format_and_the_case_files(run, tmp_path):
    paths = write_report(run, tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in paths}
    assert {"report.md", "report.json", "report.html", "junit.xml", "errors.png"} <= names
    assert {f"cases/{r.case_id}.json" for r in run.results if not r.ok} <= names
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]


def test_render_rejects_a_json_that_is_not_a_report(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"hello": 1}))
    out = tmp_path / "out"
    assert cli.main(["render", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not a bpcheck report" in err
    assert not out.exists()


def test_render_rejects_another_format_version(run, tmp_path, capsys):
    path = tmp_path / "report.json"
    path.write_text(json.dumps({**run.to_dict(), "format_version": 99}))
    assert cli.main(["render", str(path), "--out", str(tmp_path / "o")]) == 2
    assert re.search(r"format_version=99.*reads 1", capsys.readouterr().err)


def test_render_needs_neither_torch_nor_jax(run, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "report.json"
    path.write_text(json.dumps(run.to_dict()))
    code = ("import sys; from bpcheck.cli import main; "
            f"rc = main(['render', {str(path)!r}, '--out', {str(tmp_path / 'o')!r}]); "
            "print(rc, 'torch' in sys.modules, 'jax' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    # render exits as report did: 1, since the planted engine fails some cases
    assert p.stdout.split()[-3:] == [str(1 if run.failures() else 0), "False", "False"], p.stderr
    assert (tmp_path / "o" / "report.html").exists()


def test_a_passing_report_reads_as_one():
    """On a passing run over every regime (kinks crossed, tiny gradients), every verdict's judged error sits at
    or below the tolerance line, and no breakdown table repeats the totals ('not localised' for every case)."""
    from bpcheck import engine
    from bpcheck.report import analysis as an
    from bpcheck.report.markdown import render as markdown

    passing = run_sweep(SweepConfig(cases=20, references=("fd",), max_depth=2, max_width=3), engine.gradients)
    assert not passing.failures()
    judged = an.log_judged(passing)["fd"]
    assert len(judged) == 20 and all(v <= 0 for v in judged)
    assert any(t.norm_rel > 1e-3 for r in passing.results for v in r.verdicts for t in v.tensors)  # raw errors do spike
    md = markdown(passing)
    assert "not localised" not in md and "### By position" not in md
    assert all(len(t) > 1 and an.labels_present(t) != ["AGREE"] for t in an.breakdowns(passing).values())
    assert "## Closest to their tolerance (all within it)" in md and "## Worst cases" not in md
    failing = markdown(run_sweep(SweepConfig(cases=4, references=("fd",), max_depth=2, max_width=3), planted.bias_averaged))
    assert "## Worst cases" in failing and "### By position" in failing
