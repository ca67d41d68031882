"""PyTorch autograd as a gradient producer: the same MLP as the engine, in float64.

z_l = a_{l-1} @ W_l + b_l, a_l = act_l(z_l), loss on a_L (or on z_L for the from-logits losses
bce and cross_entropy, as in bpcheck.ops). retain_grad() on every z_l and hidden a_l gives the
per-layer trace dz[l-1] = dL/dz_l and da[l-1] = dL/da_l next to dL/dW_l, dL/db_l and dL/dx.

torch is imported only when gradients() runs, so `import bpcheck` never needs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..ops import ELU_ALPHA, HUBER_DELTA, LEAKY_SLOPE, LOSS_RULES
from ..spec import ACTIVATIONS, LOSSES, Case, Gradients, split_activation

_tables: tuple[dict[str, Any], dict[str, Any]] | None = None
# Below this many multiply-adds in the largest matmul (batch x n_{l-1} x n_l), torch runs on one
# thread: its thread pool's wake-ups cost more than they save (measured on 200 small archs:
# mean 0.5 ms a case on one thread, 2.4-3.4 ms on two; see benchmarks/bench_references.py).
SMALL_WORK = 1 << 16


def _build_tables() -> tuple[dict[str, Any], dict[str, Any]]:
    """name -> torch function, once per process, keyed exactly by spec.ACTIVATIONS / spec.LOSSES.

    Each entry is chosen for its behaviour at the kinks, which must match bpcheck.ops.RULES:
    relu'(0) = 0 (threshold_backward uses z > 0), leaky_relu'(0) = 0.01 (z > 0 ? g : 0.01 g),
    elu'(0) = alpha (its backward uses z <= 0 -> alpha exp(z)). softplus is logaddexp(z, 0),
    not F.softplus, whose threshold=20 makes the gradient exactly 1 above z = 20 (the engine's
    is sigmoid(z)).
    """
    import torch
    import torch.nn.functional as F

    zero = torch.zeros((), dtype=torch.float64)
    activations = {
        "identity": lambda z: z,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "leaky_relu": lambda z: F.leaky_relu(z, LEAKY_SLOPE),
        "elu": lambda z: F.elu(z, alpha=ELU_ALPHA),
        "softplus": lambda z: torch.logaddexp(z, zero),
        "gelu": lambda z: F.gelu(z, approximate="tanh"),
        "softmax": lambda z: torch.softmax(z, dim=-1),
        "silu": F.silu,
    }
    # All reduction='mean'; bce and cross_entropy take logits (LOSS_RULES[...].from_logits).
    losses = {
        "mse": F.mse_loss,
        "bce": F.binary_cross_entropy_with_logits,
        # Probability targets: batch mean of -sum(y * log_softmax(z)), exact for rows not summing to 1.
        "cross_entropy": lambda z, y: -(y * F.log_softmax(z, dim=-1)).sum(dim=-1).mean(),
        "huber": lambda a, y: F.huber_loss(a, y, delta=HUBER_DELTA),
    }
    assert tuple(activations) == ACTIVATIONS and tuple(losses) == LOSSES
    return activations, losses


def _get_tables() -> tuple[dict[str, Any], dict[str, Any]]:
    global _tables
    if _tables is None:
        _tables = _build_tables()
    return _tables


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


def gradients(case: Case) -> Gradients:
    """torch autograd on case (cast to float64): loss, dL/dW_l, dL/db_l, dL/dx (batch, n_in), dz, da.

    All arrays come back as writable float64 numpy arrays with the engine's shapes.
    """
    case = case if case.dtype is np.float64 else case.astype(np.float64)
    sizes = case.arch.sizes
    with _threads_for(case.batch * max(m * n for m, n in zip(sizes, sizes[1:]))):
        return _autograd(case)


def _autograd(case: Case) -> Gradients:
    import torch

    activations, losses = _get_tables()
    arch, n = case.arch, case.arch.n_layers
    rule = LOSS_RULES[arch.loss]

    def leaf(arr: np.ndarray) -> Any:
        # torch.tensor copies, so the case's read-only arrays are never shared with torch.
        return torch.tensor(arr, dtype=torch.float64, requires_grad=True)

    params = {k: leaf(v) for k, v in case.params.items()}
    x = leaf(case.x)
    y = torch.tensor(case.y, dtype=torch.float64)
    zs, hidden = [], []
    a = x
    for layer, act in enumerate(arch.activations, start=1):
        z = a @ params[f"W{layer}"] + params[f"b{layer}"]
        z.retain_grad()
        zs.append(z)
        if layer == n and rule.from_logits:
            break  # the loss is fused with this activation and reads z_L
        base, slope = split_activation(act)
        a = activations[base](z) if slope is None else torch.nn.functional.leaky_relu(z, slope)  # 'leaky_relu:0.2'
        if layer < n:
            a.retain_grad()  # identity returns z itself; then dL/da_l = dL/dz_l, which is right
            hidden.append(a)
    out = zs[-1] if rule.from_logits else a
    loss = losses[arch.loss](out, y)
    if arch.weight_decay:  # the declared L2 term, lambda/2 sum ||W_l||^2 (spec.Arch.weight_decay)
        loss = loss + 0.5 * arch.weight_decay * sum((params[f"W{k}"] ** 2).sum() for k in range(1, n + 1))
    loss.backward()

    def numpy(t: Any) -> np.ndarray:
        return t.grad.detach().numpy()

    return Gradients(
        loss=float(loss.detach()),
        grads={k: numpy(p) for k, p in params.items()},
        dx=numpy(x),
        dz=tuple(numpy(z) for z in zs),
        da=tuple(numpy(h) for h in hidden),
        source="torch",
        meta={"dtype": "float64", "version": torch.__version__},
    )
