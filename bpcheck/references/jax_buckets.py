"""jax's MLP accelerator: every dense MLP padded into one of a few fixed shapes, one compile per shape bucket.

    kernel = make_kernel(jax, jnp, activations, losses)    # jitted value_and_grad of the padded loss
    loss, params, dx, dz, da, meta = run(kernel, case)     # the unpadded results, as numpy arrays

See jax_ref's docstring for how the padding stays exact. The tables (activations with a mask of the true
columns, loss terms) are built once by build_tables and shared with jax_ref's generic loop for the losses.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layers.activation import jax_activation
from ..ops import HUBER_DELTA, LEAKY_SLOPE, LOSS_RULES
from ..spec import ACTIVATIONS, LOSSES, Arch, Case, split_activation
from .layered import targets

# Smallest bucket: one compile serves every arch up to depth 4, width 8 and batch 16; larger
# ones round up to the next power of two, so a sweep meets only a handful of buckets.
MIN_DEPTH, MIN_WIDTH, MIN_BATCH = 4, 8, 16
# The bucket's arrays are tiny, so XLA's backend optimisations buy nothing at run time but cost compile
# time: at level 0 the compile took 2.1-2.7 s instead of 3.1-4.1 s (4 fresh processes each, loaded 2-core
# machine), a call 0.25 ms instead of 0.22 ms, and the results differed from level 3's by <= 6e-17.
BUCKET_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


def build_tables(jax: Any, jnp: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Activations (z, cols) -> a and loss terms (out, y, cols) -> elementwise terms, keyed by spec names.

    cols, a bool (P,) row, marks the true columns of a padded array, or is None when nothing is
    padded; padded batch rows are masked by the caller.
    """

    def masked(z: Any, cols: Any) -> Any:
        return z if cols is None else jnp.where(cols, z, -jnp.inf)

    # The layers' forms (bpcheck.layers.activation.jax_activation, chosen there for their behaviour at the kinks);
    # exp(-inf) = 0, so padded columns take no share of a softmax.
    activations = {name: (lambda z, cols, name=name: jax_activation(name, masked(z, cols) if name == "softmax" else z, jax))
                   for name in ACTIVATIONS}

    def keep(terms: Any, cols: Any) -> Any:
        # where, not multiply: a padded cross_entropy term is 0 * -inf = nan.
        return terms if cols is None else jnp.where(cols, terms, 0.0)

    def huber(a: Any, y: Any) -> Any:
        r = jnp.abs(a - y)
        return jnp.where(r <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (r - 0.5 * HUBER_DELTA))

    # Elementwise terms; the loss is their sum over the true entries divided by _count().
    losses = {
        "mse": lambda a, y, cols: keep((a - y) ** 2, cols),
        # bce with logits: softplus(z) - z y, whose derivative is sigmoid(z) - y everywhere.
        "bce": lambda z, y, cols: keep(jnp.logaddexp(z, 0.0) - z * y, cols),
        "cross_entropy": lambda z, y, cols: keep(-y * jax.nn.log_softmax(masked(z, cols), axis=-1), cols),
        "huber": lambda a, y, cols: keep(huber(a, y), cols),
    }
    assert tuple(activations) == ACTIVATIONS and tuple(losses) == LOSSES
    return activations, losses


def count(loss: str, batch: int, n_out: int) -> float:
    """The mean's divisor: cross_entropy averages over rows, the others over every element."""
    return float(batch if loss == "cross_entropy" else batch * n_out)


def _padded_loss(
    tables: Any, ws: Any, bs: Any, x: Any, y: Any, ez: Any, ea: Any, codes: Any, widths: Any, n_rows: Any, n_out: Any,
    loss_code: Any, count: Any, decay: Any, slopes: Any,
) -> Any:
    """The loss of a case padded into a bucket (depth D, width P, batch B).

    ws (D, P, P), bs (D, P), x and y (B, P), ez and ea (D, B, P); codes (D,) index ACTIVATIONS,
    widths (D,) are the true layer widths, n_rows and n_out the true batch and output width,
    loss_code indexes LOSSES and count is the mean's divisor; decay (D,) is the L2 term's lambda per layer
    (0 for the padded ones, whose identity weights are not the net's); slopes (D,) is each layer's leaky_relu
    slope (the arch's 'leaky_relu:0.2', else the default). Only the shapes are static, so one
    compile serves every case in the bucket.
    """
    jnp, lax = tables.jnp, tables.jax.lax
    col = jnp.arange(x.shape[1])
    acts = [tables.activations[name] for name in ACTIVATIONS]

    leaky = ACTIVATIONS.index("leaky_relu")

    def layer(a: Any, xs: Any) -> tuple[Any, None]:
        w, b, ez_l, ea_l, code, width, slope = xs
        z = a @ w + b + ez_l
        out = lax.switch(code, acts, z, col < width)
        out = jnp.where(code == leaky, jnp.where(z > 0, z, slope * z), out)  # the arch's own slope
        return out + ea_l, (z, out)

    out, values = lax.scan(layer, x, (ws, bs, ez, ea, codes, widths, slopes))
    terms = lax.switch(loss_code, [tables.losses[name] for name in LOSSES], out, y, col < n_out)
    rows = jnp.arange(x.shape[0])[:, None] < n_rows
    value = jnp.sum(jnp.where(rows, terms, 0.0)) / count + 0.5 * jnp.sum(decay * jnp.sum(ws * ws, axis=(1, 2)))
    return value, values  # values: every layer's (z, output), the forward the comparison reads


