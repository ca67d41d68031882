"""The engine-style mutants: real backprop bugs, each one line of the backward changed.

Every entry names the bug, says what a person wrote and why it is wrong, where it lives (the layer
and tensor bpcheck should name, or None when the bug is spread over every layer) and the
conditions that reveal it, from which the sweep draws its cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..ops import RULES
from ..spec import LOSS_OUTPUT, Arch, Case, Gradients
from . import backward as bw

Producer = Callable[[Case], Gradients]


@dataclass(frozen=True)
class Conditions:
    """What a case needs for the bug to show: arguments to strategies.architectures and cases."""

    min_depth: int = 1
    max_depth: int = 3
    min_width: int = 1
    max_width: int = 4
    min_batch: int = 1
    max_batch: int = 6
    activations: tuple[str, ...] | None = None   # None: every activation
    losses: tuple[str, ...] | None = None        # None: every loss
    regimes: tuple[str, ...] = ("ordinary",)
    square: int | None = None                    # every size equal to this width (a W_l that can be transposed)

    def describe(self) -> str:
        parts = []
        if self.min_batch > 1:
            parts.append(f"batch >= {self.min_batch}")
        if self.min_depth > 1:
            parts.append(f"depth >= {self.min_depth}")
        if self.activations:
            parts.append("activations " + "/".join(self.activations))
        if self.losses:
            parts.append("loss " + "/".join(self.losses))
        if self.regimes != ("ordinary",):
            parts.append("regime " + "/".join(self.regimes))
        if self.square:
            parts.append(f"square layers ({self.square} units)")
        elif self.min_width > 1:
            parts.append(f"width >= {self.min_width}")
        return ", ".join(parts) or "any case"


@dataclass(frozen=True)
class Mutant:
    """A named bug. layer(arch) is the first layer bpcheck should report (from the output down) and
    tensors(arch) the tensors that may lead its message; both None when the bug is in every layer.
    style: "engine" (a Case -> Gradients producer, checked by check_case) or "user" (a user-style
    gradient function, checked by bpcheck.byo).
    """

    name: str
    description: str
    where: str
    produce: Producer
    conditions: Conditions = field(default_factory=Conditions)
    layer: Callable[[Arch], int] | None = None
    tensors: Callable[[Arch], tuple[str, ...]] | None = None
    style: str = "engine"
    named: str = ""   # words the diagnosis must contain to name the bug ('' when the catalog expects none)

    def expected(self, arch: Arch) -> tuple[int | None, tuple[str, ...]]:
        return (None if self.layer is None else self.layer(arch),
                () if self.tensors is None else self.tensors(arch))


def _top(arch: Arch) -> int:
    return arch.n_layers


def _last_with(acts: tuple[str, ...]) -> Callable[[Arch], int]:
    """The last layer using one of acts whose derivative the engine applies (not fused into the loss)."""
    def find(arch: Arch) -> int:
        fused = arch.n_layers if arch.loss in LOSS_OUTPUT else None
        return max(i for i, a in enumerate(arch.activations, 1) if a in acts and i != fused)
    return find


def _wb(layer: Callable[[Arch], int], which: str = "Wb") -> Callable[[Arch], tuple[str, ...]]:
    return lambda arch: tuple(f"{p}{layer(arch)}" for p in which)


def _at(layer_of: Callable[[Arch], int], hook: Callable, default: Callable) -> Callable:
    """A hook that misbehaves only in the layer layer_of(arch) and is the engine's line elsewhere."""
    def chosen(step, layer, *rest):
        return (hook if layer == layer_of(step.case.arch) else default)(step, layer, *rest)
    return chosen


def _scale_loss(factor: Callable[[bw.Step], float]) -> Callable:
    return lambda step, rule, out, y: rule.backward(out, y) * factor(step)


def _middle(arch: Arch) -> int:
    return arch.n_layers - 1


def _hidden(arch: Arch) -> int:
    return arch.n_layers - 1


def _one(arch: Arch) -> int:
    return 1


def _clipped_sigmoid(z, a, g):
    # "for stability" the derivative is set to 0 once the unit saturates (|z| > 5).
    return g * np.where(np.abs(z) > 5, 0.0, a * (1 - a))


def _named(act: str, code: str) -> str:
    return f"computes {act}' as {RULES[act].wrong_form(code).written}"


