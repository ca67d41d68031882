"""Whole-network gradient functions composed from the layer corpus (tests/layer_corpus/): code bpcheck did not write.

    fn = compose(STACKS["cnn_pool"], {"conv2d": "conv_im2col"})       # grad_fn(params, x, y) for check_gradients
    fn = compose(STACKS["cnn_pool"], {}, bug=("conv_kernel_flipped", 1))

A stack here is an Arch.stack (the contract `check --arch-json` gives) whose every layer the corpus has: dense
with activation identity (the corpus's affine), activation relu, conv2d, maxpool2d, batchnorm, layernorm,
flatten (the reshape every course net writes between conv and affine), and for cross_entropy a last dense with
softmax, whose loss and dL/dscores the corpus's softmax_loss gives. The composition is the course's: forward
through each layer keeping its cache, the loss's gradient, then each layer's backward from the output down.
The corpus layers take their configs in the course's keys (stride/pad, pool_height/pool_width/stride,
mode/eps), translated here from the arch's. reduction 'sum' makes the user's loss the sum over the batch (and
the outputs, for mse): its gradient is the declared loss's times a factor, a convention.
dropout is left out: the corpus draws its mask from np.random.seed with keep probability p, bpcheck's from
default_rng(seed) with drop probability p, so the two nets are different functions (not a gradient bug).
"""

from __future__ import annotations

import numpy as np

from bpcheck.spec import Arch
from tests.layer_corpus.manifest import by_name

STACKS: dict[str, Arch] = {
    "cnn_pool": Arch.stack((2, 6, 6), [("conv2d", {"out_channels": 3, "kernel": 3, "padding": 1}),
                                       ("activation", {"fn": "relu"}), ("maxpool2d", {"kernel": 2}),
                                       ("flatten", {}), ("dense", {"n": 3})], "mse"),
    "cnn_two_conv": Arch.stack((1, 7, 7), [("conv2d", {"out_channels": 2, "kernel": 2}), ("activation", {"fn": "relu"}),
                                           ("conv2d", {"out_channels": 2, "kernel": 3, "stride": 2, "padding": 1}),
                                           ("flatten", {}), ("dense", {"n": 3, "activation": "softmax"})],
                               "cross_entropy"),
    "cnn_bn_overlap": Arch.stack((2, 5, 5), [("conv2d", {"out_channels": 3, "kernel": 3, "padding": 1}), ("batchnorm", {}),
                                             ("activation", {"fn": "relu"}), ("maxpool2d", {"kernel": 2, "stride": 1}),
                                             ("flatten", {}), ("dense", {"n": 2})], "mse"),
    "mlp_bn": Arch.stack((5,), [("dense", {"n": 5}), ("batchnorm", {}), ("activation", {"fn": "relu"}),
                                ("dense", {"n": 3, "activation": "softmax"})], "cross_entropy"),
    "mlp_ln": Arch.stack((4,), [("dense", {"n": 5}), ("layernorm", {}), ("activation", {"fn": "relu"}),
                                ("dense", {"n": 2})], "mse"),
    "pool_first": Arch.stack((2, 4, 4), [("maxpool2d", {"kernel": 2}), ("conv2d", {"out_channels": 2, "kernel": 2}),
                                         ("flatten", {}), ("dense", {"n": 2})], "mse"),
}

# The corpus's correct layers, by kind: each style a composition can pick. Left out: the float32-inside ones
# (right to float32 precision only, and the drawn cases include float64) and softmax_loss_unshifted ("fine for
# moderate logits": on the huge regime's logits its exp overflows and the gradient is nan, which check reports).
STYLES: dict[str, tuple[str, ...]] = {
    "dense": ("affine", "affine_loops", "affine_flat_cache"),
    "relu": ("relu", "relu_from_out", "relu_mask"),
    "conv2d": ("conv_naive", "conv_im2col"),
    "maxpool2d": ("maxpool_naive", "maxpool_fast"),
    "batchnorm": ("batchnorm_graph", "batchnorm_compact"),
    "batchnorm4d": ("spatial_batchnorm",),
    "layernorm": ("layernorm", "layernorm_loops", "layernorm_transposed", "layernorm_any"),
    "softmax_loss": ("softmax_loss", "softmax_loss_loops"),
}