def make_kernel(tables: Any) -> Any:
    """The bucket kernel: jit of value_and_grad of the padded loss in ws, bs, x, ez and ea. tables has .jax, .jnp,
    .activations and .losses (jax_ref's state)."""
    jax = tables.jax
    return jax.jit(jax.value_and_grad(lambda *args: _padded_loss(tables, *args), argnums=(0, 1, 2, 4, 5), has_aux=True),
                   compiler_options=BUCKET_COMPILER_OPTIONS)


def _next_pow2(n: int, floor: int) -> int:
    return max(floor, 1 << (int(n) - 1).bit_length())


def bucket(arch: Arch, batch: int) -> tuple[int, int, int]:
    """(depth, width, batch) of the padded shape that serves this arch and batch size."""
    return _next_pow2(arch.n_layers, MIN_DEPTH), _next_pow2(max(arch.sizes), MIN_WIDTH), _next_pow2(batch, MIN_BATCH)


def pad_case(case: Case) -> tuple[tuple[Any, ...], tuple[int, int, int]]:
    """The arguments of _padded_loss for this case, as numpy arrays, and the bucket."""
    arch, n = case.arch, case.arch.n_layers
    depth, width, rows = bucket(arch, case.batch)
    ws = np.zeros((depth, width, width))
    ws[n:] = np.eye(width)  # exact identity layers after the output
    bs = np.zeros((depth, width))
    for layer in range(1, n + 1):
        n_prev, n_l = arch.sizes[layer - 1], arch.sizes[layer]
        ws[layer - 1, :n_prev, :n_l] = case.params[f"W{layer}"]
        bs[layer - 1, :n_l] = case.params[f"b{layer}"]
    x = np.zeros((rows, width))
    x[: case.batch, : arch.sizes[0]] = case.x
    y = np.zeros((rows, width))
    y[: case.batch, : arch.sizes[-1]] = targets(case)
    codes = np.zeros(depth, dtype=np.int32)  # 0 = identity, also for the padded layers
    codes[:n] = [ACTIVATIONS.index(split_activation(a)[0]) for a in arch.activations]
    slopes = np.full(depth, LEAKY_SLOPE)
    given = [split_activation(a)[1] for a in arch.activations]
    slopes[:n] = [LEAKY_SLOPE if s is None else s for s in given]
    if LOSS_RULES[arch.loss].from_logits:
        codes[n - 1] = ACTIVATIONS.index("identity")  # the loss reads z_L
    widths = np.full(depth, arch.sizes[-1], dtype=np.int32)
    widths[:n] = arch.sizes[1:]
    trace = np.zeros((depth, rows, width))
    args = (ws, bs, x, y, trace, trace, codes, widths, np.int32(case.batch), np.int32(arch.sizes[-1]),
            np.int32(LOSSES.index(arch.loss)), np.float64(count(arch.loss, case.batch, arch.sizes[-1])),
            np.where(np.arange(depth) < n, arch.weight_decay, 0.0), slopes)
    return args, (depth, width, rows)


def run(kernel: Any, case: Case) -> tuple[float, list, np.ndarray, list, list, dict]:
    """The kernel on case padded into its bucket, cut back to the case's true shapes (writable numpy copies);
    meta holds the bucket and the forward values, (z_l, output of layer l) per layer (the output is z_L itself
    where a from-logits loss reads z_L: the bucket does not compute that activation)."""
    arch, n, batch = case.arch, case.arch.n_layers, case.batch
    args, shape = pad_case(case)
    (loss, (zs, acts)), (gw, gb, gx, gez, gea) = kernel(*args)
    zs, acts = np.asarray(zs), np.asarray(acts)
    # np.array copies: np.asarray of a jax array is read-only.
    gw, gb, gx, gez, gea = (np.array(g) for g in (gw, gb, gx, gez, gea))
    sizes = arch.sizes
    params = []
    for layer in range(1, n + 1):
        params += [gw[layer - 1, : sizes[layer - 1], : sizes[layer]].copy(), gb[layer - 1, : sizes[layer]].copy()]
    dz = [gez[layer - 1, :batch, : sizes[layer]].copy() for layer in range(1, n + 1)]
    # dL/d(output of layer l) for every layer; the last one is dL/dz_L when a from-logits loss reads z_L there
    outs = [gea[layer - 1, :batch, : sizes[layer]].copy() for layer in range(1, n + 1)]
    forward = tuple((zs[layer - 1, :batch, : sizes[layer]].copy(), acts[layer - 1, :batch, : sizes[layer]].copy())
                    for layer in range(1, n + 1))
    return float(loss), params, gx[:batch, : sizes[0]].copy(), dz, outs, {"bucket": shape, "forward": forward}
