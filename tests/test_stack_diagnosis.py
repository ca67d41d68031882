"""check on whole networks composed from the layer corpus (code bpcheck did not write): no false alarm on the
correct compositions, every planted layer bug caught, localised to its layer by position and kind, and named by
its kind's bug shape where bpcheck has one (tests/stack_corpus.py composes them; tests/layer_corpus/ holds them).

The compositions are the check contract on a stack: the user's function returns the gradient of every param
of an Arch.stack (what `check --arch-json` gives). A correct one averaged over the batch agrees; summed, with
its own loss_fn, it is CONVENTION (the user's loss is the sum, the factor named). A user's function gives no
per-layer trace, so a bug in a layer without params (relu, max-pool) or in a dL/dx shows only in the params
below it: a bug shape that fits names the layer; otherwise the diagnosis gives the first disagreeing tensor and
the span of layers the bug can be in, and the planted layer must be in it.
"""

from __future__ import annotations

import numpy as np
import pytest

from bpcheck.byo import check_gradients
from tests.stack_corpus import STACKS, compose, loss_fn, styles

pytest.importorskip("torch", reason="the planted bugs are judged against torch: pip install torch==2.13.0")

MEAN_CASES, MEAN_STYLES = 8, 3      # per stack: 3 style choices x 8 drawn cases (float64 and float32, every regime)
SUM_CASES, SUM_STYLES = 5, 2        # per stack: 2 style choices x 5 cases, summed loss with its loss_fn
DRAWN = len(STACKS) * (MEAN_CASES * MEAN_STYLES + SUM_CASES * SUM_STYLES)


def _targets(arch):
    return "labels" if arch.loss == "cross_entropy" else None


def test_at_least_200_drawn_cases():
    assert DRAWN >= 200, DRAWN


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_correct_compositions_agree(stack):
    arch = STACKS[stack]
    for index in range(MEAN_STYLES):
        chosen = styles(index)
        r = check_gradients(compose(arch, chosen), arch, cases=MEAN_CASES, seed=index, references="fd,torch",
                            targets=_targets(arch), in_process=True)
        assert r.ok and not r.findings and len(r.outcomes) == MEAN_CASES, (stack, chosen, str(r))
        assert {o.label for o in r.outcomes} <= {"AGREE", "KINK"}, (stack, chosen, str(r))


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_summed_compositions_with_their_loss_fn_are_convention_with_the_factor(stack):
    arch = STACKS[stack]
    for index in range(SUM_STYLES):
        chosen = styles(index)
        r = check_gradients(compose(arch, chosen, reduction="sum"), arch, cases=SUM_CASES, seed=10 + index,
                            references="fd,torch", targets=_targets(arch), in_process=True,
                            loss_fn=loss_fn(arch, chosen, "sum"))
        assert r.ok and not r.findings and len(r.outcomes) == SUM_CASES, (stack, chosen, str(r))
        # ok on every case; the factor is CONVENTION (a batch of 1 averages to the same gradient: AGREE). A loss_fn
        # that is inf on the huge regime (log of an underflowed probability) has no FD there: ERROR, still ok.
        labels = [o.label for o in r.outcomes]
        assert all(o.ok for o in r.outcomes) and labels.count("CONVENTION") >= SUM_CASES - 2, (stack, labels)
        summed = "summed over the batch" if arch.loss == "cross_entropy" else "the sum of squared errors"
        assert summed in r.diagnosis, (stack, r.diagnosis)


# (corpus bug, stack, position of the planted layer (0: the loss), the layer bpcheck must name, the bug shape or
# None where bpcheck has none for it, exact: the layer is named exactly (else it must be in the span given))
PLANTS = [
    ("relu_ignores_dout", "cnn_pool", 2, 2, "upstream_ones", True),
    ("conv_kernel_flipped", "cnn_pool", 1, 1, "kernel_flipped", True),
    ("maxpool_first_element", "cnn_pool", 3, 3, "first_element", True),
    ("conv_crop_top_left", "cnn_two_conv", 3, 3, "padding_offset", True),
    ("conv_ignores_stride", "cnn_two_conv", 3, 3, None, True),
    ("conv_im2col_fancy_add", "cnn_two_conv", 3, 3, None, False),
    ("conv_crop_negative_pad", "pool_first", 2, 2, None, False),
    ("maxpool_overwrite", "cnn_bn_overlap", 4, 4, None, False),
    ("affine_row0", "mlp_ln", 4, 4, "rows_to_row0", True),
    ("affine_dw_mean", "mlp_bn", 1, 1, None, True),
    ("affine_dw_transposed", "mlp_bn", 1, 1, "dW_transposed", True),
    ("affine_dw_first_sample", "mlp_ln", 1, 1, None, False),
    ("batchnorm_no_mean_term", "mlp_bn", 2, 2, "no_mean_term", True),
    ("batchnorm_dgamma_no_xhat", "mlp_bn", 2, 2, "dgamma_no_xhat", True),
    ("batchnorm_unbiased_var", "mlp_bn", 2, 2, None, False),
    ("batchnorm_square_factor", "mlp_bn", 2, 2, None, False),
    ("layernorm_ones_only", "mlp_ln", 2, 2, None, False),
    ("layernorm_batch_axis", "mlp_ln", 2, 2, None, False),
    ("layernorm_dgamma_first_row", "mlp_ln", 2, 2, None, True),
    ("softmax_loss_label_columns", "mlp_bn", 0, 4, None, True),  # the loss: the top layer is as close as a layer gets
]


