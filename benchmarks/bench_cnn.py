"""A full per-coordinate FD check of a small CNN against torch gradcheck's slow mode (issue 15: >= 10x).

    python -m benchmarks.bench_cnn [--rounds 3] [--seed 0]

The net: conv2d(8, 3x3) relu maxpool(2) conv2d(32, 3x3) relu maxpool(2) flatten dense(10) + softmax
cross-entropy, input (1, 28, 28), batch 8, float64, 10,426 params (biases and weights drawn nonzero).
bpcheck: fd_stack.layered_gradients over every param coordinate (Richardson, error estimate and kink flag per
coordinate, through the layers' reference forwards). torch: torch.autograd.gradcheck (slow mode, its defaults
eps=1e-6, atol=1e-5, rtol=1e-3) of the same loss as a function of the flat params, through the layers' torch
forms. Both on 1 thread (numpy's BLAS pinned by threadpoolctl), each in its own process, interleaved and
rotated. Accuracy, after the timing: each numerical gradient against torch autograd's.
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np

from benchmarks.section import Goal, Section, speedup

BPCHECK = "bpcheck fd_stack (every coordinate)"
GRADCHECK = "torch gradcheck (slow)"
IN_SHAPE = (1, 28, 28)
BATCH = 8
LAYERS = (("conv2d", {"out_channels": 8, "kernel": 3}), ("activation", {"fn": "relu"}), ("maxpool2d", {"kernel": 2}),
          ("conv2d", {"out_channels": 32, "kernel": 3}), ("activation", {"fn": "relu"}), ("maxpool2d", {"kernel": 2}),
          ("flatten", {}), ("dense", {"n": 10, "activation": "softmax"}))
LOSS = "cross_entropy"
TORCH_EPS = 1e-6  # gradcheck's default


def make_cnn(seed: int = 0):
    """(layers with defaults filled, params 'W1'.., x (8, 1, 28, 28), one-hot targets (8, 10))."""
    from bpcheck.layers import LAYERS as KINDS

    rng = np.random.default_rng(seed)
    layers, params, shape = [], {}, IN_SHAPE
    for i, (kind, config) in enumerate(LAYERS, start=1):
        config = KINDS[kind].check_config(config, shape)
        layers.append((kind, config))
        for name, value in KINDS[kind].init(config, shape, rng, np.float64).items():
            params[f"{name}{i}"] = value + 0.05 * rng.standard_normal(value.shape)
        shape = tuple(KINDS[kind].out_shape(config, shape))
    x = rng.standard_normal((BATCH, *IN_SHAPE))
    y = np.eye(shape[0])[rng.integers(0, shape[0], size=BATCH)]
    return layers, params, x, y


def bpcheck_step(seed: int):
    from benchmarks.nets import pin_threads
    from bpcheck.references.fd_stack import layered_gradients

    pin_threads()
    layers, params, x, y = make_cnn(seed)

    def step() -> float:
        t = time.perf_counter()
        layered_gradients(layers, IN_SHAPE, LOSS, params, x, y, include_x=False)
        return time.perf_counter() - t

    return step


def torch_loss(seed: int):
    """The CNN's loss as a function of one flat float64 tensor of params (keys in make_cnn's order)."""
    import torch

    from benchmarks.nets import TORCH_THREADS
    from bpcheck.layers import LAYERS as KINDS
    from bpcheck.references.fd_stack_model import logits_head

    torch.set_num_threads(TORCH_THREADS)
    layers, params, x, y = make_cnn(seed)
    shapes = {k: v.shape for k, v in params.items()}
    xt, yt = torch.tensor(x), torch.tensor(y)
    head = logits_head(layers, LOSS)

    def loss(flat):
        parts, at = {}, 0
        for key, shape in shapes.items():
            size = int(np.prod(shape))
            parts[key] = flat[at:at + size].reshape(shape)
            at += size
        a, shape = xt, IN_SHAPE
        for i, (kind, config) in enumerate(head, start=1):
            local = {name: parts[f"{name}{i}"] for name in KINDS[kind].param_shapes(config, shape)}
            a = KINDS[kind].torch(config, local, a, torch)
            shape = tuple(KINDS[kind].out_shape(config, shape))
        return -(yt * torch.nn.functional.log_softmax(a, dim=-1)).sum(dim=-1).mean()

    flat = torch.tensor(np.concatenate([v.ravel() for v in params.values()]))
    return loss, flat


def gradcheck_step(seed: int):
    import torch

    loss, flat = torch_loss(seed)
    flat.requires_grad_(True)

    def step() -> float:
        t = time.perf_counter()
        torch.autograd.gradcheck(loss, (flat,))
        return time.perf_counter() - t

    return step


def accuracy(seed: int) -> list[str]:
    """Max abs and norm-relative error of each numerical gradient against torch autograd's (every coordinate)."""
    import torch

    from bpcheck.references.fd_stack import layered_gradients

    loss, flat = torch_loss(seed)
    leaf = flat.clone().requires_grad_(True)
    loss(leaf).backward()
    exact = leaf.grad.numpy()
    layers, params, x, y = make_cnn(seed)
    fd = layered_gradients(layers, IN_SHAPE, LOSS, params, x, y, include_x=False)
    ours = np.concatenate([fd.grads[k].ravel() for k in params])
    within = all(np.all((np.abs(fd.grads[k] - g.reshape(params[k].shape)) <= fd.error[k]) | fd.kink[k])
                 for k, g in zip(params, np.split(exact, np.cumsum([v.size for v in params.values()])[:-1])))
    theirs = np.empty_like(exact)
    with torch.no_grad():
        for i in range(flat.numel()):
            orig = flat[i].item()
            flat[i] = orig + TORCH_EPS
            up = loss(flat).item()
            flat[i] = orig - TORCH_EPS
            down = loss(flat).item()
            flat[i] = orig
            theirs[i] = (up - down) / (2 * TORCH_EPS)
    kinks = int(sum(v.sum() for v in fd.kink.values()))

    def cells(est):
        return f"{np.abs(est - exact).max():.1e} | {np.linalg.norm(est - exact) / np.linalg.norm(exact):.1e}"

    return ["| contender | max abs err | norm-rel err |", "|---|---:|---:|",
            f"| {BPCHECK} | {cells(ours)} |", f"| {GRADCHECK}'s central difference | {cells(theirs)} |", "",
            f"bpcheck's error estimate covers its actual error on every coordinate not marked a kink: {within} "
            f"({kinks} kinks marked; {fd.meta['evaluations']} loss evaluations, {fd.meta['retried']} retried)."]


