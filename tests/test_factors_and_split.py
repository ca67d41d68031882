"""The diagnosis labels n_out, 1/n_out and 1/2, each planted exactly, and the blame case where FD disagrees with the
gradient under test while torch and jax split.

The case has batch 5 and 3 outputs, so 1/batch = 0.2, batch = 5 and 2 differ from every factor planted here: a
label that names another factor, or two, fails.
"""

from __future__ import annotations

import pytest

from bpcheck.check import check_case
from bpcheck.compare import blame, diagnose

from . import planted
from .test_compare import _pairs, judged, square_case
from .test_no_false_pass import every

FACTORS = [(3.0, "3", "n_out"), (1 / 3, "0.333333", "1/n_out"), (0.5, "0.5", "1/2")]


@pytest.mark.parametrize("k, shown, name", FACTORS, ids=[f[2] for f in FACTORS])
def test_a_planted_factor_is_named(k, shown, name):
    case = square_case(batch=5)
    assert case.arch.sizes[-1] == 3 and case.batch == 5
    ctx, mine, ref, c = judged(case, planted.loss_scaled(k))
    text = diagnose(ctx, mine, ref, "torch", c.tol, c.tensors, c.first_bad)
    assert text == f"every gradient = {shown} x torch everywhere ({name})"


@pytest.mark.parametrize("k, shown, name", FACTORS, ids=[f[2] for f in FACTORS])
def test_a_planted_factor_is_named_against_the_real_references(k, shown, name):
    result = check_case(square_case(batch=5), producer=planted.loss_scaled(k))
    assert result.labels == every("ENGINE")
    for v in (v for v in result.verdicts if v.label == "ENGINE"):
        assert f"= {shown} x {v.reference} everywhere ({name})" in v.diagnosis, v.diagnosis


@pytest.mark.parametrize("engine_agrees, pairs, expected", [
    # the engine agrees with torch only; fd sides with neither torch nor jax, which split
    ({"fd": False, "torch": True, "jax": False}, _pairs(fd_torch=False, fd_jax=False, torch_jax=False),
     {"fd": "REFERENCE", "torch": "AGREE", "jax": "REFERENCE"}),
    # fd sides with jax against the engine, torch sides with the engine: still the references' quarrel
    ({"fd": False, "torch": True, "jax": False}, _pairs(fd_torch=False, fd_jax=True, torch_jax=False),
     {"fd": "REFERENCE", "torch": "AGREE", "jax": "REFERENCE"}),
    # the engine agrees with none; fd agrees with torch, jax disagrees with both
    ({"fd": False, "torch": False, "jax": False}, _pairs(fd_torch=True, fd_jax=False, torch_jax=False),
     {"fd": "REFERENCE", "torch": "REFERENCE", "jax": "REFERENCE"}),
])
def test_fd_disagrees_and_torch_and_jax_split_is_reference_never_engine(engine_agrees, pairs, expected):
    labels = blame(engine_agrees, pairs)
    assert {k: v[0] for k, v in labels.items()} == expected
    assert "disagrees with" in labels["fd"][1] and "disagrees with" in labels["jax"][1]
