"""The comparison layer on its own: metrics, the tolerance table, blame rules, diagnosis, result JSON.

No torch or jax here: the reference side is the engine itself (correct by tests/test_engine.py)
or the FD reference, and the producer side is a planted bug from tests/planted.py.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bpcheck import engine
from bpcheck.compare import (
    TOLERANCES,
    CaseContext,
    blame,
    compare,
    compare_tensor,
    diagnose,
    factor_name,
    tolerance_for,
)
from bpcheck.compare.convention import exact_zeros, find_convention, slope_choices
from bpcheck.references import fd as fd_ref
from bpcheck.results import (
    FORMAT_VERSION,
    CheckResult,
    Entry,
    RunResult,
    TensorMetrics,
    Tolerance,
    Verdict,
    worst_label,
)
from bpcheck.spec import Arch, Case, SpecError

from . import planted
from .nets import random_case

TOL64 = Tolerance("analytic", "float64", 1e-12, 0.0)


def square_case(seed: int = 0, batch: int = 4, acts=("tanh", "sigmoid", "identity"), loss="mse") -> Case:
    return random_case(np.random.default_rng(seed), arch=Arch((4, 5, 5, 3), acts, loss), batch=batch)


def judged(case: Case, producer, reference=engine.gradients, name="torch"):
    """Compare producer against a float64 reference computed by `reference` (called name)."""
    ref = reference(case.astype(np.float64) if case.dtype is not np.float64 else case)
    ctx = CaseContext.build(case, ref)
    mine = producer(case)
    return ctx, mine, ref, compare(ctx, mine, ref, name)


# -- metrics ---------------------------------------------------------------------------------


def test_metrics_of_a_known_pair():
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 2.0, 3.3])
    m = compare_tensor("b1", a, b, TOL64)
    assert m.max_abs == pytest.approx(0.3)
    assert m.max_rel == pytest.approx(0.3 / 3.3)
    assert m.norm_rel == pytest.approx(0.3 / np.linalg.norm(b))
    assert m.cosine == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert not m.ok and m.worst.index == (2,) and m.worst.engine == 3.0 and m.worst.reference == 3.3


def test_cosine_stays_one_under_a_scale_bug_but_the_verdict_fails():
    b = np.random.default_rng(1).standard_normal((3, 4))
    m = compare_tensor("W1", 2.0 * b, b, TOL64)
    assert m.cosine == pytest.approx(1.0)
    assert not m.ok and m.norm_rel == pytest.approx(0.5)


def test_kink_coordinates_are_left_out_and_counted():
    a, b = np.array([1.0, 5.0, 2.0]), np.array([1.0, -7.0, 2.0])
    m = compare_tensor("b1", a, b, TOL64, kink=np.array([False, True, False]))
    assert m.ok and m.kinks == 1 and m.max_abs == 0.0


def test_fd_error_estimate_explains_differences_up_to_its_multiple():
    tol = Tolerance("fd", "float64", 1e-12, 0.0, fd_mult=10.0)
    b = np.array([1.0, 2.0])
    err = np.array([1e-9, 1e-9])
    assert compare_tensor("b1", b + 5e-9, b, tol, err=err).ok
    assert not compare_tensor("b1", b + 5e-7, b, tol, err=err).ok


def test_missing_or_reshaped_tensor_is_a_mismatch_with_a_note():
    m = compare_tensor("W1", np.zeros((3, 2)), np.zeros((2, 3)), TOL64)
    assert not m.ok and "(3, 2)" in m.note and math.isinf(m.norm_rel)


def test_nan_in_the_producer_is_infinitely_wrong():
    m = compare_tensor("b1", np.array([np.nan, 1.0]), np.array([1.0, 1.0]), TOL64)
    assert not m.ok and math.isinf(m.max_abs)


# -- the tolerance table -------------------------------------------------------------------


def test_one_table_keyed_by_reference_kind_and_dtype():
    assert set(TOLERANCES) == {(k, d) for k in ("analytic", "fd") for d in ("float64", "float32")}
    assert TOLERANCES[("analytic", "float64")].rtol == 1e-12
    case = square_case()
    assert tolerance_for("torch", case).kind == "analytic" and tolerance_for("fd", case).kind == "fd"
    t64, t32 = tolerance_for("torch", case), tolerance_for("torch", case.astype(np.float32))
    # The float32 rounding allowance is eps32/eps64 = 2^29 times the float64 one for the same net.
    assert t32.gamma / t64.gamma == pytest.approx(2.0**29)


def test_float32_bound_grows_with_width():
    narrow = random_case(np.random.default_rng(0), arch=Arch((3, 3, 1), ("tanh", "identity"), "mse"), batch=2)
    wide = random_case(np.random.default_rng(0), arch=Arch((3, 300, 1), ("tanh", "identity"), "mse"), batch=2)
    assert tolerance_for("torch", wide.astype(np.float32)).gamma > tolerance_for("torch", narrow.astype(np.float32)).gamma


def test_the_bound_of_a_wrong_producer_comes_from_the_reference():
    """A producer that returns zeros must not widen its own tolerance: the scales come from the trace."""
    case = square_case()
    ctx, mine, ref, c = judged(case, planted.zeroed("W1"))
    ctx_same = CaseContext.build(case, engine.gradients(case))
    assert ctx.scales == ctx_same.scales and not c.agree


def test_float32_engine_within_bound_and_1e3_bug_outside_it():
    """Against a float64 reference, a correct float32 engine uses a small part of its bound; 1e-3 is caught."""
    rng = np.random.default_rng(5)
    worst = 0.0
    for i in range(12):
        arch = Arch((6, 16, 16, 3), ("tanh", "sigmoid" if i % 2 else "gelu", "identity"), "mse")
        case = random_case(rng, arch=arch, batch=8, dtype=np.float32)
        _, _, _, good = judged(case, engine.gradients)
        assert good.agree, [(m.name, m.excess, m.tol) for m in good.tensors if not m.ok]
        worst = max(worst, max(m.excess / m.tol for m in good.tensors))
        _, _, _, bad = judged(case, planted.scaled("W1", 1.001))
        assert [m.name for m in bad.tensors if not m.ok] == ["W1"]
    assert worst < 0.5


# -- kinks and conventions ------------------------------------------------------------------


def zero_column_case(seed: int = 0) -> Case:
    """relu net whose unit 0 of layer 1 has z exactly 0 for every sample (W1[:, 0] = 0, b1[0] = 0)."""
    case = random_case(np.random.default_rng(seed), arch=Arch((3, 4, 2), ("relu", "identity"), "mse"), batch=5)
    params = {k: v.copy() for k, v in case.params.items()}
    params["W1"][:, 0] = 0.0
    params["b1"][0] = 0.0
    return case.with_params(params)


def test_exact_zeros_are_found_and_relu_one_at_zero_is_a_convention():
    case = zero_column_case()
    ctx, mine, ref, c = judged(case, planted.relu_one_at_zero)
    assert exact_zeros(ctx) == {"relu": 5}
    assert not c.agree  # the declared relu'(0) = 0 differs in dW1[:, 0] and db1[0]
    assert slope_choices("relu") == (0.0, 1.0, 0.5)
    sentence = find_convention(ctx, mine, c.tol)
    assert "relu'(0) = 1" in sentence and "relu'(0) = 0" in sentence


def test_a_slope_outside_the_subdifferential_is_no_convention():
    case = zero_column_case()
    relu = engine.RULES["relu"]

    def two_at_zero(c: Case):
        from dataclasses import replace
        rules = {**engine.RULES, "relu": replace(relu, backward=lambda z, a, g: g * np.where(z == 0, 2.0, z > 0))}
        _, caches = engine.forward(c.arch, c.params, c.x)
        return engine.backward(c.arch, c.params, caches, c.y, rules=rules)

    ctx, mine, ref, c = judged(case, two_at_zero)
    assert not c.agree and find_convention(ctx, mine, c.tol) == ""


def test_fd_kink_mask_covers_pre_activations_within_1e9_of_zero():
    case = zero_column_case()
    params = {k: v.copy() for k, v in case.params.items()}
    params["b1"][0] = 1e-10
    case = case.with_params(params)
    fd = fd_ref.gradients(case)
    ctx = CaseContext.build(case, engine.gradients(case))
    c = compare(ctx, engine.gradients(case), fd, "fd")
    assert c.agree and c.kinks > 0
    assert fd.kink["b1"][0] and fd.kink["W1"][:, 0].all()


def test_rounding_ambiguity_masks_a_z_within_ulps_of_zero():
    """z a few ulps from 0: another summation order may land on the other side; leave it out."""
    case = random_case(np.random.default_rng(2), arch=Arch((3, 4, 2), ("relu", "identity"), "mse"), batch=5)
    params = {k: v.copy() for k, v in case.params.items()}
    s = float(case.x[0] @ params["W1"][:, 0])
    params["b1"][0] = -np.nextafter(s, np.inf)  # z1[0, 0] is one ulp of s from 0, not 0
    near = case.with_params(params)
    ctx = CaseContext.build(near, None)
    assert 0 < abs(ctx.caches[0].z[0, 0]) < 1e-15
    assert ctx.kinks["dz1"][0, 0] and ctx.kinks["b1"][0] and ctx.kinks["W1"][:, 0].all() and ctx.kinks["x"][0].all()
    assert not ctx.kinks["W2"].any() and not ctx.kinks["x"][1:].any()
    assert not CaseContext.build(zero_column_case(), None).kinks  # structural zeros stay in: a convention applies


def test_a_subnormal_z_is_ambiguous():
    """XLA flushes subnormals to zero: to jax a z of 5e-324 is 0, and relu'(0) = 0."""
    case = zero_column_case()
    params = {k: v.copy() for k, v in case.params.items()}
    params["b1"][0] = 5e-324
    ctx = CaseContext.build(case.with_params(params), None)
    assert ctx.kinks["b1"][0] and not ctx.kinks["b1"][1:].any()