def run(rounds: int = 3, seed: int = 0) -> Section:
    from benchmarks.interleave import interleave, table
    from benchmarks.run import _load

    section = Section("CNN. Full per-coordinate FD check of a small CNN against torch gradcheck (slow mode)")
    section.lines += [__doc__.split("\n\n", 2)[2].strip(), ""]
    setups = {BPCHECK: functools.partial(bpcheck_step, seed), GRADCHECK: functools.partial(gradcheck_step, seed)}
    timings = interleave(setups, rounds=rounds, rotate=True)
    ratio = speedup(timings, BPCHECK, GRADCHECK)
    section.lines += [f"{rounds} interleaved round(s), {_load()}:", "",
                      table(timings, baseline=GRADCHECK, unit=1.0, unit_name="s"), "",
                      f"bpcheck is **{ratio:.1f}x** faster than gradcheck slow mode on the CNN.", ""]
    section.goals.append(Goal("full FD check of a 10k-param CNN vs gradcheck slow", ">= 10x faster", f"{ratio:.1f}x",
                              ratio >= 10))
    section.lines += ["Accuracy against torch autograd (every param coordinate):", "", *accuracy(seed)]
    return section


def main(argv: list[str] | None = None) -> Section:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    section = run(args.rounds, args.seed)
    print(section.markdown())
    for goal in section.goals:
        print(f"goal: {goal.name}: {goal.target}, measured {goal.value} ({'met' if goal.met else 'NOT met'})")
    return section


if __name__ == "__main__":
    main()
