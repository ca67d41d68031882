"""Each CNN layer kind's hand-written numpy forward+backward against torch autograd of its torch form, float64, the
layer shapes of a small CNN (conv-pool-conv-pool, batch 8), side by side in one run:

    python -m benchmarks.bench_cnn_layers [--rounds 200] [--seed 0]

Both sides compute y, dx and every param gradient from the same random cotangent; the median of `rounds` timed
steps is printed per kind, with numpy's time over torch's (torch on its default threads).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

# (kind, config, per-sample input shape): x (8, 3, 16, 16) -> conv 8 -> maxpool -> conv 16 -> avgpool -> flatten
LAYERS = (("conv2d", {"out_channels": 8, "kernel": 3, "padding": 1}, (3, 16, 16)),
          ("maxpool2d", {"kernel": 2}, (8, 16, 16)),
          ("conv2d", {"out_channels": 16, "kernel": 3, "padding": 1}, (8, 8, 8)),
          ("avgpool2d", {"kernel": 2}, (16, 8, 8)),
          ("flatten", {}, (16, 4, 4)))
BATCH = 8


def _median_us(step, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return 1e6 * float(np.median(times))


def _time(layer, config, in_shape, rng: np.random.Generator, rounds: int, torch) -> tuple[float, float]:
    """(numpy us, torch us) for one forward+backward of this layer."""
    config = layer.check_config(config, in_shape)
    params = {k: rng.standard_normal(s) for k, s in layer.param_shapes(config, in_shape).items()}
    x = rng.standard_normal((BATCH, *in_shape))
    dy = rng.standard_normal((BATCH, *layer.out_shape(config, in_shape)))

    def numpy_step():
        _, cache = layer.forward(config, params, x)
        layer.backward(config, params, cache, dy)

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tx, tdy = torch.tensor(x, requires_grad=True), torch.tensor(dy)

    def torch_step():
        torch.autograd.grad(layer.torch(config, tp, tx, torch), [tx, *tp.values()], tdy)

    return _median_us(numpy_step, rounds), _median_us(torch_step, rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    from bpcheck.layers import LAYERS as REGISTRY

    rng = np.random.default_rng(args.seed)
    print(f"{'layer':34} {'numpy us':>9} {'torch us':>9} {'numpy/torch':>11}")
    for kind, config, in_shape in LAYERS:
        ours, theirs = _time(REGISTRY[kind], config, in_shape, rng, args.rounds, torch)
        print(f"{kind + ' ' + 'x'.join(map(str, in_shape)):34} {ours:9.0f} {theirs:9.0f} {ours / theirs:11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