def test_a_z_that_cancels_to_exactly_zero_is_ambiguous():
    """x @ W1[:, 0] + b1[0] == 0 by cancellation: an FMA or another order gives an ulp either side."""
    case = random_case(np.random.default_rng(2), arch=Arch((1, 4, 2), ("relu", "identity"), "mse"), batch=3)
    params = {k: v.copy() for k, v in case.params.items()}
    params["b1"][0] = -float(case.x[0, 0] * params["W1"][0, 0])
    ctx = CaseContext.build(case.with_params(params), None)
    assert ctx.caches[0].z[0, 0] == 0
    assert ctx.kinks["dz1"][0, 0] and ctx.kinks["b1"][0] and exact_zeros(ctx) == {}


# -- blame -------------------------------------------------------------------------------------


def _pairs(**agree: bool) -> dict[frozenset[str], bool]:
    return {frozenset(k.split("_")): v for k, v in agree.items()}


@pytest.mark.parametrize("engine_agrees, pairs, expected", [
    # the engine differs from all three, which agree: ENGINE everywhere
    ({"fd": False, "torch": False, "jax": False}, _pairs(fd_torch=True, fd_jax=True, torch_jax=True),
     {"fd": "ENGINE", "torch": "ENGINE", "jax": "ENGINE"}),
    # jax alone differs from the engine and from the others: REFERENCE for jax
    ({"fd": True, "torch": True, "jax": False}, _pairs(fd_torch=True, fd_jax=False, torch_jax=False),
     {"fd": "AGREE", "torch": "AGREE", "jax": "REFERENCE"}),
    # only FD differs, both analytic references agree with the engine: FD_NOISE
    ({"fd": False, "torch": True, "jax": True}, _pairs(fd_torch=False, fd_jax=False, torch_jax=True),
     {"fd": "FD_NOISE", "torch": "AGREE", "jax": "AGREE"}),
    # FD alone: its disagreement is the engine's
    ({"fd": False}, {}, {"fd": "ENGINE"}),
    # torch and fd only, and they disagree with each other and the engine: REFERENCE
    ({"fd": False, "torch": False}, _pairs(fd_torch=False), {"fd": "REFERENCE", "torch": "REFERENCE"}),
    # torch alone differs while fd sides with the engine: REFERENCE for torch
    ({"fd": True, "torch": False}, _pairs(fd_torch=False), {"fd": "AGREE", "torch": "REFERENCE"}),
])
def test_blame_rules(engine_agrees, pairs, expected):
    assert {k: v[0] for k, v in blame(engine_agrees, pairs).items()} == expected


