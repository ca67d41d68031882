"""JAX grad as a gradient producer: any stack, each layer in its own jax form, in float64.

The generic loop composes each layer's Layer.jax(config, params, x, jax) (bpcheck.layers), then the declared
loss; a dense layer is walked as its affine part and its activation (references/layered.py), so a from-logits
loss (bce, cross_entropy) reads the last dense layer's z. Zeros are added to every dense z_l (ez) and to every
layer's output (eo): the gradients with respect to them are the traces dz[l-1] = dL/dz_l and
dout[i-1] = dL/d(output of layer i) (da[l-1] on an MLP). meta['forward'] holds the forward values, (z or None,
output) per layer, which the comparison's rounding model reads (compare/forward.py).

float64: jax_enable_x64 is switched on only while this reference runs (jax.enable_x64, a context), so the
rest of the process keeps jax's own default. jax is imported only at call time, so `import bpcheck` never
needs it.

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

A stack that is not an MLP is walked layer by layer (jax_layers): one small kernel per layer signature, padded
into a shape bucket where that is exact (jax_fit), so a sweep's stacks share most compiles (a whole-stack
compile per case, mode "jit", costs 1-7 s). compiles() counts the traces of both (not the MLP buckets'), so
tests can see one per signature.

The bucket's compile (the scan with a switch over every activation and loss) still costs 3-7 s on a
loaded 2-core machine, most of a 200-case report's JAX time. So the first call also points jax's
persistent compilation cache at cache_dir() (~/.cache/bpcheck/jax, or $BPCHECK_JAX_CACHE; "off"
disables it), unless the process already configured one: a later process loads the compiled bucket
in ~0.5 s. Process-wide: other compiles over a second in this process are cached there too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..spec import Case, Gradients, UsageError, suggest
from . import jax_buckets, jax_layers
from .jax_buckets import bucket, count  # noqa: F401  (bucket: re-exported, jax_ref.bucket(arch, batch))
from .layered import fused_input, is_mlp, plan, signature, targets, weight_keys

MODES = ("bucketed", "layers", "eager", "jit")
_traces = 0  # how many times a stack's loss was traced for a compile (compiles())


class _Jax:
    """Everything built on first use: the jax modules, the two tables, the bucket kernel, the per-stack kernels."""

    def __init__(self) -> None:
        import jax

        _use_compilation_cache(jax)
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.activations, self.losses = jax_buckets.build_tables(jax, jnp)
        self.bucketed = jax_buckets.make_kernel(self)
        self.stacks: dict[str, Any] = {}  # layered.signature -> jit of value_and_grad of that stack's loss ("jit")
        self.layers = jax_layers.Kernels(jax, self.losses)  # one kernel per layer signature


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


def compiles() -> int:
    """How many kernels were traced for compiling so far in this process: whole stacks ("jit"), layers and losses
    (jax_layers), not the MLP buckets."""
    return _traces + (_state.layers.traces if _state is not None else 0)


def _stack_loss(arch: Any) -> Any:
    """loss(params, x, y, ez, eo, lam) of arch's stack: params {key: array}, ez one zero array per dense layer
    (added to its z), eo one per layer output the loss reads (added to it), lam the L2 term's lambda."""
    from ..layers import LAYERS

    st = _jax()
    steps, fused, keys = plan(arch), fused_input(arch), weight_keys(arch)
    loss_name, jnp = arch.loss, st.jnp

    def loss(params: dict, x: Any, y: Any, ez: list, eo: list, lam: Any) -> Any:
        a, dense, outs = x, 0, 0
        values = []  # (z or None, output) per layer: the forward the comparison reads (aux, not differentiated)
        for step in steps:
            local = {name: params[key] for name, key in step.keys.items()}
            last = step.position == len(steps)
            if step.kind == "dense":
                z = LAYERS["dense"].jax(step.affine, local, a, st.jax) + ez[dense]
                dense += 1
                if last and fused:
                    values.append((z, LAYERS["activation"].jax({"fn": step.act}, {}, z, st.jax)))
                    a = z  # the loss is fused with this activation and reads z_L
                    break
                a = LAYERS["activation"].jax({"fn": step.act}, {}, z, st.jax)
                values.append((z, a))
            elif last and fused:  # an activation layer holding the fused sigmoid or softmax: the loss reads its input
                values.append((None, LAYERS[step.kind].jax(step.config, local, a, st.jax)))
                break
            else:
                a = LAYERS[step.kind].jax(step.config, local, a, st.jax)
                values.append((None, a))
            a = a + eo[outs]
            outs += 1
        value = jnp.sum(st.losses[loss_name](a, y, None)) / count(loss_name, x.shape[0], a.shape[-1])
        return value + 0.5 * lam * sum((jnp.sum(params[k] ** 2) for k in keys), jnp.zeros(())), values

    return loss


