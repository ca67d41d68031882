"""Ground truth for the corpus from torch autograd (float64), never from bpcheck.

    errors(impl, case, seed) -> {"out": e, "dx": e, ...}
        e = max|mine - torch| / max(max|torch|, 1) per returned value (inf when the shape differs or the call raises),
        for the forward's output (or a loss layer's loss) and every gradient backward returns. Relative for values
        of size 1 and more, absolute below: a batchnorm gradient under a ones cotangent is exactly 0 in theory and
        ~1e-16 in both torch and numpy, and their ratio means nothing.
"""

from __future__ import annotations

import copy

import numpy as np

from .cases import ARGS, Case, cotangent, draw


def _dropout_mask(shape, config) -> np.ndarray:
    # the contract's mask (CS231n): seeded global RNG, keep where rand < p, scaled by 1/p
    np.random.seed(config["seed"])
    return (np.random.rand(*shape) < config["p"]) / config["p"]


def torch_forward(layer: str, t: dict, config: dict | None):
    import torch
    import torch.nn.functional as F

    x = t["x"]
    if layer == "affine":
        return x.reshape(x.shape[0], -1) @ t["w"] + t["b"]
    if layer == "relu":
        return torch.relu(x)
    if layer == "tanh":
        return torch.tanh(x)
    if layer == "conv2d":
        return F.conv2d(x, t["w"], t["b"], stride=config["stride"], padding=config["pad"])
    if layer == "maxpool2d":
        return F.max_pool2d(x, (config["pool_height"], config["pool_width"]), stride=config["stride"])
    if layer == "batchnorm":
        return F.batch_norm(x, None, None, t["gamma"], t["beta"], training=True, eps=config.get("eps", 1e-5))
    if layer == "layernorm":
        return F.layer_norm(x, tuple(x.shape[1:]), t["gamma"], t["beta"], eps=config.get("eps", 1e-5))
    if layer == "dropout":
        return x * torch.from_numpy(_dropout_mask(tuple(x.shape), config))
    if layer == "softmax_loss":
        return F.cross_entropy(x, t["y"])
    raise ValueError(f"unknown layer {layer!r}")


def reference(layer: str, arrays: dict, config: dict | None, dout: np.ndarray | None):
    """torch's output and gradients of <out, dout> (of the loss itself for softmax_loss), as numpy."""
    import torch

    t = {k: torch.tensor(v, dtype=torch.float64 if k != "y" else torch.int64, requires_grad=k != "y")
         for k, v in arrays.items()}
    out = torch_forward(layer, t, config)
    scalar = out if layer == "softmax_loss" else (out * torch.from_numpy(dout)).sum()
    grads = torch.autograd.grad(scalar, [t[a] for a in ARGS[layer]])
    return out.detach().numpy(), [g.numpy() for g in grads]


def rel(mine, ref) -> float:
    mine, ref = np.asarray(mine), np.asarray(ref)
    if mine.shape != ref.shape:
        return float("inf")
    return float(np.max(np.abs(mine - ref), initial=0.0) / max(np.max(np.abs(ref), initial=0.0), 1.0))


def run(impl, case: Case, seed: int):
    """The entry's output and gradients on `case` (config deep-copied: course forwards write into it)."""
    arrays = draw(case, seed)
    mine = {k: v.copy() for k, v in arrays.items()}
    config = copy.deepcopy(case.config)
    if impl.fn is not None:
        out, grads = impl.fn(mine["x"], mine["y"])
        return arrays, None, out, [grads]
    args = [mine[a] for a in ARGS[impl.layer]] + ([config] if config is not None else [])
    out, cache = impl.forward(*args)
    dout = cotangent(case, np.shape(out), seed)
    grads = impl.backward(dout.copy(), cache)
    grads = list(grads) if isinstance(grads, (tuple, list)) else [grads]
    return arrays, dout, out, grads


def errors(impl, case: Case, seed: int = 0) -> dict:
    names = ("out",) + tuple("d" + a for a in ARGS[impl.layer])
    try:
        arrays, dout, out, grads = run(impl, case, seed)
    except Exception:  # a bug that crashes on this case is as wrong as it gets
        return dict.fromkeys(names, float("inf"))
    ref_out, ref_grads = reference(impl.layer, arrays, case.config, dout)
    errs = {"out": rel(out, ref_out)}
    for i, name in enumerate(names[1:]):
        errs[name] = rel(grads[i], ref_grads[i]) if i < len(grads) else float("inf")
    return errs


def _run_autograd(entry, arrays: dict, case: Case, seed: int):
    fn = entry.load()
    inputs = [arrays[a] for a in entry.args]
    if entry.framework == "torch":
        import torch

        t = [torch.tensor(a, requires_grad=True) for a in inputs]
        out = fn.apply(*t)
        dout = cotangent(case, tuple(out.shape), seed)
        grads = torch.autograd.grad(out, t, grad_outputs=torch.from_numpy(dout))
        return dout, out.detach().numpy(), [g.numpy() for g in grads]
    import jax

    jax.config.update("jax_enable_x64", True)  # process-wide, as bpcheck's own jax reference does
    out, vjp = jax.vjp(fn, *[jax.numpy.asarray(a) for a in inputs])
    dout = cotangent(case, tuple(out.shape), seed)
    return dout, np.asarray(out), [np.asarray(g) for g in vjp(jax.numpy.asarray(dout))]


def autograd_errors(entry, case: Case, seed: int = 0) -> dict:
    """errors() for a torch.autograd.Function or jax.custom_vjp entry (manifest.Autograd), in float64."""
    arrays = draw(case, seed)
    dout, out, grads = _run_autograd(entry, arrays, case, seed)
    ref_out, ref_grads = reference(entry.layer, arrays, case.config, dout)
    errs = {"out": rel(out, ref_out)}
    errs.update({name: rel(g, r) for name, g, r in zip(entry.grads, grads, ref_grads)})
    return errs
