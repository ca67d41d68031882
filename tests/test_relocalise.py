"""A real bug in a gradient that follows another loss convention is placed in its own layer (issue 13.3).

The engines are written here or in tests/corpus/ (not by bpcheck); where the bug shows is known from how it is
planted. Every ENGINE verdict must name that layer and lead with one of its tensors, whatever loss the rest of the
gradient follows: the declared one, a known convention (half SSE), or only the user's own loss_fn.
"""

from __future__ import annotations

import numpy as np
import pytest

from bpcheck import Arch
from bpcheck.byo import check_gradients, draw_cases
from bpcheck.byo.user_fd import SOURCE
from tests.corpus import bugs_vectorised as vc
from tests.corpus import float32_net, half_sse
from tests.corpus.bugs import bug, check, judge

pytest.importorskip("torch", reason="the verdicts read are torch's and jax's beside FD: pip install torch==2.13.0")
pytest.importorskip("jax", reason="the verdicts read are torch's and jax's beside FD: pip install 'jax[cpu]'")

WEIGHTS = np.array([1.0, 3.0])   # a per-output weighting no known convention has


def weighted_loss(params, x, y):
    a = x
    for i in (1, 2, 3):
        z = a @ params[f"W{i}"] + params[f"b{i}"]
        a = z if i == 3 else np.tanh(z)
    return float(np.sum(WEIGHTS * (a - y) ** 2) / len(x))


def weighted_grads_tanh1_of_input(params, x, y):
    """Backprop of weighted_loss, with layer 1's tanh' taken from its input x instead of its output (a 3-3-... net)."""
    hs, zs = [x], []
    for i in (1, 2, 3):
        zs.append(hs[-1] @ params[f"W{i}"] + params[f"b{i}"])
        hs.append(zs[-1] if i == 3 else np.tanh(zs[-1]))
    delta = 2 * WEIGHTS * (hs[-1] - y) / len(x)
    out = {}
    for i in (3, 2, 1):
        out[f"W{i}"], out[f"b{i}"] = hs[i - 1].T @ delta, delta.sum(axis=0)
        if i > 1:
            delta = delta @ params[f"W{i}"].T
            below = hs[i - 2] if i == 2 else hs[i - 1]   # BUG: layer 1's tanh' from x
            delta = delta * (1 - below ** 2)
    return out


def _engine_verdicts(result):
    return [(o, v) for o in result.outcomes if o.label == "ENGINE" for v in o.result.verdicts if v.label == "ENGINE"]


def _places(result, layer):
    """Every ENGINE verdict names layer and leads with its W or b; at least one case was ENGINE."""
    seen = _engine_verdicts(result)
    assert seen, result.summary()
    wrong = [(o.describe, v.reference, v.first_bad_layer, v.worst_tensor().name) for o, v in seen
             if v.first_bad_layer != layer or v.worst_tensor().name not in (f"W{layer}", f"b{layer}")]
    assert wrong == [], wrong[:4]
    return seen


def test_bug_under_the_users_own_loss_is_placed_by_fd_of_that_loss():
    # Torch and jax see every layer differ from the declared mse (the weights), and no known convention fits the
    # output layer: only FD of loss_fn places the bug, in layer 1, and every verdict names layer 1.
    # (In the huge and saturating regimes FD's error estimate covers the output layer: it cannot say where.)
    arch = Arch((3, 3, 4, 2), ("tanh", "tanh", "identity"), "mse")
    cases = [c for c in draw_cases(arch, 30, 0, ("float64",)) if c.regime in ("ordinary", "near_kink", "tiny")][:10]
    result = check_gradients(weighted_grads_tanh1_of_input, arch, loss_fn=weighted_loss, cases=cases, seed=0)
    seen = _places(result, 1)
    assert {v.reference for _, v in seen} >= {"torch", "jax", SOURCE}


def test_bug_under_half_sse_is_placed_and_named_relative_to_half_sse():
    # Without its loss_fn the whole gradient differs from the declared mse; relative to half SSE only layer 2 does.
    arch = Arch.parse("3-3-3-1", "tanh,tanh,identity", "mse")
    result = check_gradients(vc.half_sse_tanh_prime_of_input, arch, cases=10, seed=0, dtype="float64")
    seen = _places(result, 2)
    named = [v for o, v in seen if o.convention == ""]
    assert named and all(v.diagnosis.startswith("relative to half the sum of squared errors") for v in named)
    correct = check_gradients(half_sse.grads, arch, cases=10, seed=0, dtype="float64")
    assert all(o.convention == "half_sum" for o in correct.outcomes if not o.ok), correct.summary()


def test_fd_of_a_noisy_float32_loss_fn_does_not_place_the_bug_below_its_layer():
    # float32_net's loss_fn computes in float32: its FD cannot resolve dW2 in the saturating cases, which it
    # used to clear, naming layer 1. It names layer 2, or no layer when none of its layer-2 tensors disagree.
    arch = Arch.parse("4-6-2", "tanh,sigmoid", "mse")
    result = check_gradients(vc.float32_divides_by_batch, arch, loss_fn=float32_net.loss, cases=30, seed=0,
                             dtype=("float32", "float64"))
    mine = [v for _, v in _engine_verdicts(result) if v.reference == SOURCE]
    assert mine and all(v.first_bad_layer in (2, None) for v in mine), [v.first_bad_layer for v in mine]


def test_a_clipped_loss_fn_does_not_move_the_bug_to_the_output_layer():
    # clipped_bce's loss clips log(a): where the clip is active (huge) its FD differs from the unclipped gradient
    # the engine follows at the output layer, and fd:loss_fn named layer 3. The bug (layer 2's leaky mask from
    # layer 3's z) is placed where it shows, found by diffing with the correct engine (bugs.judge).
    b = bug("clipped_bce_mask_of_own_z")
    result = check(b, "loss_fn")
    j = judge(b, result)
    assert j["caught"] >= 20 and j["misplaced"] == [], j["misplaced"][:3]
    huge = [v for o, v in _engine_verdicts(result) if "huge" in o.describe and v.reference == SOURCE]
    assert huge and all(v.first_bad_layer != 3 for v in huge)
