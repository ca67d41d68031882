"""Layered cases (bpcheck.stacks): valid stacks from numpy and from Hypothesis, regimes, --layers, shrinking, report."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings

from bpcheck import draw, engine
from bpcheck.check import case_digest
from bpcheck.draw import draw_case
from bpcheck.layers import LAYERS
from bpcheck.layers.windows import pair
from bpcheck.regimes import REGIMES, SATURATION
from bpcheck.results import CheckResult, RunResult
from bpcheck.spec import Case, UsageError
from bpcheck.stacks import SPATIAL, build_case, kinds_of, layer_kinds, parse_kinds, stack_cases
from bpcheck.strategies import DTYPE_NAMES
from bpcheck.sweep import SweepConfig

ROOT = Path(__file__).resolve().parents[1]
GLUE = {"flatten", "dense"}


def _runs(case: Case) -> None:
    """The case is valid and the engine gives finite gradients of every param's shape and the case's dtype."""
    again = Case.from_dict(case.to_dict())
    assert case_digest(again) == case_digest(case)
    g = engine.gradients(case)
    for key, shape in case.arch.param_shapes().items():
        assert g.grads[key].shape == shape and g.grads[key].dtype == case.x.dtype, key
        assert np.isfinite(g.grads[key]).all(), key
    assert np.isfinite(g.loss)


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("dtype", DTYPE_NAMES)
def test_every_numpy_drawn_stack_validates_and_runs_the_engine(regime, dtype):
    kinds_seen = set()
    for seed in range(25):
        case = build_case(np.random.default_rng(seed), regime=regime, dtype=dtype)
        assert (case.regime, case.x.dtype.name) == (regime, dtype)
        assert case.arch.layers[-1][0] == "dense"
        _runs(case)
        kinds_seen |= set(kinds_of(case.arch))
    assert kinds_seen >= {"dense", "flatten"}
    assert kinds_seen & set(SPATIAL)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(stack_cases())
def test_every_hypothesis_drawn_stack_validates_and_runs_the_engine(case):
    _runs(case)


def test_the_sweep_mixes_stacks_in_and_covers_every_regime_and_dtype(monkeypatch):
    monkeypatch.setattr(draw, "LAYERED_EVERY", 4)
    n = 40
    cases = [draw.draw_case(3, i) for i in range(n)]
    layered = [c for i, c in enumerate(cases) if draw.is_layered(i, None)]
    assert len(layered) == 10
    assert sum(not c.arch.is_mlp for c in layered) >= len(layered) // 2  # a 1-D body of dense layers is an MLP too
    assert all(c.arch.is_mlp and len(c.arch.in_shape) == 1 for i, c in enumerate(cases) if not draw.is_layered(i, None))
    named = [draw_case(3, i, layers=layer_kinds()) for i in range(10)]
    assert {(c.regime, c.x.dtype.name) for c in named} == {(r, d) for r in REGIMES for d in DTYPE_NAMES}
    assert case_digest(draw.draw_case(3, 3)) == case_digest(draw.draw_case(3, 3))  # a pure function of (seed, index)


def test_near_kink_and_saturating_move_the_dense_layers():
    at_zero = saturated = False
    for seed in range(40):
        for regime in ("near_kink", "saturating"):
            case = build_case(np.random.default_rng(seed), regime=regime, dtype="float64")
            _, caches = engine.forward(case.arch, case.params, case.x)
            for (kind, config), cache in zip(case.arch.layers, caches):
                if kind != "dense":
                    continue
                if regime == "near_kink":
                    at_zero |= bool((cache.z == 0).any())
                elif config["activation"] in ("sigmoid", "tanh"):
                    saturated |= SATURATION[0] - 1e-6 <= float(np.abs(cache.z).max()) <= SATURATION[1] + 1e-6
    assert at_zero and saturated


@pytest.mark.parametrize("kinds", [("maxpool2d",), ("conv2d", "avgpool2d"), ("activation",)])
def test_layers_option_draws_stacks_from_the_named_kinds_only(kinds):
    config = SweepConfig(layers=kinds).validate()
    bodies = set()
    for i in range(20):
        case = config.draw(i)
        body = set(kinds_of(case.arch)) - GLUE
        assert body <= set(kinds), case.arch.label()
        bodies |= body
    assert bodies == set(kinds)


def test_a_bad_kind_is_one_line_naming_it_and_the_choices(tmp_path):
    with pytest.raises(UsageError, match="conv3d.*conv2d"):
        parse_kinds("conv2d,conv3d")
    out = tmp_path / "r"
    p = subprocess.run([sys.executable, "-m", "bpcheck", "report", "--layers", "conv3d", "--cases", "2", "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "conv3d" in lines[0] and "maxpool2d" in lines[0] and "Traceback" not in p.stderr
    assert not out.exists()


_AVGPOOL_BACKWARD = LAYERS["avgpool2d"].backward


def _buggy_avgpool_backward(config, params, cache, dy):
    """avgpool2d's backward as people get it wrong: the window's gradient not divided by the window's size."""
    dx, grads = _AVGPOOL_BACKWARD(config, params, cache, dy)
    kh, kw = pair(config["kernel"])
    return dx * (kh * kw), grads


