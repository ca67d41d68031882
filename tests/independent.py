"""Small gradient functions written the way course code writes them, independently of bpcheck's engine
(no import of bpcheck.engine or bpcheck.ops): per-sample column-vector loops, vectorised row code,
half-SSE and summed losses, float32 internals, log(1 - a) written directly. Correct ones, and the
same with one planted bug (`bug=`), for tests of the user's loss_fn as an oracle."""

from __future__ import annotations

import numpy as np

LEAKY = 0.01


def act(name, z):
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        return np.where(z > 0, z, LEAKY * z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    return z


def act_prime(name, z, a):
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, LEAKY)
    if name == "sigmoid":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a ** 2
    return np.ones_like(z)


def forward(arch, p, x, dtype=np.float64):
    a = x.astype(dtype)
    zs, acts = [], [a]
    for k, name in enumerate(arch.activations, start=1):
        z = a @ p[f"W{k}"].astype(dtype) + p[f"b{k}"].astype(dtype)
        a = act(name, z)
        zs.append(z)
        acts.append(a)
    return zs, acts


def half_sse_loss(arch, p, x, y):
    """0.5 * sum (a - y)^2 over everything: the course-notes loss (the gradient has no 2/N)."""
    _, acts = forward(arch, p, x)
    return 0.5 * float(np.sum((acts[-1] - y) ** 2))


def half_sse_loss32(arch, p, x, y):
    """half_sse_loss with float32 internals: a coarse loss, whose finite differences resolve ~1e-3 of a gradient."""
    _, acts = forward(arch, p, x, np.float32)
    return 0.5 * float(np.sum((acts[-1] - y.astype(np.float32)) ** 2))


def half_sse_grads(arch, p, x, y, bug=""):
    """Vectorised backprop of half_sse_loss, in bpcheck's row layout. bug='relu1': layer 1's act' left out;
    bug='leaky_slope1': layer 1's leaky_relu' written (z > 0), relu's: the leaky slope dropped."""
    zs, acts = forward(arch, p, x)
    d = acts[-1] - y
    out = {}
    for k in range(arch.n_layers, 0, -1):
        if bug == "leaky_slope1" and k == 1:
            d = d * (zs[0] > 0)
        elif not (bug == "relu1" and k == 1):
            d = d * act_prime(arch.activations[k - 1], zs[k - 1], acts[k])
        out[f"W{k}"] = acts[k - 1].T @ d
        out[f"b{k}"] = d.sum(axis=0)
        d = d @ p[f"W{k}"].T
    return out


def bce_loss_direct(arch, p, x, y):
    """Mean binary cross-entropy written directly, log(1 - a) and all: loses precision at saturation."""
    zs, _ = forward(arch, p, x)
    a = 1 / (1 + np.exp(-zs[-1]))
    return float(-np.mean(y * np.log(a) + (1 - y) * np.log(1 - a)))


def bce_grads_loop(arch, p, x, y, bug=""):
    """Per-sample column-vector loop (Nielsen style), summed then divided by the element count.
    bug='W1T': dW1 accumulated as the transpose's layout mistake (dz a^T instead of a dz^T, then .T twice)."""
    L = arch.n_layers
    Ws = [p[f"W{k}"].T for k in range(1, L + 1)]             # (n_l, n_{k-1})
    bs = [p[f"b{k}"].reshape(-1, 1) for k in range(1, L + 1)]
    gW = [np.zeros_like(W) for W in Ws]
    gb = [np.zeros_like(b) for b in bs]
    n = y.size
    for xi, yi in zip(x, y):
        a = xi.reshape(-1, 1)
        acts, zs = [a], []
        for W, b, name in zip(Ws, bs, arch.activations):
            z = W @ a + b
            a = act(name, z)
            zs.append(z)
            acts.append(a)
        delta = (1 / (1 + np.exp(-zs[-1])) - yi.reshape(-1, 1)) / n
        for k in range(L - 1, -1, -1):
            if k < L - 1:
                delta = (Ws[k + 1].T @ delta) * act_prime(arch.activations[k], zs[k], acts[k + 1])
            gW[k] += delta @ acts[k].T
            gb[k] += delta
    if bug == "W1T":
        gW[0] = gW[0] * (1 + 0.5 * (np.arange(gW[0].size).reshape(gW[0].shape) % 2))
    return {**{f"W{k + 1}": gW[k].T for k in range(L)}, **{f"b{k + 1}": gb[k].ravel() for k in range(L)}}


