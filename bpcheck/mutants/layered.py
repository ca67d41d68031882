"""Layer mutants: the engine's backward with one layer's backward replaced by a bug, in a stack built for it.

    m = get("conv2d_kernel_flipped")
    check_case(case, producer=m.produce).label        # 'ENGINE', located at m.layer(case.arch)

Each bug is a registry BugShape (bpcheck.layers: what the diagnosis names for that kind) or one of the
generic classes that shipped in real kernels, written here as wrappers of a kind's right backward: the
upstream gradient assumed all ones, every row's gradient written to row 0 (only shows for batch >= 2),
a parameter's gradient left at zeros. A mutant plants its bug at one position (engine.backward's swap=)
of a stack template; the sweep builds stacks from the template with a seeded rng (draw_stack_case).

Where bpcheck should point: the planted layer, by position (its kind is in the case's arch). A bug in a
layer's params leads with that param ('gamma2'); a bug in its dL/dx shows first in dL/d(its input)
(the dout trace of the layer below, 'da{p-1}'), then in every gradient below it, so the template puts a
parameterised layer below the planted one (the baselines, which see only params and x, see it there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import engine
from ..layers import LAYERS
from ..layers.bugs import param_zeros, rows_to_row0, upstream_ones  # noqa: F401 (the catalog's wrappers)
from ..spec import Arch, Case, Gradients, init_params, split_key
from .catalog import Conditions, Mutant

Backward = Callable[..., tuple[np.ndarray, dict[str, np.ndarray]]]
Template = Callable[[np.random.Generator], tuple[tuple[int, ...], list[tuple[str, dict[str, Any]]]]]


def shape(kind: str, code: str) -> Backward:
    return LAYERS[kind].bug_shape(code).backward


@dataclass(frozen=True)
class StackConditions(Conditions):
    """A stack template (rng -> in_shape, layers), the position of the planted layer and the batch range."""

    template: Template | None = None
    position: int = 1
    says: str = ""   # what the stack must have, in words (a kind, a config)

    def describe(self) -> str:
        parts = [self.says] + ([f"batch >= {self.min_batch}"] if self.min_batch > 1 else [])
        return ", ".join(p for p in parts if p)


def draw_stack_case(cond: StackConditions, entropy: tuple[int, ...]) -> Case:
    """A float64 mse case on a stack from cond.template: params by init_params, x and y standard normal."""
    rng = np.random.default_rng(list(entropy))
    in_shape, layers = cond.template(rng)  # type: ignore[misc]
    arch = Arch.stack(in_shape, layers, "mse")
    batch = int(rng.integers(cond.min_batch, cond.max_batch + 1))
    params = init_params(arch, rng, "he")
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}  # no zero bias, no ones gamma
    x = rng.standard_normal((batch, *in_shape))
    y = rng.standard_normal((batch, *arch.shapes[-1]))
    return Case(arch, params, x, y)


def planted(position: int, backward: Backward, name: str) -> Callable[[Case], Gradients]:
    """engine.gradients with the layer at position running backward instead of its own."""
    def produce(case: Case) -> Gradients:
        out, caches = engine.forward(case.arch, case.params, case.x)
        g = engine.backward(case.arch, case.params, caches, case.targets, output=out, swap={position: backward})
        return Gradients(g.loss, g.grads, g.dx, g.dz, g.da, source=name, dout=g.dout)
    produce.__qualname__ = name
    return produce


# --- stack templates: a small image or vector input, the planted kind, a parameterised layer below it -------
def _img(rng, channels=(1, 2), size=(4, 6)) -> tuple[int, int, int]:
    return int(rng.choice(channels)), int(rng.integers(size[0], size[1] + 1)), int(rng.integers(size[0], size[1] + 1))


def _conv(rng, **extra) -> tuple[str, dict[str, Any]]:
    return "conv2d", {"out_channels": int(rng.integers(2, 4)), "kernel": int(rng.integers(2, 4)), **extra}


def _head(rng) -> list[tuple[str, dict[str, Any]]]:
    return [("flatten", {}), ("dense", {"n": int(rng.integers(1, 4))})]


def conv_head(rng, **conv):
    """conv2d (planted at 1) -> flatten -> dense."""
    return _img(rng), [_conv(rng, **conv), *_head(rng)]


def conv_then(*kinds: tuple[str, dict[str, Any]] | Callable) -> Template:
    """conv2d -> each kind (planted at 2) -> flatten -> dense; a kind may be a function of rng."""
    def template(rng):
        mid = [k(rng) if callable(k) else k for k in kinds]
        return _img(rng, size=(5, 7)), [("conv2d", {"out_channels": 2, "kernel": 2}), *mid, *_head(rng)]
    return template


def vector_then(kind: str, config: dict[str, Any], act: str = "tanh") -> Template:
    """dense -> kind (planted at 2) -> dense: a vector stack."""
    def template(rng):
        d = int(rng.integers(3, 6))
        return (int(rng.integers(2, 5)),), [("dense", {"n": d, "activation": act}), (kind, dict(config)),
                                             ("dense", {"n": int(rng.integers(1, 4))})]
    return template


def _key(local: str) -> Callable[[Arch], tuple[str, ...]]:
    return lambda arch: (local,)


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    backward: Callable[[], Backward]
    template: Template
    position: int
    located: int                # = position: the bug is in the layer's params; < position: in its dL/dx
    tensors: tuple[str, ...]    # local names of the planted layer's params that may lead the message
    says: str
    min_batch: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def _mutant(s: Spec) -> Mutant:
    cond = StackConditions(min_batch=s.min_batch, max_batch=max(s.min_batch, 4), template=s.template,
                           position=s.position, says=s.says)
    return Mutant(s.name, s.description, f"layer {s.position} ({s.says.split()[0]})",
                  planted(s.position, s.backward(), s.name), cond,
                  layer=lambda arch, k=s.position: k, tensors=lambda arch, s=s: _tensors(s, arch))


def _tensors(s: Spec, arch: Arch) -> tuple[str, ...]:
    """The tensors that may lead bpcheck's message: the planted layer's own params when the bug is in them,
    else (a wrong dL/dx) its input's gradient da{p-1} and every gradient below it (params of layers < p, x)."""
    if s.located == s.position:
        return tuple(f"{t}{s.position}" for t in s.tensors)
    below = tuple(k for k in arch.param_shapes() if split_key(k)[1] < s.position)
    return (f"da{s.position - 1}", *below, "x")


