"""The torch and jax references against the engine, each other and the kink conventions; the registry.

torch and jax tests skip (with the reason) where the framework is missing; nothing here mocks either.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from bpcheck import engine
from bpcheck import references as refs
from bpcheck.ops import RULES
from bpcheck.spec import ACTIVATIONS, LOSS_OUTPUT, LOSSES, Arch, Case, Gradients, UsageError

from .nets import random_case

AGREE = 1e-12      # float64 norm-relative error allowed between two exact-gradient producers
PADDING = 1e-13    # jax's bucketed (padded) kernel against its unpadded math
# A tensor whose norms are both below this is zero up to rounding: a width-1 softmax is the constant
# 1, and XLA's vectorised exp is not correctly rounded, so jax returns ~1e-17 where the engine has 0.
ZERO = 1e-14


@pytest.fixture(scope="module")
def torch_ref():
    pytest.importorskip("torch", reason="torch is not installed: pip install torch==2.13.0 (or bpcheck[torch])")
    from bpcheck.references import torch_ref

    return torch_ref


@pytest.fixture(scope="module")
def jax_ref():
    pytest.importorskip("jax", reason="jax is not installed: pip install jax (or bpcheck[jax])")
    from bpcheck.references import jax_ref

    return jax_ref


def norm_rel(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / max(||a||, ||b||), and 0 when both are zero up to rounding (see ZERO)."""
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale < ZERO else float(np.linalg.norm(a - b) / scale)


def errors(got: Gradients, want: Gradients) -> dict[str, float]:
    """norm_rel per tensor: loss, every param grad, dx, dz1..dzL and da1..da(L-1), after checking shapes."""
    assert list(got.grads) == list(want.grads)
    assert len(got.dz) == len(want.dz) and len(got.da) == len(want.da)
    pairs = {"loss": (np.array(got.loss), np.array(want.loss)), "dx": (got.dx, want.dx)}
    pairs |= {k: (got.grads[k], want.grads[k]) for k in want.grads}
    pairs |= {f"dz{i}": p for i, p in enumerate(zip(got.dz, want.dz), 1)}
    pairs |= {f"da{i}": p for i, p in enumerate(zip(got.da, want.da), 1)}
    out = {}
    for name, (a, b) in pairs.items():
        assert a.shape == b.shape, f"{name}: {a.shape} vs {b.shape}"
        assert a.dtype == np.float64 and np.all(np.isfinite(a)), name
        out[name] = norm_rel(a, b)
    return out


def worst(got: Gradients, want: Gradients) -> tuple[str, float]:
    errs = errors(got, want)
    name = max(errs, key=errs.get)
    return name, errs[name]


def coverage_cases() -> list[Case]:
    """Every activation in a hidden and in the output layer (where the loss allows), under every loss,
    with batches cycling through 1..16 and widths 1..6, width 1 included; hidden softmax too."""
    rng = np.random.default_rng(20240611)
    cases = []
    for i, act in enumerate(ACTIVATIONS):
        for j, loss in enumerate(LOSSES):
            other = ACTIVATIONS[(i + j + 1) % len(ACTIVATIONS)]
            out = LOSS_OUTPUT.get(loss, act)
            depth = 1 + (i + j) % 3
            hidden = [act if k % 2 == 0 else other for k in range(depth - 1)]
            sizes = [int(rng.integers(1, 7)) for _ in range(depth + 1)]
            if loss == "cross_entropy":  # at least 2 classes, and a width-1 input or hidden layer
                sizes[-1] = max(sizes[-1], 2)
                sizes[(i + j) % (len(sizes) - 1)] = 1
            else:  # a width-1 input, hidden or output layer
                sizes[(i + j) % len(sizes)] = 1
            if depth == 1 and loss not in LOSS_OUTPUT:
                out = act
            arch = Arch(tuple(sizes), (*hidden, out), loss)
            cases.append(random_case(rng, arch, batch=1 + (len(cases) % 16)))
    return cases


CASES = coverage_cases()


def test_coverage_cases_cover_every_activation_loss_and_shape():
    acts = {a for c in CASES for a in c.arch.activations}
    hidden = {a for c in CASES for a in c.arch.activations[:-1]}
    assert acts == set(ACTIVATIONS) and hidden == set(ACTIVATIONS)
    assert {c.arch.loss for c in CASES} == set(LOSSES)
    assert {c.batch for c in CASES} == set(range(1, 17))
    assert all(1 in c.arch.sizes for c in CASES)


@pytest.mark.parametrize("which", ["torch", "jax"])
def test_reference_matches_engine(which, request):
    ref = request.getfixturevalue(f"{which}_ref")
    for case in CASES:
        name, err = worst(ref.gradients(case), engine.gradients(case))
        assert err <= AGREE, f"{which} vs engine on {case.arch.label()} batch {case.batch}: {name} rel err {err:.2e}"