def mse_loss32(arch, p, x, y):
    """Mean squared error with float32 internals (the gradient is float64): a coarse loss."""
    _, acts = forward(arch, p, x, np.float32)
    return float(np.mean((acts[-1] - y.astype(np.float32)) ** 2))


def mse_grads(arch, p, x, y, bug=""):
    """Vectorised backprop of the mean squared error. bug='relu_mask_of_a': relu' taken as (a >= 0) from the
    activation, which is always 1 (the mask from the wrong array)."""
    zs, acts = forward(arch, p, x)
    d = 2 * (acts[-1] - y) / y.size
    out = {}
    for k in range(arch.n_layers, 0, -1):
        name = arch.activations[k - 1]
        if bug == "relu_mask_of_a" and name == "relu":
            d = d * (acts[k] >= 0)
        else:
            d = d * act_prime(name, zs[k - 1], acts[k])
        out[f"W{k}"] = acts[k - 1].T @ d
        out[f"b{k}"] = d.sum(axis=0)
        d = d @ p[f"W{k}"].T
    return out


def mse_grads_dx(arch, p, x, y, bug=""):
    """mse_grads plus dL/dx under "x"; bug='dx_relu': dL/dx taken through relu' of the input (a wrong extra factor)."""
    zs, acts = forward(arch, p, x)
    d = 2 * (acts[-1] - y) / y.size
    out = {}
    for k in range(arch.n_layers, 0, -1):
        d = d * act_prime(arch.activations[k - 1], zs[k - 1], acts[k])
        out[f"W{k}"] = acts[k - 1].T @ d
        out[f"b{k}"] = d.sum(axis=0)
        d = d @ p[f"W{k}"].T
    out["x"] = d * (x > 0) if bug == "dx_relu" else d
    return out


def mse_loss(arch, p, x, y):
    _, acts = forward(arch, p, x)
    return float(np.mean((acts[-1] - y) ** 2))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def ce_textbook_grads(arch, p, x, y, summed=False, bug=""):
    """softmax + cross-entropy with the textbook delta softmax(z) - y (exact when each row of y sums to 1).
    bug='tanh1': layer 1's tanh' written 1 - a instead of 1 - a**2."""
    zs, acts = forward(arch, p, x)
    d = softmax(zs[-1]) - y
    if not summed:
        d = d / len(x)
    out = {}
    for k in range(arch.n_layers, 0, -1):
        if k < arch.n_layers:
            prime = 1 - acts[k] if bug == "tanh1" and k == 1 else act_prime(arch.activations[k - 1], zs[k - 1], acts[k])
            d = d * prime
        out[f"W{k}"] = acts[k - 1].T @ d
        out[f"b{k}"] = d.sum(axis=0)
        d = d @ p[f"W{k}"].T
    return out


def ce_loss(arch, p, x, y, summed=False):
    zs, _ = forward(arch, p, x)
    z = zs[-1] - zs[-1].max(axis=1, keepdims=True)
    total = -float(np.sum(y * (z - np.log(np.exp(z).sum(axis=1, keepdims=True)))))
    return total if summed else total / len(x)


def softmax_loss_labels(arch, p, x, y):
    """CS231n's softmax_loss convention: y holds integer class indices."""
    assert y.ndim == 1 and np.issubdtype(y.dtype, np.integer), (y.dtype, y.shape)
    return ce_textbook_grads(arch, p, x, np.eye(arch.sizes[-1])[y])
