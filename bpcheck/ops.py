"""Activation and loss rules: each forward with its backward right beside it.

Every rule works on the last axis (activations) or the last two axes (losses: batch, outputs),
so a leading axis of perturbed copies, as finite differences use, broadcasts for free.
Conventions follow torch and jax: relu'(0) = 0, leaky_relu'(0) = 0.01, gelu the exact z Phi(z) (torch's
nn.GELU() default; gelu_tanh is the tanh approximation), and the losses' reduction='mean'.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .spec import ACTIVATIONS, LOSSES, PARAMETERS, split_activation

Array = np.ndarray
LEAKY_SLOPE = PARAMETERS["leaky_relu"][1]  # the default; an arch may give another ('leaky_relu:0.2')
ELU_ALPHA = 1.0
HUBER_DELTA = 1.0
GELU_C = math.sqrt(2.0 / math.pi)
GELU_K = 0.044715
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class WrongForm:
    """A derivative people write by mistake, as the diagnosis names it: "layer 1 computes tanh' as 1 - a".

    code: a short key ('one_minus_a'); written: how the wrong derivative reads; backward: what it computes,
    with Activation.backward's signature, so a checker can recompute a whole backward with it in one layer.
    """

    code: str
    written: str
    backward: Callable[[Array, Array, Array], Array]


@dataclass(frozen=True)
class Activation:
    """a = forward(z); backward(z, a, dL/da) -> dL/dz, reading only what the forward made.

    kink: not twice differentiable at z = 0, so a finite difference must not straddle 0.
    slopes: the one-sided derivatives (left, right) at 0; at_zero: the declared subgradient.
    derivative: how the right derivative reads; wrong: the wrong forms people write for it (diagnosis).
    """

    name: str
    forward: Callable[[Array], Array]
    backward: Callable[[Array, Array, Array], Array]
    kink: bool = False
    slopes: tuple[float, float] | None = None
    at_zero: float | None = None
    derivative: str = ""
    wrong: tuple[WrongForm, ...] = ()

    def wrong_form(self, code: str) -> WrongForm:
        return next(w for w in self.wrong if w.code == code)

    def regions(self, z: Array) -> Array:
        """-1, 0 or +1 by the side of the kink that z lies on; a change of region is a crossing."""
        return np.sign(z).astype(np.int8)


def _sigmoid(z: Array) -> Array:
    # exp(-|z|) never overflows, so both tails are exact to the last ulp.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


# The in-place steps below write into arrays these functions just made: the values are those of the
# out-of-place forms bit for bit, without a fresh (K, B, n) temporary per step (the FD reference calls
# these on many perturbed copies at once; its loss evaluation ran 15-35% faster).
def _softmax(z: Array) -> Array:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def _log_softmax(z: Array) -> Array:
    shifted = z - z.max(axis=-1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return shifted


@functools.cache
def _ndtr() -> Callable[[Array], Array]:
    """scipy.special.ndtr, the normal cdf Phi, imported at first use: importing scipy.special takes longer
    than importing the rest of bpcheck (0.25-0.5 s against ~0.1 s, python -X importtime), and only gelu needs it."""
    from scipy.special import ndtr

    return ndtr


def normal_cdf(z: Array) -> Array:
    """Phi(z) to the last ulps in both tails (no 1 + erf cancellation), in z's dtype."""
    return _ndtr()(z)


def _normal_pdf(z: Array) -> Array:
    return np.exp(-0.5 * z * z) * np.asarray(INV_SQRT_2PI, dtype=z.dtype)


def _gelu(z: Array) -> Array:
    return z * normal_cdf(z)


def _gelu_backward(z: Array, a: Array, g: Array) -> Array:
    return g * (normal_cdf(z) + z * _normal_pdf(z))


def _gelu_tanh_t(z: Array) -> Array:
    return np.tanh(GELU_C * (z + GELU_K * z**3))


def _gelu_tanh(z: Array) -> Array:
    return 0.5 * z * (1.0 + _gelu_tanh_t(z))


def _gelu_tanh_backward(z: Array, a: Array, g: Array) -> Array:
    t = _gelu_tanh_t(z)
    return g * (0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_K * z * z))


def _elu(z: Array) -> Array:
    return np.where(z > 0, z, ELU_ALPHA * np.expm1(np.minimum(z, 0)))


def _gelu_sigmoid_form(z: Array, a: Array, g: Array) -> Array:
    # d/dz of the other gelu approximation, z * sigmoid(1.702 z), while the forward uses the tanh form.
    s = _sigmoid(1.702 * z)
    return g * (s + 1.702 * z * s * (1 - s))


