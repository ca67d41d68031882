"""Shrinking, shown: a planted bug (sigma' dropped in hidden layer 1) makes a property fail, Hypothesis
shrinks the failing case to a minimal network, the case is written as JSON, and bpcheck.replay
reproduces the verdict bit for bit."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, find, settings

import bpcheck
from bpcheck import check, engine
from bpcheck import strategies as bst
from bpcheck.spec import Case, Gradients

from .planted import derivative_dropped
from .search import first

# A fixed search: derandomized, no database, so every run shrinks to the same case.
SEARCH = settings(database=None, derandomize=True, max_examples=300, deadline=None,
                  suppress_health_check=list(HealthCheck))
SIGMOID_NETS = bst.cases(archs=bst.architectures(max_depth=3, max_width=3, activations=("sigmoid",)))


def sigma_prime_dropped(case: Case) -> Gradients:
    """The engine with sigmoid' dropped in layer 1 when layer 1 is hidden (depth >= 2), else the engine:
    dz_1 = dL/da_1 instead of dL/da_1 * a_1 (1 - a_1)."""
    if case.arch.n_layers < 2:
        return engine.gradients(case)
    return derivative_dropped(1)(case)


def caught(case: Case) -> bool:
    """The property fails: check_case blames the producer."""
    return check.check_case(case, producer=sigma_prime_dropped).label == "ENGINE"


def test_the_correct_engine_passes_where_the_planted_bug_fails():
    # What the search below finds is the planted bug, not something the strategy or the checker gets wrong.
    case = first(SIGMOID_NETS, lambda c: c.arch.n_layers >= 2 and c.batch >= 2 and caught(c))
    assert check.check_case(case).label not in ("ENGINE", "REFERENCE")


def test_a_planted_bug_shrinks_to_two_layers_of_width_at_most_two(tmp_path):
    minimal = find(SIGMOID_NETS, caught, settings=SEARCH)
    # A bug in a hidden layer needs a hidden layer: exactly two layers is the minimum.
    assert minimal.arch.n_layers == 2, minimal.arch
    assert max(minimal.arch.sizes) <= 2, minimal.arch
    assert minimal.batch == 1

    result = check.check_case(minimal, producer=sigma_prime_dropped)
    assert not result.ok and result.label == "ENGINE"
    message = result.message()
    assert "layer 1" in message and "sigmoid" in message, message  # located and diagnosed

    path = tmp_path / "minimal.json"
    path.write_text(json.dumps(minimal.to_dict()))
    check.clear_cache()  # the replay recomputes every reference from the file, not from this run's cache
    replayed = bpcheck.replay(path, producer=sigma_prime_dropped)
    assert replayed.without_timings() == result.without_timings()  # same label, same numbers, same case_id
    assert replayed.message() == message


def test_replay_of_a_saved_result_uses_its_settings(tmp_path):
    case = first(SIGMOID_NETS, lambda c: c.arch.n_layers >= 2 and c.dtype is np.float32)
    result = check.check_case(case, "fd", producer=sigma_prime_dropped, fast=True)
    path = tmp_path / "result.json"
    path.write_text(json.dumps(result.to_dict()))
    check.clear_cache()
    replayed = bpcheck.replay(path, producer=sigma_prime_dropped)
    assert [v.reference for v in replayed.verdicts] == ["fd"] and replayed.fast
    assert replayed.without_timings() == result.without_timings()