def test_blame_kink_and_convention():
    labels = blame({"fd": True, "torch": False}, _pairs(fd_torch=True), convention={"torch": True},
                   kinked={"fd": True})
    assert labels["fd"][0] == "KINK" and labels["torch"][0] == "CONVENTION"


# -- diagnosis ---------------------------------------------------------------------------------


def _diagnosis(case: Case, producer) -> tuple[str, tuple[int | None, str]]:
    ctx, mine, ref, c = judged(case, producer)
    assert not c.agree
    return diagnose(ctx, mine, ref, "torch", c.tol, c.tensors, c.first_bad), c.first_bad


def test_diagnosis_names_bug_shapes():
    case = square_case()
    text, where = _diagnosis(case, planted.bias_averaged)
    assert "1/batch" in text and "averaged" in text and where == (3, "params")
    text, where = _diagnosis(case, planted.bias_sign_flipped(2))
    assert text.startswith("db2 = -1 x torch") and "sign flip" in text and where == (2, "params")
    text, where = _diagnosis(case, planted.scaled("W2", 1.001))
    assert text == "dW2 = 1.001 x torch everywhere" and where == (2, "params")
    text, where = _diagnosis(case, planted.derivative_dropped(2))
    assert "derivative of sigmoid is missing in layer 2" in text and where == (2, "dz")
    text, where = _diagnosis(case, planted.transposed_backward(2))
    assert "W2 instead of W2^T" in text and where == (1, "dz")
    text, _ = _diagnosis(case, planted.weight_grad_transposed(3))
    assert "dW3 = torch's transposed" in text
    text, _ = _diagnosis(case, planted.zeroed("W1"))
    assert text == "dW1 is all zeros (torch's is not)"