# The wrong gelu derivatives people write: Phi(z) alone (the product rule's z phi(z) dropped), Phi(z) + phi(z)
# (its z dropped), and the derivative of the other form (tanh for gelu, exact for gelu_tanh), which the
# diagnosis also names as a whole-layer mix-up of the two forms ("declare gelu_tanh").
_GELU_WRONG = (
    WrongForm("phi_only", "Φ(z), the product rule's z φ(z) term dropped", lambda z, a, g: g * normal_cdf(z)),
    WrongForm("phi_plus_pdf", "Φ(z) + φ(z), the z of z φ(z) dropped",
              lambda z, a, g: g * (normal_cdf(z) + _normal_pdf(z))),
    WrongForm("tanh_form", "the derivative of the tanh approximation (gelu_tanh's)", _gelu_tanh_backward),
)


def _silu_backward(z: Array, a: Array, g: Array) -> Array:
    # d/dz z σ(z) = σ(z) + z σ(z) (1 - σ(z)) = σ(z) + a (1 - σ(z)), reusing the forward's a.
    s = _sigmoid(z)
    return g * (s + a * (1 - s))


def _sigmoid_of_a(z: Array, a: Array, g: Array) -> Array:
    s = _sigmoid(a)
    return g * (s * (1 - s))


W = WrongForm


def _leaky(slope: float, name: str = "leaky_relu") -> Activation:
    return Activation(name, lambda z: np.where(z > 0, z, slope * z), lambda z, a, g: np.where(z > 0, g, slope * g),
                      kink=True, slopes=(slope, 1.0), at_zero=slope, derivative=f"1 where z > 0, else {slope:g}",
                      wrong=(W("slope_dropped", "1 where z > 0, else 0, relu's: the leaky slope dropped",
                               lambda z, a, g: g * (z > 0)),
                             W("output", "a, the activation itself instead of its derivative", lambda z, a, g: g * a)))


RULES: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("identity", lambda z: z, lambda z, a, g: g, derivative="1"),
        Activation("sigmoid", _sigmoid, lambda z, a, g: g * (a * (1 - a)), derivative="a (1 - a)",
                   wrong=(W("of_a", "σ(a) (1 - σ(a)), σ' applied to the activation a instead of z", _sigmoid_of_a),
                          W("z_one_minus_z", "z (1 - z)", lambda z, a, g: g * (z * (1 - z))))),
        Activation("tanh", np.tanh, lambda z, a, g: g * (1 - a * a), derivative="1 - a²",
                   wrong=(W("one_minus_a", "1 - a", lambda z, a, g: g * (1 - a)),
                          W("one_minus_z2", "1 - z²", lambda z, a, g: g * (1 - z * z)),
                          W("of_a", "1 - tanh(a)², tanh' applied to the activation a instead of z",
                            lambda z, a, g: g * (1 - np.tanh(a) ** 2)))),
        Activation("relu", lambda z: np.maximum(z, 0), lambda z, a, g: g * (z > 0),
                   kink=True, slopes=(0.0, 1.0), at_zero=0.0, derivative="1 where z > 0, else 0",
                   wrong=(W("output", "a, the activation itself instead of its derivative", lambda z, a, g: g * a),)),
        _leaky(LEAKY_SLOPE),
        # elu with alpha 1 has equal one-sided slopes, but its second derivative jumps at 0.
        Activation("elu", _elu, lambda z, a, g: np.where(z > 0, g, g * (a + ELU_ALPHA)),
                   kink=True, slopes=(ELU_ALPHA, 1.0), at_zero=ELU_ALPHA, derivative="1 where z > 0, else a + 1",
                   wrong=(W("a", "1 where z > 0, else a, the + 1 dropped", lambda z, a, g: np.where(z > 0, g, g * a)),)),
        Activation("softplus", lambda z: np.logaddexp(z, 0), lambda z, a, g: g * _sigmoid(z), derivative="σ(z)",
                   wrong=(W("of_a", "σ(a), from the output a instead of z", lambda z, a, g: g * _sigmoid(a)),
                          W("output", "a, the activation itself instead of its derivative", lambda z, a, g: g * a))),
        Activation("gelu", _gelu, _gelu_backward, derivative="Φ(z) + z φ(z)", wrong=_GELU_WRONG),
        # The softmax backward is the Jacobian-vector product J^T g = a * (g - <g, a>).
        Activation("softmax", _softmax, lambda z, a, g: a * (g - (g * a).sum(axis=-1, keepdims=True)),
                   derivative="the full Jacobian, a (g - Σ g a)",
                   wrong=(W("diagonal", "a (1 - a), the Jacobian's diagonal only", lambda z, a, g: g * a * (1 - a)),)),
        Activation("silu", lambda z: z * _sigmoid(z), _silu_backward, derivative="σ(z) + a (1 - σ(z))",
                   wrong=(W("sigmoid_only", "σ(z), the product rule's z σ'(z) term forgotten",
                            lambda z, a, g: g * _sigmoid(z)),
                          W("no_sigmoid_term", "z σ(z) (1 - σ(z)), the product rule's σ(z) term forgotten",
                            lambda z, a, g: g * (a * (1 - _sigmoid(z)))))),
        Activation("gelu_tanh", _gelu_tanh, _gelu_tanh_backward, derivative="the derivative of its tanh form",
                   wrong=(W("sigmoid_form", "the derivative of the other approximation, z σ(1.702 z)", _gelu_sigmoid_form),
                          W("exact_form", "Φ(z) + z φ(z), the exact gelu's (declare gelu)", _gelu_backward))),
    )
}
assert tuple(RULES) == ACTIVATIONS