_CONV_HEAD = conv_head
_S2 = lambda rng: conv_head(rng, stride=2)  # noqa: E731
_P1 = lambda rng: (_img(rng), [("conv2d", {"out_channels": 2, "kernel": 2}), _conv(rng, padding=1), *_head(rng)])  # noqa: E731
_STRIDED = lambda rng: (_img(rng, size=(6, 8)), [("conv2d", {"out_channels": 2, "kernel": 2}),  # noqa: E731
                                                  _conv(rng, stride=2), *_head(rng)])

SPECS: tuple[Spec, ...] = (
    Spec("conv2d_kernel_flipped", LAYERS["conv2d"].bug_shape("kernel_flipped").says,
         lambda: shape("conv2d", "kernel_flipped"), _CONV_HEAD, 1, 1, ("W",), "conv2d first"),
    Spec("conv2d_padding_offset", LAYERS["conv2d"].bug_shape("padding_offset").says,
         lambda: shape("conv2d", "padding_offset"), _P1, 2, 1, ("W", "b"), "conv2d with padding 1 over a conv2d"),
    Spec("conv2d_stride_ignored", LAYERS["conv2d"].bug_shape("stride_ignored").says + " (only shows for stride 2)",
         lambda: shape("conv2d", "stride_ignored"), _STRIDED, 2, 1, ("W", "b"), "conv2d with stride 2 over a conv2d"),
    Spec("conv2d_db_channels_last", LAYERS["conv2d"].bug_shape("db_channels_last").says,
         lambda: shape("conv2d", "db_channels_last"), _CONV_HEAD, 1, 1, ("b",), "conv2d first"),
    Spec("conv2d_upstream_ones", "conv2d's dW and db computed as if dL/dy were all ones: the upstream gradient ignored",
         lambda: upstream_ones("conv2d"), _S2, 1, 1, ("W", "b"), "conv2d first (stride 2)"),
    Spec("conv2d_db_zeros", "conv2d's db never computed: the zeros it was allocated with are returned",
         lambda: param_zeros("conv2d", "b"), _CONV_HEAD, 1, 1, ("b",), "conv2d first"),
    Spec("maxpool2d_first_element", LAYERS["maxpool2d"].bug_shape("first_element").says,
         lambda: shape("maxpool2d", "first_element"), conv_then(("maxpool2d", {"kernel": 2})), 2, 1, ("W", "b"),
         "maxpool2d over a conv2d"),
    Spec("maxpool2d_overwrite", LAYERS["maxpool2d"].bug_shape("overwrite").says,
         lambda: shape("maxpool2d", "overwrite"), conv_then(("maxpool2d", {"kernel": 3, "stride": 1})), 2, 1, ("W", "b"),
         "maxpool2d (kernel 3, stride 1) over a conv2d"),
    Spec("avgpool2d_no_divide", LAYERS["avgpool2d"].bug_shape("no_divide").says,
         lambda: shape("avgpool2d", "no_divide"), conv_then(("avgpool2d", {"kernel": 2})), 2, 1, ("W", "b"),
         "avgpool2d over a conv2d"),
    Spec("avgpool2d_overwrite", LAYERS["avgpool2d"].bug_shape("overwrite").says,
         lambda: shape("avgpool2d", "overwrite"), conv_then(("avgpool2d", {"kernel": 2, "stride": 1})), 2, 1, ("W", "b"),
         "avgpool2d (kernel 2, stride 1) over a conv2d"),
    Spec("flatten_channels_last", LAYERS["flatten"].bug_shape("channels_last").says,
         lambda: shape("flatten", "channels_last"), conv_then(), 2, 1, ("W", "b"), "flatten over a conv2d"),
    Spec("activation_rows_to_row0", "the activation layer's backward writes every sample's dL/dx into row 0 "
         "(dx[0] for dx[n]): right only for batch 1", lambda: rows_to_row0("activation"),
         vector_then("activation", {"fn": "tanh"}, "identity"), 2, 1, ("W", "b"), "activation over a dense", 2),
    Spec("activation_derivative_dropped", LAYERS["activation"].bug_shape("derivative_dropped").says,
         lambda: shape("activation", "derivative_dropped"), vector_then("activation", {"fn": "sigmoid"}, "identity"),
         2, 1, ("W", "b"), "activation (sigmoid) over a dense"),
    Spec("batchnorm_no_variance_term", LAYERS["batchnorm"].bug_shape("no_variance_term").says,
         lambda: shape("batchnorm", "no_variance_term"), vector_then("batchnorm", {}), 2, 1, ("W", "b"),
         "batchnorm over a dense", 3),
    Spec("batchnorm_dgamma_no_xhat", LAYERS["batchnorm"].bug_shape("dgamma_no_xhat").says,
         lambda: shape("batchnorm", "dgamma_no_xhat"), vector_then("batchnorm", {}), 2, 2, ("gamma",),
         "batchnorm over a dense", 3),
    Spec("layernorm_ones_cotangent", LAYERS["layernorm"].bug_shape("ones_cotangent").says,
         lambda: shape("layernorm", "ones_cotangent"), vector_then("layernorm", {}), 2, 1, ("W", "b"),
         "layernorm over a dense"),
    Spec("layernorm_dbeta_zeros", "layernorm's dbeta never computed: the zeros it was allocated with are returned",
         lambda: param_zeros("layernorm", "beta"), vector_then("layernorm", {}), 2, 2, ("beta",),
         "layernorm over a dense"),
    Spec("dropout_no_rescale", LAYERS["dropout"].bug_shape("no_rescale").says,
         lambda: shape("dropout", "no_rescale"), vector_then("dropout", {"p": 0.3, "seed": 7}), 2, 1, ("W", "b"),
         "dropout (p 0.3) over a dense"),
    Spec("dense_db_mean", LAYERS["dense"].bug_shape("db_mean").says,
         lambda: shape("dense", "db_mean"), conv_then(), 3, 3, ("b",), "dense over a conv2d", 2),
)

LAYER_MUTANTS: tuple[Mutant, ...] = tuple(_mutant(s) for s in SPECS)
