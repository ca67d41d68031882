"""gelu is torch's exact z Phi(z), gelu_tanh the tanh approximation, and bpcheck names the common wrong forms.

Every gradient function here is code bpcheck did not write (tests/corpus/): the exact-erf engine, a GPT-2-style
tanh-form engine, and their planted bugs. The diagnosis must say which form a layer computes, in words.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpcheck import Arch, check_gradients, check_layer

pytest.importorskip("torch", reason="judged against torch and jax: pip install torch==2.13.0")
pytest.importorskip("jax", reason="judged against torch and jax: pip install 'jax[cpu]'")

from tests.corpus import bugs_vectorised as vc  # noqa: E402
from tests.corpus import gelu_erf, gelu_tanh_gpt2  # noqa: E402

CASES = 8


def _check(fn, arch: str, acts: str, loss: str, **kw):
    return check_gradients(fn, Arch.parse(arch, acts, loss), cases=CASES, seed=3, dtype="float64", in_process=True, **kw)


@pytest.mark.parametrize(("fn", "arch", "acts", "loss"), [
    (gelu_erf.grads, "3-4-2", "gelu,identity", "mse"),
    (gelu_tanh_gpt2.grads, "3-5-2", "gelu_tanh,identity", "huber"),
])
def test_each_form_declared_as_itself_agrees(fn, arch, acts, loss):
    result = _check(fn, arch, acts, loss)
    assert result.ok and set(result.labels) <= {"AGREE", "KINK"}, result.summary()


@pytest.mark.parametrize(("fn", "arch", "acts", "loss", "declare"), [
    (gelu_tanh_gpt2.grads, "3-5-2", "gelu,identity", "huber", "layer 1's gelu is the tanh approximation; declare gelu_tanh"),
    (gelu_erf.grads, "2-5-5-1", "gelu_tanh,gelu_tanh,identity", "mse",
     "layers 1, 2's gelu_tanh are the exact z Φ(z); declare gelu"),
])
def test_a_net_in_the_other_form_is_named_with_the_fix(fn, arch, acts, loss, declare):
    result = _check(fn, arch, acts, loss)
    assert not result.ok
    failing = [o for o in result.outcomes if not o.ok]
    assert failing and all(declare in o.explanation for o in failing), [o.explanation for o in failing]
    assert declare in result.diagnosis, result.diagnosis


@pytest.mark.parametrize(("fn", "arch", "acts", "layer", "form"), [
    (vc.gelu_phi_without_z, "3-4-2", "gelu,identity", 1, "Φ(z) + φ(z), the z of z φ(z) dropped"),
    (vc.gelu_phi_only, "2-5-5-1", "gelu,gelu,identity", 2, "Φ(z), the product rule's z φ(z) term dropped"),
])
def test_a_wrong_gelu_derivative_is_named_in_its_layer(fn, arch, acts, layer, form):
    result = _check(fn, arch, acts, "mse")
    named = f"layer {layer} computes gelu' as {form} (should be Φ(z) + z φ(z))"
    engine = [o for o in result.outcomes if o.label == "ENGINE"]
    # named in every caught case (where |z| is huge, Phi(z) and the tanh form's derivative agree, and it says so)
    assert engine and all(named in o.name() for o in engine), [o.name() for o in engine]
    assert named in result.diagnosis, result.diagnosis


# --- check-layer: a course-style gelu layer (CS231n's contract: out, cache = forward(x); dx = backward(dout, cache)) --

def _phi(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _Phi(x):
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def gelu_forward(x):
    return x * _Phi(x), x


def gelu_backward(dout, cache):
    x = cache
    return dout * (_Phi(x) + x * _phi(x))


def gelu_backward_phi_only(dout, cache):
    return dout * _Phi(cache)    # BUG: the product rule's x * phi(x) dropped


def gelu_tanh_forward(x):
    u = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
    return 0.5 * x * (1.0 + np.tanh(u)), (x, np.tanh(u))


def gelu_tanh_backward(dout, cache):
    x, t = cache
    du = math.sqrt(2.0 / math.pi) * (1.0 + 3 * 0.044715 * x * x)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


@pytest.mark.parametrize(("forward", "backward", "layer"), [
    (gelu_forward, gelu_backward, "gelu"), (gelu_tanh_forward, gelu_tanh_backward, "gelu_tanh")])
def test_check_layer_passes_a_course_style_gelu_of_either_form(forward, backward, layer):
    result = check_layer(forward, backward, layer=layer, cases=6, in_process=True, shrink=False)
    assert result.ok, result.summary()


def test_check_layer_names_a_course_style_gelu_backward_without_its_z_phi_term():
    result = check_layer(gelu_forward, gelu_backward_phi_only, layer="gelu", cases=6, in_process=True, shrink=False)
    assert not result.ok
    assert "computes gelu' as Φ(z), the product rule's z φ(z) term dropped" in result.diagnosis, result.summary()


def test_the_gelu_form_variant_is_a_net_of_its_own_whose_loss_fn_value_is_its_own():
    """What FD of a user's loss_fn is compared with when the gradient follows the other gelu form: that net's loss
    (its own forward), not the declared net's loss read on the declared forward."""
    import numpy as np

    from bpcheck import engine
    from bpcheck.byo.checking import _engine_stand_in
    from bpcheck.byo.conventions import variants
    from bpcheck.byo.user_oracle import variant_value
    from bpcheck.compare import CaseContext
    from bpcheck.spec import Case, init_params

    arch = Arch.parse("3-5-2", "gelu,identity", "huber")
    rng = np.random.default_rng(4)
    case = Case(arch, init_params(arch, rng, gain=3.0), 2.0 * rng.standard_normal((6, 3)), rng.standard_normal((6, 2)))
    ctx = CaseContext.build(case, _engine_stand_in(case))
    (variant,) = [v for v in variants(arch) if v.arch is not None]
    assert variant.arch == Arch.parse("3-5-2", "gelu_tanh,identity", "huber")
    want = engine.loss(variant.arch, case.params, case.x, case.y)
    assert variant_value(ctx, variant) == want
    assert abs(want - engine.loss(arch, case.params, case.x, case.y)) > 1e-6 * abs(want)  # the declared net's differs
    # and a user written in that form is told so with its loss_fn too
    result = _check(gelu_tanh_gpt2.grads, "3-5-2", "gelu,identity", "huber", loss_fn=gelu_tanh_gpt2.loss)
    assert "layer 1's gelu is the tanh approximation; declare gelu_tanh" in result.diagnosis, result.diagnosis
