"""The pytest plugin, run as a user would run it, through pytester.

In-process runs (runpytest) are used where the plugin's output is read; runs that must start
from a clean interpreter (which modules got imported, the Hypothesis profile, which is global
state) use runpytest_subprocess.
"""

from __future__ import annotations

import importlib
import re
import sys

import pytest

from bpcheck.references import NAMES, producer, status

USER_GRADS = '''
import numpy as np
from bpcheck import Arch

ARCH = Arch((3, 4, 2), ("tanh", "sigmoid"), "mse")


def my_grads(params, x, y, drop_tanh_prime=False):
    """A hand-written backprop for ARCH, row-vector batches; drop_tanh_prime plants a bug in layer 1."""
    W1, b1, W2, b2 = (params[k] for k in ("W1", "b1", "W2", "b2"))
    a1 = np.tanh(x @ W1 + b1)
    a2 = 1 / (1 + np.exp(-(a1 @ W2 + b2)))
    dz2 = 2 * (a2 - y) / a2.size * a2 * (1 - a2)
    da1 = dz2 @ W2.T
    dz1 = da1 if drop_tanh_prime else da1 * (1 - a1**2)
    return {"W1": x.T @ dz1, "b1": dz1.sum(0), "W2": a1.T @ dz2, "b2": dz2.sum(0)}
'''

PLAIN = '''
import sys
import pytest

def test_passes():
    assert 1 + 1 == 2

def test_fails():
    assert [1, 2] == [1, 3]

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass

def test_no_framework_was_imported():
    assert "torch" not in sys.modules and "jax" not in sys.modules
'''


@pytest.fixture(autouse=True)
def _modules_outlive_in_process_runs():
    """pytester's in-process runs drop every module first imported during the run. torch cannot be
    imported twice in one process (re-initialising its C extension segfaults), and a second copy of
    bpcheck's modules would split their caches, so everything an inner run may import is imported here."""
    importlib.import_module("bpcheck.check")
    for name in NAMES:
        if status(name).available:
            producer(name)  # imports bpcheck's module for the reference
            if name != "fd":
                importlib.import_module(name)  # and its framework


def header_line(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if line.startswith("bpcheck: ")]
    assert len(lines) == 1, result.outlines[:12]
    return lines[0]


def test_header_names_the_seed_and_every_reference(pytester):
    pytester.makepyfile("def test_ok():\n    pass\n")
    line = header_line(pytester.runpytest("--bpcheck-seed", "7"))
    assert line.startswith("bpcheck: seed 7; ")
    for name in NAMES:
        s = status(name)
        if s.available:
            assert re.search(rf"\b{name}\b[^;]*{re.escape(s.version)}", line), (name, line)
        else:
            assert f"{name} skipped ({s.reason})" in line


def test_header_follows_bpcheck_refs(pytester):
    pytester.makepyfile("def test_ok():\n    pass\n")
    line = header_line(pytester.runpytest("--bpcheck-refs", "fd"))
    assert line.startswith("bpcheck: seed 0; fd (numpy ") and "torch" not in line and "jax" not in line


def test_header_says_why_a_reference_is_skipped(pytester, monkeypatch):
    # A None entry in sys.modules makes importlib.util.find_spec report jax as absent, as on a machine
    # without it; only the registry's probe sees this (jax itself is never called here).
    monkeypatch.setitem(sys.modules, "jax", None)
    pytester.makepyfile("def test_ok():\n    pass\n")
    line = header_line(pytester.runpytest())
    assert "jax skipped (jax is not installed: pip install jax" in line


def test_a_bad_reference_name_is_a_usage_error(pytester):
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest("--bpcheck-refs", "fd,tprch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--bpcheck-refs: reference 'tprch' (did you mean 'torch'?) is unknown*"])


def test_failing_gradcheck_names_the_layer_and_the_parameter(pytester):
    pytester.makepyfile(USER_GRADS + '''

def test_buggy(gradcheck):
    gradcheck(lambda p, x, y: my_grads(p, x, y, drop_tanh_prime=True), ARCH)
''')
    result = pytester.runpytest("--bpcheck-refs", "fd")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "AssertionError" in text and "FAIL ENGINE" in text
    assert re.search(r"\bd[Wb]1\b", text), text  # the parameter
    assert "layer 1" in text  # the layer
    assert "the derivative of tanh is missing in layer 1" in text  # the diagnosis