def test_torch_and_jax_agree(torch_ref, jax_ref):
    for case in CASES:
        t, j = torch_ref.gradients(case), jax_ref.gradients(case)
        assert t.source == "torch" and j.source == "jax"
        name, err = worst(t, j)
        assert err <= AGREE, f"torch vs jax on {case.arch.label()}: {name} rel err {err:.2e}"


def test_jax_padding_matches_unpadded_math(jax_ref):
    # A few archs, all losses; "jit" is the unpadded math compiled per arch (eager costs ~1.5 s a new shape).
    for case in CASES[::9][:4] + [CASES[-1]]:
        padded, plain = jax_ref.gradients(case), jax_ref.gradients(case, "jit")
        assert padded.meta["bucket"] == (4, 8, 16)
        name, err = worst(padded, plain)
        assert err <= PADDING, f"padded vs unpadded jax on {case.arch.label()}: {name} rel err {err:.2e}"


def test_jax_compiles_once_per_bucket(jax_ref):
    kernel = jax_ref._jax().bucketed
    jax_ref.gradients(CASES[0])
    before = kernel._cache_size()
    for case in CASES[1:12]:  # different archs and batches, all within depth 4, width 8, batch 16
        jax_ref.gradients(case)
    assert kernel._cache_size() == before
    big = Arch((9, 3), ("tanh",), "mse")  # width 9 > 8: the next bucket
    assert jax_ref.bucket(big, 17) == (4, 16, 32)
    assert jax_ref.bucket(Arch((2,) * 6, ("relu",) * 5, "mse"), 1) == (8, 8, 16)


def _zero_preactivation_case(act: str) -> Case:
    """A net whose first-layer pre-activations are exactly 0 in row 0 (x row 0 = 0, b1 = 0)."""
    rng = np.random.default_rng(7)
    arch = Arch((3, 4, 2), (act, "tanh"), "mse")
    case = random_case(rng, arch, batch=3)
    x = case.x.copy()
    x[0] = 0.0
    params = dict(case.params, b1=np.zeros(4))
    return Case(arch, params, x, case.y)


@pytest.mark.parametrize("which", ["torch", "jax"])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_exact_zero_preactivation_follows_ops_rules(act, which, request):
    ref = request.getfixturevalue(f"{which}_ref")
    case = _zero_preactivation_case(act)
    got, want = ref.gradients(case), engine.gradients(case)
    name, err = worst(got, want)
    assert err <= AGREE, f"{which} {act} at z = 0: {name} rel err {err:.2e}"
    rule = RULES[act]
    if rule.kink:  # the declared subgradient, not just agreement: dz = at_zero * da where z = 0
        da0, dz0 = got.da[0][0], got.dz[0][0]
        assert np.all(da0 != 0)
        np.testing.assert_array_equal(dz0, rule.at_zero * da0)


@pytest.mark.parametrize("which", ["torch", "jax"])
def test_loss_kinks_match_engine(which, request):
    """bce at z = 0, huber at |r| = 0 and exactly delta, relu at 0 in the output layer."""
    ref = request.getfixturevalue(f"{which}_ref")
    zero = {"W1": np.zeros((2, 3)), "b1": np.zeros(3)}
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    for arch, y in [
        (Arch((2, 3), ("sigmoid",), "bce"), np.array([[0.0, 0.5, 1.0], [1.0, 0.3, 0.0]])),
        (Arch((2, 3), ("identity",), "huber"), np.array([[0.0, 1.0, -1.0], [1.0, -1.0, 0.0]])),
        (Arch((2, 3), ("relu",), "mse"), np.array([[1.0, -1.0, 0.5], [0.0, 2.0, 1.0]])),
    ]:
        case = Case(arch, zero, x, y)
        got, want = ref.gradients(case), engine.gradients(case)
        name, err = worst(got, want)
        assert err <= AGREE, f"{which} {arch.label()}: {name} rel err {err:.2e}"


def test_float32_case_is_computed_in_float64(torch_ref, jax_ref):
    case32 = CASES[5].astype(np.float32)
    want = engine.gradients(case32.astype(np.float64))
    for ref in (torch_ref, jax_ref):
        got = ref.gradients(case32)
        name, err = worst(got, want)  # errors() also asserts float64 dtypes
        assert err <= AGREE, f"{got.source} on a float32 case: {name} rel err {err:.2e}"
        assert got.meta["dtype"] == "float64"


def test_returned_arrays_are_writable_copies(jax_ref):
    got = jax_ref.gradients(CASES[3])
    for arr in (*got.grads.values(), got.dx, *got.dz, *got.da):
        assert arr.flags.writeable and arr.flags.owndata


# Planted traps: the library defaults the references avoid would be caught by the same check.

def _planted(monkeypatch, framework: str, act: str, form) -> None:
    """Replace the activation layer's framework form for act (the references compose it) by form(z, module)."""
    from bpcheck.layers import LAYERS

    layer = LAYERS["activation"]
    right = getattr(layer, framework)

    def planted(config, params, x, module):
        return form(x, module) if config["fn"] == act else right(config, params, x, module)

    monkeypatch.setitem(LAYERS, "activation", dataclasses.replace(layer, **{framework: planted}))


