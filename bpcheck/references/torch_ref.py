"""PyTorch autograd as a gradient producer: any stack, each layer in its own torch form, in float64.

The loop composes each layer's Layer.torch(config, params, x, torch) (bpcheck.layers), then the declared loss:
a dense layer is walked as its affine part and its activation (references/layered.py), so that z_l is a tensor
of its own and a from-logits loss (bce, cross_entropy) reads the last dense layer's z, fused with its sigmoid
or softmax as bpcheck.ops declares. retain_grad() on every layer's output gives the per-layer trace
dout[i-1] = dL/d(output of layer i) (None for an output the fused loss does not read); on an MLP also
dz[l-1] = dL/dz_l and da[l-1] = dL/da_l, next to dL/dW_l, dL/db_l and dL/dx. meta['forward'] holds the
forward values, (z or None, output) per layer, which the comparison's rounding model reads (compare/forward.py).

torch is imported only when gradients() runs, so `import bpcheck` never needs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..ops import HUBER_DELTA
from ..spec import LOSSES, Case, Gradients
from .layered import fused_input, is_mlp, macs, plan, targets, weight_keys

_losses: dict[str, Any] | None = None
# Below this many multiply-adds in the largest layer (batch x outputs x inputs per output), torch runs on one
# thread: its thread pool's wake-ups cost more than they save (measured on 200 small archs:
# mean 0.5 ms a case on one thread, 2.4-3.4 ms on two; see benchmarks/bench_references.py).
SMALL_WORK = 1 << 16


def _build_losses() -> dict[str, Any]:
    """loss name -> torch function, keyed exactly by spec.LOSSES, all reduction='mean'.

    bce and cross_entropy take logits (LOSS_RULES[...].from_logits). The activations are the layers'
    (bpcheck.layers.activation.torch_activation), chosen there for their behaviour at the kinks.
    """
    import torch.nn.functional as F

    losses = {
        "mse": F.mse_loss,
        "bce": F.binary_cross_entropy_with_logits,
        # Probability targets: batch mean of -sum(y * log_softmax(z)), exact for rows not summing to 1.
        "cross_entropy": lambda z, y: -(y * F.log_softmax(z, dim=-1)).sum(dim=-1).mean(),
        "huber": lambda a, y: F.huber_loss(a, y, delta=HUBER_DELTA),
    }
    assert tuple(losses) == LOSSES
    return losses


def _get_losses() -> dict[str, Any]:
    global _losses
    if _losses is None:
        _losses = _build_losses()
    return _losses


@contextmanager
def _threads_for(work: int) -> Iterator[None]:
    """One torch thread for small work, restored afterwards (torch's thread count is process-wide)."""
    import torch

    before = torch.get_num_threads()
    if work > SMALL_WORK or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def gradients(case: Case, dtype: str = "float64") -> Gradients:
    """torch autograd on case (cast to float64): loss, every param's gradient, dL/dx, the per-layer trace.

    All arrays come back as writable numpy arrays with the engine's shapes, float64. dtype="float32" runs
    the same loop in float32 on the float32 case instead: a correct float32 implementation, whose distance
    to the float64 reference samples the rounding a float32 producer makes (compare/probe.py).
    """
    case = case if case.dtype.__name__ == dtype else case.astype(dtype)
    with _threads_for(macs(case.arch, case.batch)):
        return _autograd(case, dtype)


def _autograd(case: Case, dtype: str = "float64") -> Gradients:
    import torch

    kind = getattr(torch, dtype)

    from ..layers import LAYERS

    arch, steps = case.arch, plan(case.arch)
    fused = fused_input(arch)

    def leaf(arr: np.ndarray) -> Any:
        # torch.tensor copies, so the case's read-only arrays are never shared with torch.
        return torch.tensor(arr, dtype=kind, requires_grad=True)

    params = {k: leaf(v) for k, v in case.params.items()}
    x = leaf(case.x)
    y = torch.tensor(targets(case), dtype=kind)
    zs, outs, values = [], [], []  # values: (z or None, output) per layer, the forward the comparison reads
    a = x
    for step in steps:
        local = {name: params[key] for name, key in step.keys.items()}
        last = step.position == len(steps)
        if step.kind == "dense":
            z = LAYERS["dense"].torch(step.affine, local, a, torch)
            z.retain_grad()
            zs.append(z)
            if last and fused:
                with torch.no_grad():  # a_L, for the forward values only: the loss reads z_L
                    values.append((z, LAYERS["activation"].torch({"fn": step.act}, {}, z, torch)))
                a = z  # the loss is fused with this activation and reads z_L
                outs.append(None)
                break
            a = LAYERS["activation"].torch({"fn": step.act}, {}, z, torch)
            values.append((z, a))
        elif last and fused:  # an activation layer holding the fused sigmoid or softmax: the loss reads its input
            with torch.no_grad():
                values.append((None, LAYERS[step.kind].torch(step.config, local, a, torch)))
            outs.append(None)
            break
        else:
            a = LAYERS[step.kind].torch(step.config, local, a, torch)
            values.append((None, a))
        a.retain_grad()  # identity returns its input itself; then both traces are the same gradient, which is right
        outs.append(a)
    loss = _get_losses()[arch.loss](a, y)
    if arch.weight_decay:  # the declared L2 term, lambda/2 sum ||W||^2 over every 'W' param (spec.Arch.weight_decay)
        loss = loss + 0.5 * arch.weight_decay * sum((params[k] ** 2).sum() for k in weight_keys(arch))
    loss.backward()

    def value(t: Any) -> np.ndarray:
        return t.detach().numpy().astype(np.float64)  # a copy

    def numpy(t: Any) -> np.ndarray:
        # A tensor the loss does not depend on has no .grad: its gradient is 0.
        return np.zeros(tuple(t.shape)) if t.grad is None else t.grad.detach().numpy().astype(np.float64, copy=False)

    dout = tuple(None if o is None else numpy(o) for o in outs)
    mlp = is_mlp(arch)
    return Gradients(
        loss=float(loss.detach()),
        grads={k: numpy(p) for k, p in params.items()},
        dx=numpy(x),
        dz=tuple(numpy(z) for z in zs) if mlp else None,
        da=dout[:-1] if mlp else None,
        dout=dout,
        source="torch",
        meta={"dtype": dtype, "version": torch.__version__,
              "forward": tuple((None if z is None else value(z), value(o)) for z, o in values)},
    )