def test_diagnosis_of_a_scale_on_everything():
    case = square_case(batch=4)
    text, where = _diagnosis(case, planted.loss_scaled(0.25))
    assert text == "every gradient = 0.25 x torch everywhere (1/batch)" and where == (3, "dz")
    text, _ = _diagnosis(case, planted.loss_scaled(2.0))
    assert text == "every gradient = 2 x torch everywhere"


def test_diagnosis_names_common_factors():
    assert factor_name(0.25, 4, 3, 1e-6) == "1/batch"
    assert factor_name(2.0, 2, 3, 1e-6) == "batch or 2 (this case cannot tell them apart)"
    assert factor_name(-1.0, 4, 3, 1e-6) == "a sign flip"
    assert factor_name(1.001, 4, 3, 1e-6) == ""


def test_a_factor_of_one_is_never_named():
    """Batch 1 and one output make 1 = 1/batch = batch = n_out = 1/n_out: that names nothing."""
    assert factor_name(1.0, 1, 1, 1e-6) == "" and factor_name(1.0 + 1e-7, 1, 1, 1e-6) == ""
    case = square_case(batch=1)
    text, _ = _diagnosis(case, planted.scaled("W2", 1.0 + 1e-9))
    assert "= 1 x" not in text and "1/batch" not in text and "no known bug shape" in text


def test_diagnosis_without_traces_reads_the_params():
    """A producer with no dz trace (a user's function) still gets its missing derivative named."""
    from dataclasses import replace
    case = square_case()
    text, where = _diagnosis(case, lambda c: replace(planted.derivative_dropped(2)(c), dz=None, da=None))
    assert "derivative of sigmoid is missing in layer 2" in text and where == (2, "params")


# -- results -------------------------------------------------------------------------------------


def _sample_result() -> CheckResult:
    t = TensorMetrics("W2", 0.1, math.inf, 0.5, 1.0, 0.5, 1e-12, False, 2,
                      Entry((1, 0), float("nan"), 0.3, 0.1, 0.5))
    v = Verdict("torch", "ENGINE", (t,), Tolerance("analytic", "float64", 1e-12, 1e-15), 2, "dz", 2,
                "dW2 = 2 x torch everywhere", "torch agrees with jax", 0.01, "2.13")
    s = Verdict("jax", "SKIPPED", reason="jax is not installed")
    case = square_case()
    return CheckResult("abc", case.arch.label(), "float64", "ordinary", case.batch, case.to_dict(), (v, s),
                       "ENGINE", False, seconds=0.2)


def test_results_round_trip_through_json_with_nan_and_inf():
    r = _sample_result()
    back = CheckResult.from_dict(json.loads(json.dumps(r.to_dict(), allow_nan=False)))
    assert back == r
    run = RunResult({"seed": 3, "partial": False}, (r, r))
    text = json.dumps(run.to_dict(), allow_nan=False)
    assert RunResult.from_dict(json.loads(text)) == run
    assert json.loads(text)["format_version"] == FORMAT_VERSION
    assert Case.from_dict(back.case).arch == Arch.from_dict(r.case["arch"])


def test_results_reject_another_format_version():
    d = RunResult({}, ()).to_dict()
    d["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(SpecError, match="format_version"):
        RunResult.from_dict(d)


def test_labels_order_and_message():
    assert worst_label(["AGREE", "KINK", "ENGINE", "SKIPPED"]) == "ENGINE"
    assert worst_label([]) == "SKIPPED"
    msg = _sample_result().message()
    assert "dW2 (engine vs torch) at (1, 0)" in msg and "layer 2 is the first" in msg
    assert "dW2 = 2 x torch everywhere" in msg and "skipped jax (jax is not installed)" in msg
    with pytest.raises(SpecError, match="label"):
        Verdict("torch", "WRONG")