def test_planted_torch_softplus_threshold_is_caught(torch_ref, monkeypatch):
    rng = np.random.default_rng(3)
    arch = Arch((2, 3, 1), ("softplus", "identity"), "mse")
    case = random_case(rng, arch, batch=4)
    case = case.with_params(dict(case.params, b1=np.full(3, 25.0)))  # z1 > 20, where F.softplus's gradient is 1
    want = engine.gradients(case)
    assert worst(torch_ref.gradients(case), want)[1] <= AGREE
    _planted(monkeypatch, "torch", "softplus", lambda z, torch: torch.nn.functional.softplus(z))
    name, err = worst(torch_ref.gradients(case), want)
    assert err > AGREE and name in ("dz1", "W1", "b1", "dx"), (name, err)


def test_planted_jax_leaky_relu_at_zero_is_caught(jax_ref, monkeypatch):
    case = _zero_preactivation_case("leaky_relu")
    want = engine.gradients(case)
    assert worst(jax_ref.gradients(case, "eager"), want)[1] <= AGREE
    _planted(monkeypatch, "jax", "leaky_relu", lambda z, jax: jax.nn.leaky_relu(z, 0.01))  # z >= 0: slope 1 at 0
    name, err = worst(jax_ref.gradients(case, "eager"), want)  # eager traces anew, so it sees the patch
    assert err > AGREE, (name, err)


def test_torch_thread_count_is_restored(torch_ref):
    import torch

    before = torch.get_num_threads()
    torch_ref.gradients(CASES[0])
    assert torch.get_num_threads() == before


def test_unknown_jax_mode_names_the_value(jax_ref):
    with pytest.raises(UsageError, match=r"jax mode 'eagre' \(did you mean 'eager'\?\) is unknown"):
        jax_ref.gradients(CASES[0], "eagre")


def test_jax_x64_is_on_only_inside_the_reference(jax_ref):
    """The reference computes in float64 whatever the process's setting, and leaves that setting as it was."""
    jax = jax_ref._jax().jax
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        for mode in ("bucketed", "eager"):
            got = jax_ref.gradients(CASES[0], mode)
            assert got.dx.dtype == np.float64
            assert worst(got, engine.gradients(CASES[0]))[1] <= AGREE
            assert jax.config.jax_enable_x64 is False
            assert jax.numpy.ones(1).dtype == np.float32
    finally:
        jax.config.update("jax_enable_x64", before)


# The registry.

def test_registry_names_and_status_of_installed_references():
    assert refs.NAMES == ("fd", "torch", "jax")
    for name in refs.NAMES:
        s = refs.status(name)
        assert s.name == name and isinstance(s.available, bool)
        assert (s.reason is None) == s.available and (s.version is not None) == s.available


def test_status_and_producer_of_unknown_name_suggest_the_nearest():
    with pytest.raises(UsageError, match=r"reference 'tourch' \(did you mean 'torch'\?\) is unknown: choose from fd"):
        refs.status("tourch")
    with pytest.raises(UsageError, match=r"'jaxx' \(did you mean 'jax'\?\)"):
        refs.producer("jaxx")


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_missing_package_gives_the_install_hint(name):
    missing = dataclasses.replace(refs._REFERENCES[name], packages=("bpcheck_no_such_package",))
    s = refs._probe(missing)
    assert not s.available and s.version is None
    hint = {"torch": "pip install torch==2.13.0 (or bpcheck[torch])", "jax": "pip install jax (or bpcheck[jax])"}[name]
    assert s.reason == f"bpcheck_no_such_package is not installed: {hint}"
    with pytest.raises(UsageError, match=rf"reference '{name}' cannot run: bpcheck_no_such_package is not installed"):
        refs._load(missing)


def test_producer_returns_each_reference(torch_ref, jax_ref):
    assert refs.producer("torch") is torch_ref.gradients
    assert refs.producer("jax") is jax_ref.gradients


def test_resolve_parses_lists():
    assert refs.resolve(None) == ["fd", "torch", "jax"]
    assert refs.resolve("all") == ["fd", "torch", "jax"]
    assert refs.resolve(" jax, fd ,jax") == ["jax", "fd"]
    assert refs.resolve(["torch"]) == ["torch"]
    with pytest.raises(UsageError, match=r"reference 'fdd' \(did you mean 'fd'\?\) is unknown"):
        refs.resolve("torch,fdd")
    with pytest.raises(UsageError, match="name none"):
        refs.resolve(" , ")
    with pytest.raises(UsageError, match="are not names"):
        refs.resolve([1, 2])


def test_registry_imports_neither_framework():
    code = (
        "import sys, bpcheck, bpcheck.references as R\n"
        "[R.producer(n) for n in R.resolve(None) if R.status(n).available]\n"
        "bad = [m for m in ('torch', 'jax') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
