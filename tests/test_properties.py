"""The property suite: the engine against every available reference on Hypothesis cases, through
check_case, with zero false positives (no ENGINE, REFERENCE or ERROR label on a correct engine).

Examples per property come from the Hypothesis profile (tests/conftest.py): dev 30, ci 300,
thorough 5000. The nets stay small (depth <= 3, width <= 4, batch <= 8), so a case costs about
ten milliseconds. A failure prints check_case's localised message and the case as JSON, ready for
bpcheck.replay.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from bpcheck import strategies as bst
from bpcheck.check import check_case
from bpcheck.references import NAMES, status
from bpcheck.results import CheckResult

FALSE_POSITIVES = ("ENGINE", "REFERENCE", "ERROR")


def available(name: str):
    s = status(name)
    return pytest.param(name, id=name, marks=pytest.mark.skipif(not s.available, reason=s.reason or ""))


def assert_no_false_positive(result: CheckResult) -> None:
    note(json.dumps(result.case))  # shown with the falsifying example: save it and bpcheck.replay it
    bad = {ref: label for ref, label in result.labels.items() if label in FALSE_POSITIVES}
    assert result.label not in FALSE_POSITIVES and not bad, result.message()


@pytest.mark.parametrize("regime", bst.REGIMES)
@given(data=st.data())
def test_engine_agrees_with_every_reference(regime, data):
    # One property per regime, so that each regime gets the profile's full count of examples; every
    # reference at once, so that blame can tell ENGINE from REFERENCE.
    case = data.draw(bst.cases(regimes=(regime,)), label="case")
    assert_no_false_positive(check_case(case))


@pytest.mark.parametrize("reference", [available(name) for name in NAMES])
@given(case=bst.cases())
def test_engine_agrees_with_each_reference_alone(reference, case):
    # With a single oracle there is nobody to blame but the engine: kinks and rounding must still
    # be recognised as such.
    result = check_case(case, reference)
    assert result.verdict(reference).label != "SKIPPED"
    assert_no_false_positive(result)


@given(case=bst.cases())
def test_fast_mode_agrees_too(case):
    # fast=True replaces per-coordinate FD by directional FD, escalating when it disagrees.
    assert_no_false_positive(check_case(case, fast=True))
