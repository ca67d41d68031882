"""The activation layer: a = act(z) elementwise (softmax over the sample's one axis), no params.

The engine's forward and backward are ops.rule(fn)'s, the same rules the dense layer fuses. This module also
keeps, once for every layer that applies an activation: the framework forms (which torch or jax function
computes each activation, chosen for its behaviour at the kinks, as the references' tables choose it), an
independent numpy forward for finite differences, the kink pattern and the wrong derivatives as bug shapes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from .. import ops
from ..spec import ACTIVATIONS, SpecError, canonical_activation, split_activation
from .base import Array, BugShape, Config, Layer, Params, Shape
from .registry import check_keys, register

KINKED = tuple(name for name in ACTIVATIONS if ops.RULES[name].kink)


def activation_name(value: Any, kind: str) -> str:
    """The canonical spelling of an activation a layer's config names; a SpecError names a bad one."""
    if not isinstance(value, str):
        raise SpecError(f"{kind}: activation {value!r} is not a name: choose from {', '.join(ACTIVATIONS)}")
    return canonical_activation(value)


# --- the framework forms: one function per activation, the kinks as ops.RULES declares them ---------------------

def torch_activation(act: str, z: Any, torch: Any) -> Any:
    """act(z) in torch. relu'(0) = 0 (threshold_backward uses z > 0), leaky_relu'(0) = slope, elu'(0) = alpha;
    softplus is logaddexp(z, 0), not F.softplus, whose threshold=20 makes the gradient exactly 1 above 20."""
    F = torch.nn.functional
    base, slope = split_activation(act)
    if base == "leaky_relu":
        return F.leaky_relu(z, ops.LEAKY_SLOPE if slope is None else slope)
    table = {
        "identity": lambda: z,
        "sigmoid": lambda: torch.sigmoid(z),
        "tanh": lambda: torch.tanh(z),
        "relu": lambda: torch.relu(z),
        "elu": lambda: F.elu(z, alpha=ops.ELU_ALPHA),
        "softplus": lambda: torch.logaddexp(z, torch.zeros((), dtype=z.dtype)),
        "gelu": lambda: F.gelu(z),  # nn.GELU()'s default: the exact z Phi(z)
        "softmax": lambda: torch.softmax(z, dim=-1),
        "silu": lambda: F.silu(z),
        "gelu_tanh": lambda: F.gelu(z, approximate="tanh"),
    }
    return table[base]()


def jax_activation(act: str, z: Any, jax: Any) -> Any:
    """act(z) in jax. relu and leaky_relu by `z > 0` (jax.nn.leaky_relu uses z >= 0, which gives 1 at 0);
    jax.nn.elu's branch z > 0 gives elu'(0) = alpha; gelu and gelu_tanh are jax's own exact and tanh forms."""
    jnp = jax.numpy
    base, slope = split_activation(act)
    if base == "leaky_relu":
        return jnp.where(z > 0, z, (ops.LEAKY_SLOPE if slope is None else slope) * z)
    table = {
        "identity": lambda: z,
        "sigmoid": lambda: jax.nn.sigmoid(z),
        "tanh": lambda: jnp.tanh(z),
        "relu": lambda: jnp.where(z > 0, z, 0.0),
        "elu": lambda: jax.nn.elu(z, alpha=ops.ELU_ALPHA),
        "softplus": lambda: jnp.logaddexp(z, 0.0),
        # jax's default is the tanh form: the exact one must be asked for (0.5 z erfc(-z/sqrt 2) inside).
        "gelu": lambda: jax.nn.gelu(z, approximate=False),
        "softmax": lambda: jax.nn.softmax(z, axis=-1),
        "silu": lambda: jax.nn.silu(z),
        # jax's own tanh-form gelu, as written: z * sigmoid(2u) is the same function but rounds differently
        # (1e-162 where tanh(u) is already -1 and the engine and torch give exactly 0), a false REFERENCE.
        "gelu_tanh": lambda: jax.nn.gelu(z, approximate=True),
    }
    return table[base]()


# --- the independent numpy forward (finite differences evaluate this, never ops.RULES) ----------------------------

def _half_tanh(z: Array) -> Array:
    # sigma(z) = (1 + tanh(z/2)) / 2: no exp, so no overflow in either tail.
    return 0.5 + 0.5 * np.tanh(0.5 * z)


@functools.cache
def _erfc() -> Any:
    from scipy.special import erfc  # at first use, as ops does with ndtr: scipy.special is slow to import

    return erfc


def _reference_softmax(z: Array) -> Array:
    shifted = z - z.max(axis=-1, keepdims=True)
    return np.exp(shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True)))


