"""JAX grad as a gradient producer: the same MLP as the engine, in float64.

z_l = a_{l-1} @ W_l + b_l + ez_l, a_l = act_l(z_l) + ea_l, loss on a_L (or on z_L for the
from-logits losses bce and cross_entropy). ez_l and ea_l are zeros: the gradient with respect to
them is the per-layer trace dz[l-1] = dL/dz_l and da[l-1] = dL/da_l.

Process-wide side effect: the first call turns on jax_enable_x64 (jax.config is global), so
that the reference runs in float64. Any later jax code in the same process then also defaults
to 64-bit types. jax is imported only at call time, so `import bpcheck` never needs it.

Speed (issue 8). A jit compile costs ~0.5 s per new shape and an eager call 15-35 ms, while a
sweep meets a new architecture almost every case. The default mode, "bucketed", therefore pads
every case into one of a few fixed shapes and compiles once per shape bucket:
  * depth: identity layers (W = I, b = 0, identity activation) after the output layer; a @ I + 0
    is exact in floating point, and so is the backward through it;
  * width: every layer is (P, P) with zero rows and columns beyond its true size; padded units
    then add exact zeros into the next layer (softmax masks its padded columns);
  * batch: zero rows, masked out of the loss, which divides by the true element count;
  * the activation of each layer and the loss are integer codes chosen with lax.switch.
The padded results match the unpadded math ("eager") to ~1e-15 relative (tests check <= 1e-13).

The bucket's compile (the scan with a switch over every activation and loss) still costs 3-7 s on a
loaded 2-core machine, most of a 200-case report's JAX time. So the first call also points jax's
persistent compilation cache at cache_dir() (~/.cache/bpcheck/jax, or $BPCHECK_JAX_CACHE; "off"
disables it), unless the process already configured one: a later process loads the compiled bucket
in ~0.5 s. Process-wide, like x64: other compiles over a second in this process are cached there too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..ops import ELU_ALPHA, HUBER_DELTA, LEAKY_SLOPE, LOSS_RULES
from ..spec import ACTIVATIONS, LOSSES, Arch, Case, Gradients, UsageError, split_activation, suggest

MODES = ("bucketed", "eager", "jit")
# Smallest bucket: one compile serves every arch up to depth 4, width 8 and batch 16; larger
# ones round up to the next power of two, so a sweep meets only a handful of buckets.
MIN_DEPTH, MIN_WIDTH, MIN_BATCH = 4, 8, 16
# The bucket's arrays are tiny, so XLA's backend optimisations buy nothing at run time but cost compile
# time: at level 0 the compile took 2.1-2.7 s instead of 3.1-4.1 s (4 fresh processes each, loaded 2-core
# machine), a call 0.25 ms instead of 0.22 ms, and the results differed from level 3's by <= 6e-17.
BUCKET_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


class _Jax:
    """Everything built on first use: the jax modules, the two tables and the compiled kernels."""

    def __init__(self) -> None:
        import jax

        # Before any array is made; process-wide (see the module docstring).
        jax.config.update("jax_enable_x64", True)
        _use_compilation_cache(jax)
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.activations, self.losses = _build_tables(jax, jnp)
        self.value_and_grad = jax.value_and_grad(_unpadded_loss, argnums=(0, 1, 3, 4))
        self.jitted = jax.jit(self.value_and_grad, static_argnums=(5,))  # recompiles per arch and batch
        self.bucketed = jax.jit(jax.value_and_grad(_padded_loss, argnums=(0, 1, 2, 4, 5)),
                                compiler_options=BUCKET_COMPILER_OPTIONS)


_state: _Jax | None = None


def cache_dir() -> Path | None:
    """Where the bucket compiles persist: $BPCHECK_JAX_CACHE, or ~/.cache/bpcheck/jax; None when "off"."""
    setting = os.environ.get("BPCHECK_JAX_CACHE", "")
    if setting.lower() == "off":
        return None
    return Path(setting).expanduser() if setting else Path.home() / ".cache" / "bpcheck" / "jax"


def _use_compilation_cache(jax: Any) -> None:
    """Point jax's persistent compilation cache at cache_dir(), unless the process chose one already."""
    path = cache_dir()
    if path is None or jax.config.jax_compilation_cache_dir:
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: compile every time, as without the cache
        return
    jax.config.update("jax_compilation_cache_dir", str(path))


