"""The mutant catalog: every bug is caught by check_case with the right label, and every bug that
lives in one layer is located there, by layer and tensor. Plus the catalog's shape and the CLI.

Cases come from bpcheck.mutants.sweep.draw_cases (seed 0, under each mutant's conditions), so these
are the cases `python -m bpcheck mutants` starts with. References: whichever of fd, torch and jax
are installed (check_case skips the rest).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bpcheck import check, engine
from bpcheck.check import check_case
from bpcheck.cli import main
from bpcheck.mutants import MUTANTS, get, select, sweep
from bpcheck.mutants.catalog import ENGINE_MUTANTS
from bpcheck.mutants.user import reset
from bpcheck.spec import UsageError

K = 4  # cases tried per mutant; every mutant is caught within the first 2 at seed 0 (see the sweep)
ENGINE_STYLE = list(ENGINE_MUTANTS)  # the layer mutants (layered.LAYER_MUTANTS) have tests/test_layer_mutants.py


@pytest.fixture(autouse=True)
def _fresh_cache():
    check.clear_cache()
    yield
    check.clear_cache()


def test_catalog_has_the_required_bugs_each_documented():
    assert len(MUTANTS) >= 25
    required = {"mse_missing_2", "missing_1_over_batch", "bias_averaged", "sigmoid_prime_of_a",
                "tanh_prime_one_minus_tanh", "leaky_slope_dropped", "softplus_from_output", "missing_prime_hidden",
                "missing_prime_output", "w_not_transposed", "dw_from_preactivation", "loop_skips_middle",
                "bias_sign_flipped", "ce_forgets_y", "bias_wrong_axis", "batch_one_only", "stale_cache",
                "params_updated_in_place", "float16_inside", "weight_decay_in_grad", "sigmoid_prime_clipped"}
    assert required <= {m.name for m in MUTANTS}
    for m in MUTANTS:
        assert m.description and m.where and m.conditions.describe()


@pytest.mark.parametrize("mutant", ENGINE_STYLE, ids=[m.name for m in ENGINE_STYLE])
def test_engine_mutant_is_caught_and_located(mutant):
    cases = sweep.draw_cases(mutant.name, mutant.conditions, K, seed=0)
    results = [(c, check_case(c, producer=mutant.produce)) for c in cases]
    caught = [(c, r) for c, r in results if r.label == "ENGINE"]
    assert caught, f"{mutant.name} not caught on {K} cases: {[r.label for _, r in results]}"
    for case, r in caught:
        assert not r.ok
        layer, tensors = mutant.expected(case.arch)
        if layer is None:
            continue
        _, first_bad, lead, named = sweep._localisation(r)
        assert first_bad == layer, f"{mutant.name} on {case.arch.label()}: layer {first_bad}, expected {layer}"
        assert lead in tensors, f"{mutant.name} on {case.arch.label()}: led by {lead}, expected one of {tensors}"
        assert mutant.named in named, f"{mutant.name} on {case.arch.label()}: diagnosed {named!r}"


def test_the_unmutated_engine_agrees_on_the_mutants_cases():
    for mutant in select("w_not_transposed,loop_skips_middle,sigmoid_prime_clipped,huber_not_clipped"):
        for case in sweep.draw_cases(mutant.name, mutant.conditions, 2, seed=0):
            assert check_case(case, producer=engine.gradients).ok


def _two_cases(mutant):
    first, second = sweep.draw_cases(mutant.name, mutant.conditions, 2, seed=0)
    assert first.arch == second.arch and first.batch == second.batch
    return first, second


def test_stale_cache_is_right_once_then_engine():
    m = get("stale_cache")
    reset(m.produce)
    first, second = _two_cases(m)
    assert check_case(first, producer=m.produce).ok          # the first call fills the cache: right
    r = check_case(second, producer=m.produce)               # the second reuses it: wrong
    assert r.label == "ENGINE"
    reset(m.produce)
    assert check_case(second, producer=m.produce).ok


@pytest.mark.parametrize("name, words", [
    ("grads_accumulate", "grads_accumulate gave another dW1 for the same case after a call on another case"),
    ("params_updated_in_place", "params_updated_in_place modified params['W1'] in place"),
    ("x_normalised_in_place", "x_normalised_in_place modified x in place"),
])
def test_user_function_fault_is_named(name, words):
    m = get(name)
    reset(m.produce)
    case = sweep.draw_cases(m.name, m.conditions, 1, seed=0)[0]
    r = check_case(case, producer=m.produce)
    assert r.label == "ERROR" and not r.ok
    assert r.error.startswith("UserFunctionError") and words in r.error
    assert sweep.caught_by_bpcheck(r, "user")


def test_select_rejects_an_unknown_name_with_a_suggestion():
    with pytest.raises(UsageError, match="did you mean 'bias_averaged'"):
        select("bias_averagd")
    assert [m.name for m in select("ce_forgets_y,mse_missing_2")] == ["mse_missing_2", "ce_forgets_y"]


def test_draw_cases_honours_conditions_and_is_deterministic():
    m = get("loop_skips_middle")
    a = sweep.draw_cases(m.name, m.conditions, 3, seed=1)
    b = sweep.draw_cases(m.name, m.conditions, 3, seed=1)
    assert all(c.arch.n_layers >= 3 for c in a)
    assert all(np.array_equal(x.x, y.x) and x.arch == y.arch for x, y in zip(a, b, strict=True))
    sq = sweep.draw_cases("w_not_transposed", get("w_not_transposed").conditions, 3, seed=0)
    assert all(set(c.arch.sizes) == {3} for c in sq)


def test_cli_writes_the_reports(tmp_path, capsys):
    code = main(["mutants", "--only", "bias_sign_flipped,ce_forgets_y", "--cases", "2", "--fp-cases", "3",
                 "--fp-stacks", "3", "--no-baselines", "--shrink", "greedy", "--refs", "fd", "--out", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "mutants.json").read_text())
    assert data["meta"]["references"] == ["fd"]  # --refs, as report, check and replay spell it
    assert data["totals"]["bpcheck_caught"] == 2 and data["engine"]["bpcheck_false_positives"] == 0
    assert data["mutants"][0]["localised"] is True and data["mutants"][0]["minimal"]["by"] == "greedy"
    md = (tmp_path / "mutants.md").read_text()
    assert "| `bias_sign_flipped` |" in md and "False alarms on the unmutated engine (3 cases" in md
    stacks = data["meta"]["stacks_engine"]
    assert stacks["n"] == 3 and stacks["bpcheck_false_positives"] == 0 and sum(g["cases"] for g in stacks["by_group"].values()) == 3
    assert "on layered stacks (3 cases of `report --layers all`" in md
    out = capsys.readouterr().out
    assert "bias_sign_flipped" in out and "(of 3 layered stacks)" in out


def test_the_stacks_false_alarm_run_judges_the_layered_sweeps_cases():
    # the same cases as `report --layers all` with that seed, so the two counts speak of the same stacks
    from bpcheck.draw import draw_case
    from bpcheck.mutants.false_alarms import stack_case
    from bpcheck.stacks import layer_kinds

    for i in (0, 7, 13):
        a, b = stack_case(5, i), draw_case(5, i, layers=layer_kinds())
        assert a.arch == b.arch and np.array_equal(a.x, b.x) and a.regime == b.regime and a.x.dtype == b.x.dtype


def test_cli_unknown_mutant_is_a_usage_error(tmp_path, capsys):
    assert main(["mutants", "--only", "nope", "--out", str(tmp_path)]) == 2
    assert "mutant 'nope'" in capsys.readouterr().err
    assert main(["mutants", "--refs", "tf", "--out", str(tmp_path)]) == 2
    assert "reference 'tf' (did you mean 'fd'?)" in capsys.readouterr().err