def reference_activation(act: str, z: Array) -> Array:
    """act(z), written apart from ops.RULES (another formula where one exists at the same accuracy)."""
    base, slope = split_activation(act)
    if base == "leaky_relu":
        return z * np.where(z > 0, 1.0, ops.LEAKY_SLOPE if slope is None else slope)
    if base == "identity":
        return z
    if base == "sigmoid":
        return _half_tanh(z)
    if base == "tanh":
        return np.tanh(z)
    if base == "relu":
        return np.where(z > 0, z, 0.0)
    if base == "elu":
        return np.where(z > 0, z, ops.ELU_ALPHA * np.expm1(np.where(z > 0, 0.0, z)))
    if base == "softplus":
        return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
    if base == "gelu":  # erfc where ops uses ndtr: another function of scipy's, as accurate in both tails
        return 0.5 * z * _erfc()(-z * np.sqrt(0.5))
    if base == "gelu_tanh":
        return z * (0.5 + 0.5 * np.tanh(ops.GELU_C * z * (1.0 + ops.GELU_K * z * z)))
    if base == "softmax":
        return _reference_softmax(z)
    if base == "silu":
        return z * _half_tanh(z)
    raise AssertionError(f"no reference for activation {act!r}")


def activation_pattern(act: str, z: Array) -> Array | None:
    """The side of the kink each z lies on, or None for a smooth activation."""
    rule = ops.rule(act)
    return rule.regions(z) if rule.kink else None


def wrong_derivative_shapes(key: str, kind: str, backward_from: Any) -> tuple[BugShape, ...]:
    """One BugShape per wrong derivative in ops.RULES, for a layer whose config[key] names its activation.

    backward_from(params, cache, dz) -> (dx, grads) finishes the layer's backward from dL/dz, and cache has
    the activation's input and output as .z and .a; the bug shape computes dz with the wrong derivative. It
    applies where config[key] is that activation (leaky_relu of any slope: the wrong form comes from the
    config's own rule).
    """
    def shape(name: str, wrong: ops.WrongForm) -> BugShape:
        def backward(config: Config, params: Params, cache: Any, dy: Array) -> tuple[Array, Params]:
            return backward_from(params, cache, ops.rule(config[key]).wrong_form(wrong.code).backward(cache.z, cache.a, dy))

        return BugShape(f"{name}_{wrong.code}", f"{kind} computes {name}' as {wrong.written}", backward,
                        lambda config, in_shape: split_activation(config[key])[0] == name)

    return tuple(shape(name, wrong) for name, rule in ops.RULES.items() for wrong in rule.wrong)


# --- the activation layer ----------------------------------------------------------------------------------------

def check_config(config: Mapping[str, Any], in_shape: Shape) -> Config:
    check_keys("activation", config, ("fn",))
    if "fn" not in config:
        raise SpecError(f"activation: config {dict(config)!r} names no function: give {{'fn': 'relu'}} "
                        f"(one of {', '.join(ACTIVATIONS)})")
    fn = activation_name(config["fn"], "activation")
    if split_activation(fn)[0] == "softmax" and len(in_shape) != 1:
        raise SpecError(f"activation: softmax on per-sample shape {in_shape} is ambiguous: put a flatten before it "
                        f"(softmax runs over a 1-D sample)")
    return {"fn": fn}


class Cache(NamedTuple):
    z: Array  # the layer's input
    a: Array  # its output


def forward(config: Config, params: Params, x: Array) -> tuple[Array, Cache]:
    a = ops.rule(config["fn"]).forward(x)
    return a, Cache(x, a)


def backward(config: Config, params: Params, cache: Cache, dy: Array) -> tuple[Array, Params]:
    return ops.rule(config["fn"]).backward(cache.z, cache.a, dy), {}


def draw_config(rng: np.random.Generator, in_shape: Shape) -> Config:
    names = [n for n in ACTIVATIONS if len(in_shape) == 1 or n != "softmax"]
    fn = str(names[int(rng.integers(len(names)))])
    if fn == "leaky_relu" and rng.random() < 0.5:
        fn = "leaky_relu:0.2"
    return {"fn": fn}


ACTIVATION = register(Layer(
    kind="activation",
    check_config=check_config,
    param_shapes=lambda config, in_shape: {},
    out_shape=lambda config, in_shape: tuple(in_shape),
    init=lambda config, in_shape, rng, dtype: {},
    forward=forward,
    backward=backward,
    torch=lambda config, params, x, torch: torch_activation(config["fn"], x, torch),
    jax=lambda config, params, x, jax: jax_activation(config["fn"], x, jax),
    draw_config=draw_config,
    reference=lambda config, params, x: reference_activation(config["fn"], x),
    pattern=lambda config, params, x: activation_pattern(config["fn"], x),
    bug_shapes=(
        BugShape("derivative_dropped", "activation passes dL/da through as dL/dz, its derivative dropped",
                 lambda config, params, cache, dy: (dy, {}), lambda config, in_shape: config["fn"] != "identity"),
        *wrong_derivative_shapes("fn", "activation", lambda params, cache, dz: (dz, {})),
    ),
))