def _kernel(arch: Any, batch: int, jit: bool) -> Any:
    """value_and_grad of the stack's loss in (params, x, ez, eo); with jit, compiled once per signature."""
    st = _jax()
    if not jit:
        return st.jax.value_and_grad(_stack_loss(arch), argnums=(0, 1, 3, 4), has_aux=True)
    key = signature(arch, batch)
    if key not in st.stacks:
        loss = _stack_loss(arch)

        def traced(*args: Any) -> Any:
            global _traces
            _traces += 1  # runs only while jax traces, once per compile
            return loss(*args)

        st.stacks[key] = st.jax.jit(st.jax.value_and_grad(traced, argnums=(0, 1, 3, 4), has_aux=True))
    return st.stacks[key]


def _generic(case: Case, jit: bool) -> tuple[float, dict, np.ndarray, list, list, dict]:
    arch, batch, steps = case.arch, case.batch, plan(case.arch)
    fused = fused_input(arch)
    ez = [np.zeros((batch, *s.out_shape)) for s in steps if s.kind == "dense"]
    eo = [np.zeros((batch, *s.out_shape)) for s in (steps[:-1] if fused else steps)]
    params = {k: case.params[k] for k in arch.param_shapes()}
    (loss, values), (gp, gx, gez, geo) = _kernel(arch, batch, jit)(params, case.x, targets(case), ez, eo,
                                                                   np.float64(arch.weight_decay))
    # np.array copies: np.asarray of a jax array is read-only.
    dout = [np.array(g) for g in geo] + ([None] if fused else [])
    forward = tuple((None if z is None else np.array(z), np.array(o)) for z, o in values)
    return float(loss), {k: np.array(gp[k]) for k in params}, np.array(gx), [np.array(g) for g in gez], dout, \
        {"forward": forward}


def _output_activation(st: _Jax, arch: Any, z: np.ndarray) -> Any:
    """a_L = act(z_L) of the last dense layer, which a from-logits loss skips: for the forward values only."""
    from ..layers import LAYERS

    return LAYERS["activation"].jax({"fn": plan(arch)[-1].act}, {}, z, st.jax)


def gradients(case: Case, mode: str = "bucketed") -> Gradients:
    """jax.value_and_grad on case (cast to float64): loss, every param's gradient, dL/dx, the per-layer trace.

    mode: "bucketed" (default; an MLP is padded into a shape bucket, one compile per bucket, any other stack
    as "layers"), "layers" (any stack: one compiled kernel per layer signature, jax_layers), "eager" (no jit,
    the unpadded math op by op) or "jit" (the whole stack compiled per signature). All give writable float64
    numpy arrays with the engine's shapes.
    """
    if mode not in MODES:
        raise UsageError(f"jax mode {mode!r}{suggest(mode, MODES)} is unknown: use one of {', '.join(MODES)}")
    st = _jax()
    case = case if case.dtype is np.float64 else case.astype(np.float64)
    mlp = is_mlp(case.arch)
    with st.jax.enable_x64(True):  # float64 here, and only here: the process's own jax setting stays as it was
        if mode == "bucketed" and mlp:
            loss, flat, dx, dz, dout, meta = jax_buckets.run(st.bucketed, case)
            grads = dict(zip(case.arch.param_shapes(), flat))
            if fused_input(case.arch):
                dout[-1] = None  # the loss reads z_L: the output activation is not in the graph
                z, _ = meta["forward"][-1]
                meta["forward"] = (*meta["forward"][:-1], (z, np.array(_output_activation(st, case.arch, z))))
            da = dout[:-1]
        elif mode in ("bucketed", "layers"):
            loss, grads, dx, dz, dout, meta = jax_layers.run(st.layers, case)
            da = dout[:-1]
        else:
            loss, grads, dx, dz, dout, meta = _generic(case, mode == "jit")
            da = dout[:-1]
    return Gradients(
        loss=loss,
        grads=grads,
        dx=dx,
        dz=tuple(dz) if mlp else None,
        da=tuple(da) if mlp else None,
        dout=tuple(dout),
        source="jax",
        meta={"dtype": "float64", "version": st.jax.__version__, "mode": mode, **meta},
    )