def test_passing_gradcheck_returns_the_result(pytester):
    pytester.makepyfile(USER_GRADS + '''
from bpcheck.spec import Case


rng = np.random.default_rng(0)
CASE = Case(ARCH, {k: rng.standard_normal(s) for k, s in ARCH.param_shapes().items()},
            rng.standard_normal((2, 3)), rng.random((2, 2)))


def test_mine(gradcheck):
    result = gradcheck(my_grads, ARCH, cases=3)  # bpcheck.check_gradients' options pass through
    assert result.ok and len(result.outcomes) == 3


def test_mine_on_my_case(gradcheck):
    result = gradcheck(my_grads, CASE)
    assert [o.result.batch for o in result.outcomes] == [2] and result.labels == {"AGREE": 1}


def test_the_engine_on_a_case(gradcheck):
    assert gradcheck(CASE).label == "AGREE"
''')
    pytester.runpytest("--bpcheck-refs", "fd,torch").assert_outcomes(passed=3)


def test_gradcheck_inside_given_reports_the_falsifying_case(pytester):
    pytester.makepyfile(USER_GRADS + '''
from hypothesis import Phase, given, settings
from bpcheck import strategies as bst


# Shrinking is shown in test_shrinking.py; here it would only add seconds.
@settings(max_examples=20, deadline=None, database=None, derandomize=True, phases=[Phase.generate])
@given(case=bst.cases(archs=ARCH, regimes=("ordinary",), dtypes=("float64",), max_batch=3))
def test_everywhere(gradcheck, case):
    gradcheck(lambda p, x, y: my_grads(p, x, y, drop_tanh_prime=True), case)
''')
    result = pytester.runpytest("--bpcheck-refs", "fd")
    result.assert_outcomes(failed=1)  # no health-check error for the fixture: it is session-scoped
    text = result.stdout.str()
    # Hypothesis headed the shown case "Falsifying example" and, since some 6.1xx release, "Failing test case"
    assert ("Falsifying example" in text or "Failing test case" in text), text
    assert "layer 1" in text and "tanh" in text, text


def test_the_seed_changes_the_case(pytester):
    pytester.makepyfile(USER_GRADS + '''

def test_show(gradcheck):
    print("CASE", gradcheck(my_grads, ARCH, cases=1).outcomes[0].result.case_id)
''')
    ids = [re.search(r"CASE (\w+)", pytester.runpytest("-s", "--bpcheck-refs", "fd", "--bpcheck-seed", seed)
                     .stdout.str()).group(1) for seed in ("0", "0", "1")]
    assert ids[0] == ids[1] != ids[2]


def test_a_broken_grad_fn_fails_with_the_fix(pytester):
    pytester.makepyfile(USER_GRADS + '''

def test_wrong_shape(gradcheck):
    gradcheck(lambda p, x, y: {**my_grads(p, x, y), "W2": my_grads(p, x, y)["W2"].T}, ARCH)
''')
    result = pytester.runpytest("--bpcheck-refs", "fd")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*check failed, keys, shapes and dtypes*'W2' of shape (2, 4), but W2 is (4, 2)*"])


def test_gradcheck_skips_when_no_reference_can_run(pytester, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as on a machine without torch; see above
    pytester.makepyfile(USER_GRADS + '''

def test_mine(gradcheck):
    gradcheck(my_grads, ARCH, cases=2)
''')
    result = pytester.runpytest("--bpcheck-refs", "torch", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no reference can run here: torch (torch is not installed*"])


def test_bpcheck_profile_loads_a_registered_profile(pytester):
    pytester.makeconftest('''
from hypothesis import settings
settings.register_profile("three", max_examples=3, database=None)
''')
    pytester.makepyfile('''
from hypothesis import given, strategies as st
CALLS = []

@given(st.integers())
def test_count(n):
    CALLS.append(n)

def test_after():
    assert len(CALLS) == 3
''')
    pytester.runpytest_subprocess("--bpcheck-profile", "three", "-p", "no:randomly").assert_outcomes(passed=2)
    result = pytester.runpytest_subprocess("--bpcheck-profile", "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--bpcheck-profile='nope' is not a registered Hypothesis profile*"])


def _comparable(result: pytest.RunResult) -> list[str]:
    """The output without what differs by design (the header, the plugin list) or by the clock."""
    drop = ("bpcheck: ", "plugins: ", "rootdir: ", "cachedir: ")
    return [re.sub(r" in [\d.]+s", "", line) for line in result.outlines if not line.startswith(drop)]


def test_a_run_that_does_not_use_the_plugin_is_unchanged(pytester):
    pytester.makepyfile(PLAIN)
    with_plugin = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    without = pytester.runpytest_subprocess("-p", "no:bpcheck", "-p", "no:cacheprovider")
    with_plugin.assert_outcomes(passed=2, failed=1, skipped=1)  # torch and jax were not imported
    without.assert_outcomes(passed=2, failed=1, skipped=1)
    assert with_plugin.ret == without.ret
    assert _comparable(with_plugin) == _comparable(without)
    assert len(with_plugin.outlines) == len(without.outlines) + 1  # the header line, and nothing else