def test_shrinking_a_planted_layer_bug_reaches_a_minimal_stack(monkeypatch):
    planted = dataclasses.replace(LAYERS["avgpool2d"], backward=_buggy_avgpool_backward)

    def differs(case: Case) -> bool:
        right = engine.gradients(case)
        with monkeypatch.context() as m:  # the bug lives in this test's copy, put in the registry only here
            m.setitem(LAYERS, "avgpool2d", planted)
            engine.plan.cache_clear()
            wrong = engine.gradients(case)
        engine.plan.cache_clear()
        pairs = [(right.dx, wrong.dx)] + [(right.grads[k], wrong.grads[k]) for k in right.grads]
        return any(not np.allclose(a, b, rtol=1e-6, atol=0) for a, b in pairs)

    kinds = tuple(k for k in ("conv2d", "avgpool2d", "batchnorm", "activation") if k in LAYERS)
    strategy = stack_cases(kinds=kinds, regimes=("ordinary",),
                           dtypes=("float64",))
    # without the local constants Hypothesis collects from whatever modules this process imported (other tests)
    with draw.without_constant_injection():
        found = find(strategy, differs, settings=settings(max_examples=150, derandomize=True, database=None, deadline=None,
                                                              suppress_health_check=list(HealthCheck),
                                                              phases=(Phase.generate, Phase.shrink)))
    engine.plan.cache_clear()
    layers = [kind for kind, _ in found.arch.layers]
    assert layers == ["avgpool2d", "flatten", "dense"], found.arch.label()
    c, h, w = found.arch.in_shape
    (kh, kw) = pair(found.arch.layers[0][1]["kernel"])
    # one channel, one sample, a window that shows the bug (more than one pixel) on a small image
    assert (c, found.x.shape[0]) == (1, 1) and kh * kw > 1 and h * w <= 8, found.arch.label()


def _result(case: Case, label: str) -> CheckResult:
    return CheckResult(case_digest(case)[:12], case.arch.label(), case.x.dtype.name, case.regime, case.batch,
                       case.to_dict(), (), label, label == "AGREE", "engine", ("ENGINE", "REFERENCE"),
                       error="planted" if label == "ERROR" else None)


def test_the_report_breaks_down_by_layer_kind(tmp_path):
    from bpcheck.report import REPORT, OutputFolder, write_report
    from bpcheck.report.analysis import by_layer_kind

    cases = [build_case(np.random.default_rng(s), kinds=("maxpool2d",)) for s in range(3)]
    cases.append(draw_case(0, 0))  # an MLP: counted under dense
    labels = ["AGREE", "ERROR", "AGREE", "AGREE"]
    run = RunResult({"seed": 0, "references": {}, "partial": False, "timings": {}, "fail_on": ["ENGINE"]},
                    tuple(_result(c, label) for c, label in zip(cases, labels)))
    table = by_layer_kind(run)
    assert table["dense"]["AGREE"] == 3 and table["dense"]["ERROR"] == 1
    assert table["maxpool2d"] == {"AGREE": 2, "ERROR": 1}  # every stack drawn from maxpool2d alone contains it
    with OutputFolder(str(tmp_path), REPORT, flag="--out") as folder:
        write_report(run, folder, ("md", "json", "html"))
    md = (tmp_path / "report.md").read_text()
    assert "## By layer kind" in md and "| kind | cases | ERROR | AGREE |" in md
    assert "| dense | 4 | 1 | 3 |" in md and "| maxpool2d | 3 | 1 | 2 |" in md
    assert "<h2>By layer kind</h2>" in (tmp_path / "report.html").read_text()
    import json

    meta = json.loads((tmp_path / "report.json").read_text())["meta"]
    assert meta["layer_kinds"]["dense"] == {"cases": 4, "labels": {"AGREE": 3, "ERROR": 1}}


def test_hypothesis_has_a_tested_upper_bound():
    """The MLP cases of a sweep are drawn through Hypothesis internals (bpcheck.draw): pinned below the next minor."""
    import hypothesis
    import tomllib
    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    req = next(Requirement(d) for d in deps if Requirement(d).name == "hypothesis")
    assert any(spec.operator == "<" for spec in req.specifier), str(req)
    assert hypothesis.__version__ in req.specifier
