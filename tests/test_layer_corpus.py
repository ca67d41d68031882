"""The layer corpus (tests/layer_corpus/) checked against torch autograd, never against bpcheck.

Every correct entry agrees with torch (float64, random cotangent) to 1e-10 relative in its output and every
gradient (1e-4 for the layers that compute in float32 inside); every planted bug differs from torch by more than
1e-6 relative in each gradient its manifest calls wrong, on every case the manifest lists, agrees in the others,
and agrees everywhere on its `passes` cases (where the manifest says the bug cannot show).
"""

from __future__ import annotations

import pytest

from tests.layer_corpus.manifest import AUTOGRAD_BUGS, AUTOGRAD_CORRECT, BUGS, CORRECT, SIDE_EFFECTS

pytest.importorskip("torch", reason="the layer corpus is judged against torch: pip install torch==2.13.0")

from tests.layer_corpus.truth import autograd_errors, errors  # noqa: E402

SEEDS = (0, 1)
AGREE = {"float64": 1e-10, "float32": 1e-4}
DIFFER = 1e-6


def _ids(impls):
    return [i.name for i in impls]


def test_names_are_unique_and_complete():
    names = [i.name for i in CORRECT + BUGS + SIDE_EFFECTS + AUTOGRAD_CORRECT + AUTOGRAD_BUGS]
    assert len(names) == len(set(names))
    assert {i.layer for i in CORRECT} == {"affine", "relu", "conv2d", "maxpool2d", "batchnorm", "layernorm",
                                          "dropout", "softmax_loss"}


@pytest.mark.parametrize("impl", CORRECT, ids=_ids(CORRECT))
def test_correct_agrees_with_torch(impl):
    tol = AGREE[impl.precision]
    for case in impl.cases:
        if impl.fits is not None:
            assert impl.fits(case.shapes, case.config), (impl.name, case)
        for seed in SEEDS:
            errs = errors(impl, case, seed)
            assert max(errs.values()) <= tol, (impl.name, case, seed, errs)


@pytest.mark.parametrize("bug", BUGS, ids=_ids(BUGS))
def test_bug_differs_from_torch_where_the_manifest_says(bug):
    assert bug.wrong and set(bug.wrong) <= set(bug.grads), (bug.name, bug.wrong, bug.grads)
    assert bug.cases, bug.name
    for case in bug.cases:
        assert bug.fits is None or bug.fits(case.shapes, case.config), (bug.name, case)
        for seed in SEEDS:
            errs = errors(bug, case, seed)
            for name in bug.grads:
                if name in bug.wrong:
                    assert errs[name] > DIFFER, (bug.name, name, case, seed, errs)
                else:
                    assert errs[name] <= AGREE[bug.precision], (bug.name, name, case, seed, errs)
            assert errs["out"] <= AGREE[bug.precision], (bug.name, "forward", case, seed, errs)


@pytest.mark.parametrize("bug", [b for b in BUGS if b.passes], ids=_ids([b for b in BUGS if b.passes]))
def test_bug_is_invisible_on_its_passes_cases(bug):
    for case in bug.passes:
        for seed in SEEDS:
            errs = errors(bug, case, seed)
            assert max(errs.values()) <= AGREE[bug.precision], (bug.name, case, seed, errs)


def test_cs231n_gradcheck_copy_reads_a_correct_layer_as_correct_and_a_wrong_one_as_wrong():
    """The benchmark's baseline works as the notebooks use it: dx of a correct affine prints a tiny rel_error."""
    import numpy as np

    from tests.layer_corpus import layers_vectorised as lv
    from tests.layer_corpus.cs231n_gradcheck import eval_numerical_gradient_array, rel_error

    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    dout = rng.standard_normal((4, 3))
    dx, dw, db = lv.affine_backward(dout, lv.affine_forward(x, w, b)[1])
    dx_num = eval_numerical_gradient_array(lambda x: lv.affine_forward(x, w, b)[0], x, dout)
    dw_num = eval_numerical_gradient_array(lambda w: lv.affine_forward(x, w, b)[0], w, dout)
    assert rel_error(dx, dx_num) < 1e-7 and rel_error(dw, dw_num) < 1e-7
    assert rel_error(2 * dw, dw_num) > 1e-2


AUTOGRAD = [(e, "correct") for e in AUTOGRAD_CORRECT] + [(e, "bug") for e in AUTOGRAD_BUGS]


@pytest.mark.parametrize("entry,role", AUTOGRAD, ids=[e.name for e, _ in AUTOGRAD])
def test_autograd_function_against_torch_autograd(entry, role):
    pytest.importorskip(entry.framework, reason=f"{entry.name} is a {entry.framework} function: install {entry.framework}")
    for case in entry.cases:
        for seed in SEEDS:
            errs = autograd_errors(entry, case, seed)
            assert errs["out"] <= AGREE["float64"], (entry.name, case, seed, errs)
            for name in entry.grads:
                if name in entry.wrong:
                    assert errs[name] > DIFFER, (entry.name, name, case, seed, errs)
                else:
                    assert errs[name] <= AGREE["float64"], (entry.name, name, case, seed, errs)
    for case in entry.passes:
        assert max(autograd_errors(entry, case, 0).values()) <= AGREE["float64"], (entry.name, case)
    assert (role == "bug") == bool(entry.wrong)


@pytest.mark.parametrize("impl", [i for i in CORRECT if i.fn is None], ids=_ids([i for i in CORRECT if i.fn is None]))
def test_upcasts_lists_exactly_what_comes_back_float64_from_float32_inputs(impl):
    import copy

    import numpy as np

    from tests.layer_corpus.cases import cotangent, draw

    seen = set()
    for case in impl.cases:
        arrays = {k: v.astype(np.float32) for k, v in draw(case, 0).items()}
        config = [copy.deepcopy(case.config)] if case.config is not None else []
        out, cache = impl.forward(*[arrays[a] for a in impl.args], *config)
        grads = impl.backward(cotangent(case, out.shape, 0).astype(np.float32), cache)
        grads = grads if isinstance(grads, tuple) else (grads,)
        seen |= {name for name, v in zip(("out",) + impl.grads, (out, *grads)) if v.dtype == np.float64}
    assert seen == set(impl.upcasts), (impl.name, seen)


@pytest.mark.parametrize("impl", SIDE_EFFECTS, ids=_ids(SIDE_EFFECTS))
def test_side_effect_bugs_are_right_once_and_change_what_they_say(impl):
    import copy

    import numpy as np

    from tests.layer_corpus.cases import cotangent, draw

    assert impl.mutates and not impl.wrong
    for case in impl.cases:
        assert max(errors(impl, case, 0).values()) <= AGREE["float64"], (impl.name, case)  # first answer right
        arrays = draw(case, 0)
        config = [copy.deepcopy(case.config)] if case.config is not None else []
        out, cache = impl.forward(*[arrays[a] for a in impl.args], *config)
        dout = cotangent(case, out.shape, 0)
        dout_before, cache_before = dout.copy(), copy.deepcopy(cache)
        first = impl.backward(dout, cache)
        first = np.copy(first[0] if isinstance(first, tuple) else first)
        changed_dout = not np.array_equal(dout, dout_before)
        assert changed_dout == ("dout" in impl.mutates), impl.name
        if "cache" in impl.mutates:
            again = impl.backward(dout_before.copy(), cache)
            again = again[0] if isinstance(again, tuple) else again
            assert not np.allclose(again, first), impl.name  # the same call twice, two answers
            assert not all(np.array_equal(a, b) for a, b in zip(cache, cache_before) if isinstance(a, np.ndarray))