def style_key(kind: str, config: dict, in_shape: tuple[int, ...]) -> str:
    if kind == "activation":
        return config["fn"]
    if kind == "batchnorm" and len(in_shape) == 3:
        return "batchnorm4d"
    return kind


def styles(index: int) -> dict[str, str]:
    """The index-th choice of a correct implementation per kind (cycling through each kind's styles)."""
    return {key: names[index % len(names)] for key, names in STYLES.items()}


def course_config(kind: str, config: dict) -> tuple:
    if kind == "conv2d":
        return ({"stride": config["stride"], "pad": config["padding"]},)
    if kind == "maxpool2d":
        kh, kw = config["kernel"] if isinstance(config["kernel"], (list, tuple)) else (config["kernel"],) * 2
        return ({"pool_height": kh, "pool_width": kw, "stride": config["stride"]},)
    if kind == "batchnorm":
        return ({"mode": "train", "eps": config["eps"]},)
    if kind == "layernorm":
        return ({"eps": config["eps"]},)
    return ()


_PARAMS = {"dense": ("W", "b"), "conv2d": ("W", "b"), "batchnorm": ("gamma", "beta"), "layernorm": ("gamma", "beta")}


def compose(arch: Arch, chosen: dict[str, str] | None = None, *, bug: tuple[str, int] | None = None,
            reduction: str = "mean", with_x: bool = False):
    """grad_fn(params, x, y) -> {key: gradient} for arch, from the corpus layers named in chosen (by style key;
    default the first style of each), with the corpus bug `bug = (name, position)` planted at that layer.
    cross_entropy takes y as integer labels (check_gradients(targets='labels')); mse takes y rows."""
    names = {**styles(0), **(chosen or {})}
    steps = []
    for position, ((kind, config), shape) in enumerate(zip(arch.layers, arch.shapes), start=1):
        last_softmax = position == len(arch.layers) and config.get("activation") == "softmax"
        impl = None
        if kind != "flatten":
            impl = by_name(names[style_key(kind, config, shape)])
        if bug is not None and bug[1] == position:
            impl = by_name(bug[0])
        steps.append((kind, config, position, impl, last_softmax))
    loss_impl = by_name(bug[0] if bug is not None and bug[1] == 0 else names["softmax_loss"])

    def grads(params, x, y):
        out, caches = x, []
        for kind, config, position, impl, _ in steps:
            if kind == "flatten":
                caches.append(out.shape)
                out = out.reshape(out.shape[0], -1)
                continue
            own = tuple(params[f"{name}{position}"] for name in _PARAMS.get(kind, ()))
            out, cache = impl.forward(out, *own, *course_config(kind, config))
            caches.append(cache)
        n = out.shape[0]
        if arch.loss == "cross_entropy":
            _, dout = loss_impl.fn(out, y)
            dout = dout * (n if reduction == "sum" else 1)
        else:
            dout = 2.0 * (out - y) / (1 if reduction == "sum" else out.size)
        found = {}
        for (kind, _, position, impl, _), cache in zip(reversed(steps), reversed(caches)):
            if kind == "flatten":
                dout = dout.reshape(cache)
                continue
            back = impl.backward(dout, cache)
            back = back if isinstance(back, tuple) else (back,)
            dout = back[0]
            for name, g in zip(_PARAMS.get(kind, ()), back[1:]):
                found[f"{name}{position}"] = g
        if with_x:
            found["x"] = dout
        return found

    return grads


def loss_fn(arch: Arch, chosen: dict[str, str] | None = None, reduction: str = "mean"):
    """loss(params, x, y): the user's own loss of the same composition (its forward only), summed or averaged."""
    grads_names = {**styles(0), **(chosen or {})}

    def loss(params, x, y):
        out = x
        for position, ((kind, config), shape) in enumerate(zip(arch.layers, arch.shapes), start=1):
            if kind == "flatten":
                out = out.reshape(out.shape[0], -1)
                continue
            impl = by_name(grads_names[style_key(kind, config, shape)])
            own = tuple(params[f"{name}{position}"] for name in _PARAMS.get(kind, ()))
            out, _ = impl.forward(out, *own, *course_config(kind, config))
        n = out.shape[0]
        if arch.loss == "cross_entropy":
            value, _ = by_name(grads_names["softmax_loss"]).fn(out, y)
            return float(value) * (n if reduction == "sum" else 1)
        sq = float(np.sum((out - y) ** 2))
        return sq if reduction == "sum" else sq / out.size

    return loss