def _wrong(act: str, code: str) -> Callable:
    """One of the wrong derivative forms kept beside the activation's rule (ops.RULES[act].wrong), which
    the diagnosis names: the catalog plants the same forms it reads."""
    return RULES[act].wrong_form(code).backward


ENGINE_MUTANTS: tuple[Mutant, ...] = (
    Mutant("mse_missing_2", "mse backward written (a - y) / N: the 2 of d/da (a - y)^2 forgotten",
           "loss", bw.variant(loss=lambda s, r, a, y: (a - y) / (a.shape[-1] * a.shape[-2]), name="mse_missing_2"),
           Conditions(losses=("mse",))),
    Mutant("missing_1_over_batch", "the loss gradient not divided by the batch size (the loss is a mean)",
           "loss", bw.variant(loss=_scale_loss(lambda s: s.case.batch), name="missing_1_over_batch"),
           Conditions(min_batch=2)),
    Mutant("batch_mean_twice", "1/batch applied twice: in the loss gradient and again in every dW and db",
           "all", bw.variant(weight=lambda s, k, c, dz: c.a_prev.T @ dz / s.case.batch,
                             bias=lambda s, k, dz: dz.mean(axis=0), name="batch_mean_twice"),
           Conditions(min_batch=2)),
    Mutant("bias_averaged", "db = dz.mean(axis=0) while dW = a_prev.T @ dz is summed over the batch",
           "every b", bw.variant(bias=lambda s, k, dz: dz.mean(axis=0), name="bias_averaged"),
           Conditions(min_batch=2), _top, _wb(_top, "b"), named="the bias gradient is averaged over the batch"),
    Mutant("target_minus_output", "error = y - output, the tutorial's sign for `W += lr * grad`, returned as dL/dout",
           "loss", bw.variant(loss=_scale_loss(lambda s: -1.0), name="target_minus_output")),
    Mutant("sigmoid_prime_of_a", "sigmoid'(a) = s(a)(1 - s(a)) with a = sigmoid(z) already: the derivative applied twice",
           "sigmoid layers", bw.with_rule("sigmoid", _wrong("sigmoid", "of_a"), "sigmoid_prime_of_a"),
           Conditions(min_depth=2, activations=("sigmoid",), losses=("mse", "huber", "bce")),
           _last_with(("sigmoid",)), _wb(_last_with(("sigmoid",))), named=_named("sigmoid", "of_a")),
    Mutant("tanh_prime_one_minus_tanh", "tanh' written 1 - tanh(z) instead of 1 - tanh(z)^2",
           "tanh layers", bw.with_rule("tanh", _wrong("tanh", "one_minus_a"), "tanh_prime_one_minus_tanh"),
           Conditions(min_depth=2, activations=("tanh",), losses=("mse", "huber")),
           _last_with(("tanh",)), _wb(_last_with(("tanh",))), named=_named("tanh", "one_minus_a")),
    Mutant("leaky_slope_dropped", "leaky_relu backward written like relu's: the 0.01 slope for z < 0 dropped",
           "leaky_relu layers", bw.with_rule("leaky_relu", _wrong("leaky_relu", "slope_dropped"), "leaky_slope_dropped"),
           Conditions(min_depth=2, activations=("leaky_relu",), losses=("mse", "huber", "cross_entropy")),
           _last_with(("leaky_relu",)), _wb(_last_with(("leaky_relu",))), named=_named("leaky_relu", "slope_dropped")),
    Mutant("softplus_from_output", "softplus' = sigmoid(a), computed from the output a = softplus(z) instead of z",
           "softplus layers", bw.with_rule("softplus", _wrong("softplus", "of_a"), "softplus_from_output"),
           Conditions(min_depth=2, activations=("softplus",), losses=("mse", "huber", "bce")),
           _last_with(("softplus",)), _wb(_last_with(("softplus",))), named=_named("softplus", "of_a")),
    Mutant("elu_prime_a", "elu' for z < 0 written as a instead of a + alpha (= exp(z))",
           "elu layers", bw.with_rule("elu", _wrong("elu", "a"), "elu_prime_a"),
           Conditions(min_depth=2, activations=("elu",), losses=("mse", "huber", "bce")),
           _last_with(("elu",)), _wb(_last_with(("elu",))), named=_named("elu", "a")),
    Mutant("gelu_other_approximation", "gelu_tanh forward (the tanh form), backward of the sigmoid form z*s(1.702z)",
           "gelu_tanh layers", bw.with_rule("gelu_tanh", _wrong("gelu_tanh", "sigmoid_form"), "gelu_other_approximation"),
           Conditions(min_depth=2, activations=("gelu_tanh",), losses=("mse", "huber", "bce")),
           _last_with(("gelu_tanh",)), _wb(_last_with(("gelu_tanh",))), named=_named("gelu_tanh", "sigmoid_form")),
    Mutant("softmax_elementwise", "softmax backward taken element-wise, g * a (1 - a): the off-diagonal terms dropped",
           "softmax output", bw.with_rule("softmax", _wrong("softmax", "diagonal"), "softmax_elementwise"),
           Conditions(max_depth=1, min_width=2, activations=("softmax",), losses=("mse",)),
           _last_with(("softmax",)), _wb(_last_with(("softmax",))), named=_named("softmax", "diagonal")),
    Mutant("sigmoid_prime_clipped", "sigmoid' set to 0 once |z| > 5 'for stability': wrong on saturated units",
           "sigmoid layers", bw.with_rule("sigmoid", _clipped_sigmoid, "sigmoid_prime_clipped"),
           Conditions(min_depth=2, activations=("sigmoid",), losses=("mse", "bce"), regimes=("saturating",)),
           _last_with(("sigmoid",)), _wb(_last_with(("sigmoid",)))),
    Mutant("missing_prime_hidden", "the hidden layer's act' forgotten: dz = da in layer L-1",
           "layer L-1", bw.variant(act=_at(_hidden, lambda s, k, r, z, a, g: g, bw.act_grad), name="missing_prime_hidden"),
           Conditions(min_depth=2, activations=("sigmoid", "tanh", "softplus")), _hidden, _wb(_hidden),
           named="is missing in layer"),
    Mutant("missing_prime_output", "the output act' forgotten with mse: dz_L = a - y as if it were fused",
           "layer L", bw.variant(act=_at(_top, lambda s, k, r, z, a, g: g, bw.act_grad), name="missing_prime_output"),
           Conditions(activations=("sigmoid", "tanh"), losses=("mse", "huber")), _top, _wb(_top), named="is missing in layer"),
    Mutant("w_not_transposed", "the pass-back of layer L written dz @ W instead of dz @ W.T (runs when W is square)",
           "layer L pass-back", bw.variant(back=_at(_top, lambda s, k, dz, w: dz @ w, bw.pass_back),
                                           name="w_not_transposed"),
           Conditions(min_depth=2, square=3, activations=("tanh", "sigmoid", "identity"), losses=("mse", "huber")),
           _middle, _wb(_middle), named="instead of W"),
    Mutant("dw_transposed", "dW1 = dz.T @ a_prev (the transpose; it fits when W1 is square)",
           "W1", bw.variant(weight=_at(_one, lambda s, k, c, dz: dz.T @ c.a_prev, bw.weight_grad), name="dw_transposed"),
           Conditions(square=3, losses=("mse", "huber")), _one, _wb(_one, "W"), named="dW1 transposed"),
    Mutant("dw_from_preactivation", "dW_L = z_{L-1}.T @ dz: the previous layer's z cached where its a was meant",
           "W_L", bw.variant(weight=_at(_top, lambda s, k, c, dz: s.caches[k - 2].z.T @ dz, bw.weight_grad),
                             name="dw_from_preactivation"),
           Conditions(min_depth=2, activations=("sigmoid", "tanh", "softplus", "relu")), _top, _wb(_top, "W")),
    Mutant("loop_skips_middle", "for l in range(L-2, 0, -1) after the output layer: layer L-1 keeps zero dW, db",
           "layer L-1", bw.variant(visit=lambda s, k: k != s.n - 1, name="loop_skips_middle"),
           Conditions(min_depth=3), _middle, _wb(_middle)),
    Mutant("bias_sign_flipped", "db1 = -dz.sum(axis=0): a sign flip in the first bias",
           "b1", bw.variant(bias=_at(_one, lambda s, k, dz: -dz.sum(axis=0), bw.bias_grad), name="bias_sign_flipped"),
           Conditions(), _one, _wb(_one, "b")),
    Mutant("bias_wrong_axis", "db = dz.sum(axis=1): summed over units, not the batch",
           "every b", bw.variant(bias=lambda s, k, dz: dz.sum(axis=1), name="bias_wrong_axis"),
           Conditions(min_batch=2), _top, _wb(_top, "b")),
    Mutant("batch_one_only", "dW = outer(a_prev.sum(0), dz.sum(0)): right for batch 1 only",
           "every W", bw.variant(weight=lambda s, k, c, dz: np.outer(c.a_prev.sum(0), dz.sum(0)), name="batch_one_only"),
           Conditions(min_batch=2), _top, _wb(_top, "W")),
    Mutant("ce_forgets_y", "cross-entropy backward softmax(z) / batch: the - y forgotten",
           "loss", bw.variant(loss=lambda s, r, z, y: RULES["softmax"].forward(z) / z.shape[-2], name="ce_forgets_y"),
           Conditions(losses=("cross_entropy",))),
    Mutant("bce_on_logits", "bce backward (z - y) / N: the logits used where sigmoid(z) was meant",
           "loss", bw.variant(loss=lambda s, r, z, y: (z - y) / (z.shape[-1] * z.shape[-2]), name="bce_on_logits"),
           Conditions(losses=("bce",))),
    Mutant("huber_not_clipped", "huber backward (a - y) / N without the clip at delta: right only for small residuals",
           "loss", bw.variant(loss=lambda s, r, a, y: (a - y) / (a.shape[-1] * a.shape[-2]), name="huber_not_clipped"),
           Conditions(activations=("identity", "tanh"), losses=("huber",), regimes=("huge",))),
    Mutant("weight_decay_in_grad", "dW += 1e-4 * W (L2 weight decay) added to the gradient but not to the loss",
           "every W", bw.variant(weight=lambda s, k, c, dz: c.a_prev.T @ dz + 1e-4 * s.case.params[f"W{k}"],
                                 name="weight_decay_in_grad"),
           Conditions(), _top, _wb(_top, "W")),
)