@functools.lru_cache(maxsize=256)
def rule(act: str) -> Activation:
    """The rule of an arch's activation, parameter included: RULES['tanh'] for 'tanh', a leaky relu of slope
    0.2 for 'leaky_relu:0.2'. Use it, not RULES[act], wherever act comes from an Arch."""
    base, value = split_activation(act)
    return RULES[base] if value is None or value == LEAKY_SLOPE else _leaky(value, act)


@dataclass(frozen=True)
class Loss:
    """value = forward(out, y) over the last two axes; backward(out, y) -> dL/dout.

    from_logits: out is the output layer's z (the loss is fused with its activation, so the
    engine skips that activation's backward); otherwise out is the output activation a_L.
    kink: the loss is not twice differentiable where regions(out, y) changes.
    """

    name: str
    forward: Callable[[Array, Array], Array]
    backward: Callable[[Array, Array], Array]
    from_logits: bool = False
    kink: bool = False

    def regions(self, out: Array, y: Array) -> Array:
        return (np.abs(out - y) > HUBER_DELTA).astype(np.int8)


def _count(out: Array) -> int:
    return out.shape[-1] * out.shape[-2]


def _mean2(v: Array) -> Array:
    return v.mean(axis=(-2, -1))


def _bce(z: Array, y: Array) -> Array:
    # binary_cross_entropy_with_logits: max(z, 0) - z*y + log(1 + exp(-|z|)).
    return _mean2(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))


def _cross_entropy(z: Array, y: Array) -> Array:
    terms = _log_softmax(z)
    if terms.shape == np.broadcast_shapes(terms.shape, y.shape) and terms.dtype == np.result_type(terms, y):
        terms *= y
    else:
        terms = y * terms
    return -terms.sum(axis=-1).mean(axis=-1)


def _cross_entropy_backward(z: Array, y: Array) -> Array:
    # d/dz of -sum(y * log_softmax(z)) is softmax(z) * sum(y) - y: exact for rows not summing to 1.
    return (_softmax(z) * y.sum(axis=-1, keepdims=True) - y) / z.shape[-2]


def _huber(a: Array, y: Array) -> Array:
    r = np.abs(a - y)
    return _mean2(np.where(r <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (r - 0.5 * HUBER_DELTA)))


LOSS_RULES: dict[str, Loss] = {
    rule.name: rule
    for rule in (
        Loss("mse", lambda a, y: _mean2((a - y) ** 2), lambda a, y: (2.0 / _count(a)) * (a - y)),
        Loss("bce", _bce, lambda z, y: (_sigmoid(z) - y) / _count(z), from_logits=True),
        Loss("cross_entropy", _cross_entropy, _cross_entropy_backward, from_logits=True),
        Loss("huber", _huber, lambda a, y: np.clip(a - y, -HUBER_DELTA, HUBER_DELTA) / _count(a), kink=True),
    )
}
assert tuple(LOSS_RULES) == LOSSES

def weight_decay(lam: float, params: dict[str, Array]) -> tuple[float, dict[str, Array]]:
    """The declared loss's L2 term lam/2 sum_l ||W_l||^2 (spec.Arch.weight_decay) and its gradient lam W_l."""
    weights = {k: v for k, v in params.items() if k.startswith("W")}
    value = 0.5 * lam * sum(float(np.vdot(w, w)) for w in weights.values())
    return value, {k: lam * w for k, w in weights.items()}


sigmoid = _sigmoid
softmax = _softmax
log_softmax = _log_softmax