@pytest.mark.parametrize("bug, stack, position, layer, shape, exact", PLANTS, ids=[p[0] for p in PLANTS])
def test_planted_bug_is_caught_localised_and_named(bug, stack, position, layer, shape, exact):
    arch = STACKS[stack]
    with_x = stack == "pool_first"   # a bug in layer 2's dL/dx shows only in dL/dx there: the function returns it
    r = check_gradients(compose(arch, bug=(bug, position), with_x=with_x), arch, cases=3, references="torch",
                        targets=_targets(arch), dtype="float64", in_process=True)
    assert not r.ok and not r.findings, (bug, str(r))
    failing = [o for o in r.outcomes if o.label == "ENGINE"]
    assert failing, (bug, [o.label for o in r.outcomes])
    for o in failing:
        v = o.result.verdict("torch")
        found = v.bug
        kind = arch.layers[layer - 1][0]
        span = [int(k) for k in str(found.get("layers", found.get("layer"))).split(",")]
        if exact:
            assert (found.get("layer"), found.get("kind")) == (layer, kind), (bug, found)
            assert f"layer {layer} ({kind})" in found.sentence and f"layer {layer} ({kind})" in o.result.message()
        else:
            assert layer in span, (bug, found)
        if shape is not None:
            assert found.get("shape") == shape and found.code == "layer_bug", (bug, found)
            assert arch.layers[layer - 1][0] in found.name
        else:
            assert found.code != "layer_bug", (bug, found)  # no shape of bpcheck's is this bug: none is claimed


@pytest.mark.parametrize("bug, stack, position, check", [
    ("maxpool_pool_as_stride", "cnn_bn_overlap", 4, "raises"),  # indexes past the input: the function raises
    ("conv_db_wrong_axes", "cnn_pool", 1, "interface"),        # db of shape (W_out,) = (6,), not (F,) = (3,)
])
def test_planted_bug_that_breaks_the_function_is_caught(bug, stack, position, check):
    arch = STACKS[stack]
    r = check_gradients(compose(arch, bug=(bug, position)), arch, cases=2, references="torch", dtype="float64",
                        targets=_targets(arch), in_process=True)
    assert not r.ok and r.input_error is not None and [f.check for f in r.findings] == [check], (bug, str(r))


def test_a_summed_cross_entropy_without_its_loss_fn_is_named_as_that_convention():
    """The corpus's softmax_loss whose dx is never divided by N: every gradient is batch x the mean's; without a
    loss_fn saying so it is ENGINE (as for an MLP), with the convention named."""
    arch = STACKS["cnn_two_conv"]
    r = check_gradients(compose(arch, bug=("softmax_loss_dx_not_averaged", 0)), arch, cases=3, references="torch",
                        targets="labels", dtype="float64", in_process=True)
    assert not r.ok and "cross-entropy summed over the batch" in r.diagnosis, str(r)
    assert np.all([o.label in ("ENGINE", "AGREE") for o in r.outcomes])


def test_the_unshifted_softmax_overflows_on_huge_logits_and_check_says_so():
    """softmax_loss_unshifted is right for moderate logits only (the manifest says so): on the huge regime its
    gradient is nan, a finding of check's, not a pass."""
    arch = STACKS["cnn_two_conv"]
    r = check_gradients(compose(arch, {"softmax_loss": "softmax_loss_unshifted"}), arch, cases=5, seed=2,
                        references="torch", targets="labels", in_process=True)
    assert not r.ok and [f.check for f in r.findings] == ["finite"] and "nan" in r.findings[0].message, str(r)


@pytest.mark.parametrize("with_loss_fn", [False, True], ids=["no loss_fn", "loss_fn"])
def test_a_layer_bug_under_a_summed_loss_is_named_relative_to_that_convention(with_loss_fn):
    """The conv's flipped kernel in a net whose loss is summed: the bug shape is tried under the summed loss (the
    convention the other tensors follow), so it is still named at layer 1 (conv2d)."""
    arch = STACKS["cnn_pool"]
    r = check_gradients(compose(arch, bug=("conv_kernel_flipped", 1), reduction="sum"), arch, cases=3,
                        references="fd,torch", dtype="float64", in_process=True,
                        loss_fn=loss_fn(arch, None, "sum") if with_loss_fn else None)
    assert not r.ok and [o.label for o in r.outcomes] == ["ENGINE"] * 3, str(r)
    for o in r.outcomes:
        bug = o.result.verdict("torch").bug
        assert (bug.get("layer"), bug.get("kind"), bug.get("shape")) == (1, "conv2d", "kernel_flipped"), bug
        assert "the sum of squared errors" in bug.name
