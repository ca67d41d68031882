"""check-layer (issue 16) on the independent layer corpus (tests/layer_corpus/, written apart from bpcheck).

Every correct layer passes with 0 failing labels over CORRECT_CASES drawn cases; every planted bug is caught
with the gradient its manifest calls wrong named (the two convention-only bugs are CONVENTION, a pass); the
torch.autograd.Function and jax.custom_vjp entries likewise. Kinds whose registry layer is not on main yet
skip with the reason.
"""

from __future__ import annotations

import pytest

from bpcheck.layercheck import check_layer
from bpcheck.layercheck.course import KINDS
from bpcheck.layers import LAYERS
from tests.layer_corpus import manifest as m

pytest.importorskip("torch", reason="check-layer's corpus tests compare against torch: pip install torch==2.13.0")

CORRECT_CASES = 200
BUG_CASES = 40
FRAMEWORK_CASES = 8  # each case also runs the function in float32, and jax compiles per shape
REFS = "fd,torch"  # jax compiles per shape (0.1-0.5 s a case); it runs on the framework entries and below


def _ids(impls):
    return [i.name for i in impls]


def _layer(impl) -> str:
    return "spatial_batchnorm" if impl.layer == "batchnorm" and impl.fits is m.four_d else impl.layer


def _need(layer: str) -> None:
    registry = KINDS[layer].registry
    if registry is not None and registry not in LAYERS:
        pytest.skip(f"the registry kind {registry!r} is not on main yet")


def run(impl, cases: int, refs: str = REFS, seed: int = 0, **options):
    options.setdefault("shrink", False)  # shrinking is tested once, below
    layer = _layer(impl)
    _need(layer)
    config = {"pool_height": 2, "pool_width": 2, "stride": 2} if impl.fits is m.tiling_pool else None
    if impl.fn is not None:
        return check_layer(impl.fn, layer=layer, cases=cases, seed=seed, references=refs, **options)
    return check_layer(impl.forward, impl.backward, layer=layer, config=config, cases=cases, seed=seed,
                       references=refs, precision=impl.precision, **options)


@pytest.mark.parametrize("impl", m.CORRECT, ids=_ids(m.CORRECT))
def test_correct_layer_passes_every_case(impl):
    result = run(impl, CORRECT_CASES)
    assert result.ok, str(result)
    assert len(result.outcomes) == CORRECT_CASES and not result.failing() and not result.findings
    assert set(result.labels) <= {"AGREE", "KINK", "CONVENTION", "FD_NOISE"}


@pytest.mark.parametrize("impl", m.BUGS, ids=_ids(m.BUGS))
def test_planted_bug_is_caught_with_its_argument_named(impl):
    result = run(impl, BUG_CASES)
    if impl.convention:
        assert result.ok and "CONVENTION" in result.labels, str(result)
        return
    assert not result.ok, str(result)
    wrong = {g[1:] for g in impl.wrong}
    assert wrong <= set(result.wrong_args), (wrong, result.wrong_args, str(result))
    text = str(result)
    for arg in wrong:
        assert f"d{arg} of {_layer(impl)}" in text or f"d{arg} " in text


def test_issue_bug_classes_are_named():
    """The bug classes the issue names: dout ignored, every row to row 0, only for batch >= 2."""
    ignores = run(m.by_name("relu_ignores_dout"), 20)
    assert "as if dout were all ones" in ignores.diagnosis
    assert any(f.check == "zero" and f.arg == "x" for f in ignores.findings)
    row0 = run(m.by_name("affine_row0"), 20)
    assert "row 0" in row0.diagnosis and row0.wrong_args[0] == "x"
    mean = run(m.by_name("affine_dw_mean"), 20)
    assert "fails only for batch >= 2" in str(mean) and "1/N" in mean.diagnosis


@pytest.mark.parametrize("entry", m.AUTOGRAD_CORRECT, ids=_ids(m.AUTOGRAD_CORRECT))
def test_framework_function_passes(entry):
    if entry.framework == "jax":
        pytest.importorskip("jax", reason="pip install jax")
    _need(entry.layer)
    result = check_layer(entry.load(), layer=entry.layer, cases=FRAMEWORK_CASES, seed=0, references="fd,torch",
                         shrink=False)
    assert result.ok, str(result)
    assert result.meta["form"] == entry.framework


@pytest.mark.parametrize("entry", m.AUTOGRAD_BUGS, ids=_ids(m.AUTOGRAD_BUGS))
def test_framework_bug_is_caught(entry):
    if entry.framework == "jax":
        pytest.importorskip("jax", reason="pip install jax")
    _need(entry.layer)
    result = check_layer(entry.load(), layer=entry.layer, cases=FRAMEWORK_CASES, seed=0, references="fd,torch",
                         shrink=False)
    assert not result.ok, str(result)
    assert {g[1:] for g in entry.wrong} <= set(result.wrong_args), str(result)


def test_jax_reference_agrees_on_correct_layers():
    pytest.importorskip("jax", reason="pip install jax")
    for name in ("affine", "conv_im2col"):
        result = run(m.by_name(name), 3, refs="all")
        assert result.ok and "jax" in result.references, str(result)


def test_same_seed_same_result():
    impl = m.by_name("conv_kernel_flipped")
    a, b = run(impl, 10, seed=3), run(impl, 10, seed=3)
    assert str(a) == str(b) and "seed 3" in str(a)


def test_shrinks_to_a_smaller_failing_case():
    result = run(m.by_name("affine_row0"), 12, shrink=True)
    assert result.smallest.startswith("ordinary, x (2,") or "x (2," in result.smallest, result.smallest