def _jax() -> _Jax:
    global _state
    if _state is None:
        _state = _Jax()
    return _state


def _build_tables(jax: Any, jnp: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Activations (z, cols) -> a and loss terms (out, y, cols) -> elementwise terms, keyed by spec names.

    cols, a bool (P,) row, marks the true columns of a padded array, or is None when nothing is
    padded; padded batch rows are masked by the caller. Kinks follow bpcheck.ops.RULES: relu'(0) = 0 and
    leaky_relu'(0) = 0.01 come from `z > 0` (jax.nn.leaky_relu uses z >= 0, which gives 1 at 0);
    jax.nn.elu's branch `z > 0` gives elu'(0) = alpha exp(0) = 1.
    """

    def masked(z: Any, cols: Any) -> Any:
        return z if cols is None else jnp.where(cols, z, -jnp.inf)

    activations = {
        "identity": lambda z, cols: z,
        "sigmoid": lambda z, cols: jax.nn.sigmoid(z),
        "tanh": lambda z, cols: jnp.tanh(z),
        "relu": lambda z, cols: jnp.where(z > 0, z, 0.0),
        "leaky_relu": lambda z, cols: jnp.where(z > 0, z, LEAKY_SLOPE * z),
        "elu": lambda z, cols: jax.nn.elu(z, alpha=ELU_ALPHA),
        "softplus": lambda z, cols: jnp.logaddexp(z, 0.0),
        # jax's own tanh-form gelu, as written: z * sigmoid(2u) is the same function but rounds differently
        # (1e-162 where tanh(u) is already -1 and the engine and torch give exactly 0), a false REFERENCE.
        "gelu": lambda z, cols: jax.nn.gelu(z, approximate=True),
        # exp(-inf) = 0: padded columns take no share of the softmax.
        "softmax": lambda z, cols: jax.nn.softmax(masked(z, cols), axis=-1),
        "silu": lambda z, cols: jax.nn.silu(z),
    }

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


def _count(loss: str, batch: int, n_out: int) -> float:
    """The mean's divisor: cross_entropy averages over rows, the others over every element."""
    return float(batch if loss == "cross_entropy" else batch * n_out)


def _unpadded_loss(params: list, x: Any, y: Any, ez: list, ea: list, arch: Arch) -> Any:
    """The loss of the true-shaped net; params = [W1, b1, ..., WL, bL], ez/ea as in the module docstring."""
    st = _jax()
    n, from_logits = arch.n_layers, LOSS_RULES[arch.loss].from_logits
    a = x
    for layer, act in enumerate(arch.activations, start=1):
        z = a @ params[2 * layer - 2] + params[2 * layer - 1] + ez[layer - 1]
        if layer == n and from_logits:
            a = z  # the loss is fused with this activation and reads z_L
            break
        base, slope = split_activation(act)
        a = st.activations[base](z, None) if slope is None else st.jnp.where(z > 0, z, slope * z)  # 'leaky_relu:0.2'
        if layer < n:
            a = a + ea[layer - 1]
    value = st.jnp.sum(st.losses[arch.loss](a, y, None)) / _count(arch.loss, x.shape[0], arch.sizes[-1])
    if arch.weight_decay:  # the declared L2 term, lambda/2 sum ||W_l||^2 (spec.Arch.weight_decay)
        value = value + 0.5 * arch.weight_decay * sum(st.jnp.sum(params[2 * k] ** 2) for k in range(n))
    return value


def _padded_loss(
    ws: Any, bs: Any, x: Any, y: Any, ez: Any, ea: Any, codes: Any, widths: Any, n_rows: Any, n_out: Any,
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
    st = _jax()
    jnp, lax = st.jnp, st.jax.lax
    col = jnp.arange(x.shape[1])
    acts = [st.activations[name] for name in ACTIVATIONS]

    leaky = ACTIVATIONS.index("leaky_relu")

    def layer(a: Any, xs: Any) -> tuple[Any, None]:
        w, b, ez_l, ea_l, code, width, slope = xs
        z = a @ w + b + ez_l
        out = lax.switch(code, acts, z, col < width)
        out = jnp.where(code == leaky, jnp.where(z > 0, z, slope * z), out)  # the arch's own slope
        return out + ea_l, None

    out, _ = lax.scan(layer, x, (ws, bs, ez, ea, codes, widths, slopes))
    terms = lax.switch(loss_code, [st.losses[name] for name in LOSSES], out, y, col < n_out)
    rows = jnp.arange(x.shape[0])[:, None] < n_rows
    return jnp.sum(jnp.where(rows, terms, 0.0)) / count + 0.5 * jnp.sum(decay * jnp.sum(ws * ws, axis=(1, 2)))


def _next_pow2(n: int, floor: int) -> int:
    return max(floor, 1 << (int(n) - 1).bit_length())


def bucket(arch: Arch, batch: int) -> tuple[int, int, int]:
    """(depth, width, batch) of the padded shape that serves this arch and batch size."""
    return _next_pow2(arch.n_layers, MIN_DEPTH), _next_pow2(max(arch.sizes), MIN_WIDTH), _next_pow2(batch, MIN_BATCH)


def _pad_case(case: Case) -> tuple[tuple[Any, ...], tuple[int, int, int]]:
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
    y[: case.batch, : arch.sizes[-1]] = case.y
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
            np.int32(LOSSES.index(arch.loss)), np.float64(_count(arch.loss, case.batch, arch.sizes[-1])),
            np.where(np.arange(depth) < n, arch.weight_decay, 0.0), slopes)
    return args, (depth, width, rows)


def _bucketed(case: Case) -> tuple[float, list, np.ndarray, list, list, dict]:
    st = _jax()
    arch, n, batch = case.arch, case.arch.n_layers, case.batch
    args, shape = _pad_case(case)
    loss, (gw, gb, gx, gez, gea) = st.bucketed(*args)
    # np.array copies: np.asarray of a jax array is read-only.
    gw, gb, gx, gez, gea = (np.array(g) for g in (gw, gb, gx, gez, gea))
    sizes = arch.sizes
    params = []
    for layer in range(1, n + 1):
        params += [gw[layer - 1, : sizes[layer - 1], : sizes[layer]].copy(), gb[layer - 1, : sizes[layer]].copy()]
    dz = [gez[layer - 1, :batch, : sizes[layer]].copy() for layer in range(1, n + 1)]
    da = [gea[layer - 1, :batch, : sizes[layer]].copy() for layer in range(1, n)]
    return float(loss), params, gx[:batch, : sizes[0]].copy(), dz, da, {"bucket": shape}


def _unpadded(case: Case, jit: bool) -> tuple[float, list, np.ndarray, list, list, dict]:
    st = _jax()
    arch = case.arch
    params = [case.params[k] for k in arch.param_shapes()]
    ez = [np.zeros((case.batch, n)) for n in arch.sizes[1:]]
    ea = ez[:-1]
    fn = st.jitted if jit else st.value_and_grad
    loss, (gp, gx, gez, gea) = fn(params, case.x, case.y, ez, ea, arch)
    return float(loss), [np.array(g) for g in gp], np.array(gx), [np.array(g) for g in gez], \
        [np.array(g) for g in gea], {}


def gradients(case: Case, mode: str = "bucketed") -> Gradients:
    """jax.value_and_grad on case (cast to float64): loss, dL/dW_l, dL/db_l, dL/dx (batch, n_in), dz, da.

    mode: "bucketed" (default; padded into a shape bucket, one compile per bucket), "eager" (no
    jit, the unpadded math op by op) or "jit" (compiled per arch and batch size). All three give
    writable float64 numpy arrays with the engine's shapes.
    """
    if mode not in MODES:
        raise UsageError(f"jax mode {mode!r}{suggest(mode, MODES)} is unknown: use one of {', '.join(MODES)}")
    st = _jax()
    if not st.jax.config.jax_enable_x64:  # someone turned it off after the first call: results would be float32
        raise UsageError("jax_enable_x64 was turned off after bpcheck's jax reference turned it on: "
                         "leave it on (jax.config.update('jax_enable_x64', True)) to compare in float64")
    case = case if case.dtype is np.float64 else case.astype(np.float64)
    loss, params, dx, dz, da, meta = _bucketed(case) if mode == "bucketed" else _unpadded(case, mode == "jit")
    names = list(case.arch.param_shapes())
    return Gradients(
        loss=loss,
        grads=dict(zip(names, params)),
        dx=dx,
        dz=tuple(dz),
        da=tuple(da),
        source="jax",
        meta={"dtype": "float64", "version": st.jax.__version__, "mode": mode, **meta},
    )
