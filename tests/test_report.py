"""The report pipeline with a planted bug: exit 1, and the files name the layer, the parameter and the diagnosis."""

from __future__ import annotations

import dataclasses
import json

import jsonschema
import pytest

from bpcheck import cli, draw, jsonfile
from bpcheck.commands.report import execute
from bpcheck.replaying import replay
from bpcheck.report.analysis import verdict_line
from bpcheck.report.jsonfmt import schema
from bpcheck.results import RunResult
from bpcheck.sweep import SweepConfig
from tests import planted

PLANTED = planted.derivative_dropped(1)  # act' dropped in layer 1 (hidden in every net of depth >= 2)


@pytest.fixture(scope="module")
def planted_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("planted")
    config = SweepConfig(cases=4, references=("fd", "torch"), regimes=("ordinary",), dtypes=("float64",)).validate()
    with pytest.MonkeyPatch.context() as m:  # MLPs only: the planted producer drops an MLP layer's act' (a stack: ERROR)
        m.setattr(draw, "LAYERED_EVERY", 0)
        code = execute(config, str(out), ("md", "json", "html", "junit", "png"), PLANTED, log=lambda *a: None)
    return code, out


def test_planted_bug_exits_1(planted_report):
    code, _ = planted_report
    assert code == 1


def test_markdown_names_layer_parameter_and_diagnosis(planted_report):
    _, out = planted_report
    md = (out / "report.md").read_text()
    assert "**FAIL:" in md
    assert "| ENGINE |" in md
    assert "| db1 | 1 |" in md  # the leading tensor and the first bad layer, in the worst-cases table
    assert "the derivative of sigmoid is missing in layer 1" in md
    assert "## Minimal reproducers" in md and "at the first layer" in md


def test_json_names_layer_parameter_and_diagnosis(planted_report):
    _, out = planted_report
    data = json.loads((out / "report.json").read_text())
    engine_verdicts = [v for r in data["results"] for v in r["verdicts"] if v["label"] == "ENGINE"]
    assert engine_verdicts
    for v in engine_verdicts:
        assert v["first_bad_layer"] == 1
        assert "missing in layer 1" in v["diagnosis"]
        assert {"W1", "b1"} <= {t["name"] for t in v["tensors"] if not t["ok"]}
    repro = data["meta"]["reproducers"][0]
    assert repro["kind"]["label"] == "ENGINE" and repro["kind"]["position"] == "first"
    assert repro["shrunk"] is True


def test_json_validates_against_the_schema_and_round_trips(planted_report):
    _, out = planted_report
    data = json.loads((out / "report.json").read_text())
    # jsonschema (draft 2020-12 as written) accepts what bpcheck's own validator (fastjsonschema) accepts
    validator = jsonschema.Draft202012Validator(schema(), registry=_schema_registry())
    jsonschema.Draft202012Validator.check_schema(schema())
    validator.validate(data)
    assert RunResult.from_dict(data).to_dict() == data
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**data, "format_version": 2})
    for case_file in (out / "cases").glob("*.json"):
        jsonschema.Draft202012Validator(jsonfile.schema("case.schema.json"), registry=_schema_registry()).validate(
            json.loads(case_file.read_text()))


def _schema_registry():
    from referencing import Registry, Resource

    return Registry().with_resources((jsonfile.SCHEMA_BASE + name, Resource.from_contents(jsonfile.schema(name)))
                                     for name in jsonfile.SCHEMA_FILES)


def test_every_saved_case_replays_to_the_recorded_verdict(planted_report):
    _, out = planted_report
    files = sorted((out / "cases").glob("*.json"))
    assert files
    for f in files:
        recorded = json.loads(f.read_text())
        assert replay(f, producer=PLANTED).label == recorded["label"]
        assert replay(f).label in ("AGREE", "KINK")  # bpcheck's own engine agrees on the same case


def test_render_reproduces_the_report_byte_for_byte(planted_report, tmp_path):
    code, out = planted_report
    assert cli.main(["render", str(out / "report.json"), "--out", str(tmp_path)]) == code == 1  # as report exited
    for name in ("report.md", "report.json", "report.html", "junit.xml", "errors.png"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "cases").iterdir()) == sorted(p.name for p in (out / "cases").iterdir())


def test_summary_line_counts_failing_labels_and_errors_apart(planted_report):
    _, out = planted_report
    run = RunResult.from_dict(json.loads((out / "report.json").read_text()))
    bad = len(run.failures())
    assert 1 <= bad < 4, "the planted run needs a failing case and a passing one"
    assert verdict_line(run) == f"FAIL: {bad} of 4 cases carry a failing label (ENGINE, REFERENCE)"
    # a passing case as a dead worker leaves it (tests/test_nothing_lost.py kills a real one): ERROR, no verdicts
    i = next(i for i, r in enumerate(run.results) if r.ok)
    dead = dataclasses.replace(run.results[i], label="ERROR", ok=False, verdicts=(), error="worker died (signal 9)")
    mixed = dataclasses.replace(run, results=(*run.results[:i], dead, *run.results[i + 1:]))
    assert verdict_line(mixed) == (f"FAIL: {bad + 1} of 4 cases carry a failing label (ENGINE, REFERENCE) or an "
                                   f"error: {bad} labelled, 1 ERROR")