def float16_inside(case: Case) -> Gradients:
    """The engine run in float16 ("mixed precision") and cast back: about 3 significant digits."""
    from dataclasses import replace

    from .. import engine

    half = {k: v.astype(np.float16) for k, v in case.params.items()}
    _, caches = engine.forward(case.arch, half, case.x.astype(np.float16))
    g = engine.backward(case.arch, half, caches, case.y.astype(np.float16))
    dt = case.dtype
    cast = lambda t: None if t is None else tuple(v.astype(dt) for v in t)  # noqa: E731
    return replace(g, grads={k: v.astype(dt) for k, v in g.grads.items()}, dx=g.dx.astype(dt),
                   dz=cast(g.dz), da=cast(g.da), source="float16_inside")


ENGINE_MUTANTS += (
    Mutant("float16_inside", "params and data cast to float16 for the backward, the gradient cast back",
           "all", float16_inside, Conditions()),
)


def _user_mutants() -> tuple[Mutant, ...]:
    from . import user

    fixed = Conditions(min_depth=2, max_depth=2, square=3, min_batch=4, max_batch=4, activations=("tanh",),
                       losses=("mse",))
    return (
        Mutant("stale_cache", "the forward pass memoised per architecture: later batches reuse the first one's "
               "activations", "all", user.as_producer(user.StaleCache(), "stale_cache"), fixed, style="user"),
        Mutant("grads_accumulate", "one gradient buffer added into on every call and never zeroed (a forgotten "
               "zero_grad)", "all", user.as_producer(user.Accumulates(), "grads_accumulate"), Conditions(),
               style="user"),
        Mutant("params_updated_in_place", "the caller's params updated in place (params -= 0.1 * grad) inside the "
               "gradient function", "all", user.as_producer(user.update_in_place, "params_updated_in_place"),
               Conditions(), style="user"),
        Mutant("x_normalised_in_place", "the batch centred in place (x -= x.mean(0)) before the forward",
               "all", user.as_producer(user.normalise_x_in_place, "x_normalised_in_place"), Conditions(min_batch=2),
               style="user"),
    )


USER_MUTANTS: tuple[Mutant, ...] = _user_mutants()
