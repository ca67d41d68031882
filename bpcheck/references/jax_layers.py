"""jax on a stack at sweep speed: one compiled kernel per layer signature, the layers chained in Python.

    kernels = Kernels(jax, losses)                      # one per process (jax_ref's state keeps it)
    loss, grads, dx, dz, dout, meta = run(kernels, case)

A sweep meets a new stack almost every case, so compiling the whole stack (jax_ref's "jit" mode) pays a
compile of 1-7 s per case. Its layers repeat far more often than the stacks do: a kernel keyed by one
layer's signature (kind, config, per-sample input shape, batch; float64 always) serves every later stack
that has that layer, whatever comes before or after it, and a one-layer compile is small. Each kernel is
jit of the vjp of the layer's own jax form (Layer.jax): (params, x, dy) -> (y, dparams, dx). The forward
pass calls it with dy = 0 and keeps y, the backward pass calls it again with the cotangent from above
(the arrays are tiny: a second forward costs less than a second compile). The loss is one kernel per
(loss, batch, output width). Measured in benchmarks/bench_references.py --stacks.

The graph is jax_ref's: a dense layer is its affine part then its activation (references/layered.py), so
dL/dz is the cotangent between the two, and a from-logits loss (bce, cross_entropy) reads the last dense
layer's z, or the input of a last activation layer (whose output is then computed for the forward values
only). The L2 term is added in numpy: lambda/2 sum ||W||^2 to the loss, lambda W to each dL/dW.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .jax_buckets import count
from .jax_fit import MIN_ROWS, MIN_WIDTH, Fit, Unit, fit_unit, pad, up
from .layered import Step, fused_input, plan, targets, weight_keys

# A compile (mostly XLA's, not the trace) is the whole cost of a new kernel, and the arrays are tiny: without
# the backend's optimisations 47 layer kernels compiled in 13.5 s instead of 19.3-20.8 s (loaded 2-core
# machine); the results stay within the tests' 1e-12 of torch. XLA's algebraic simplifier (algsimp) aborts the
# whole process (a failed check, "Window dimensions do not match RHS shape") on the backward of some strided convs,
# e.g. kernel 2, stride 2, padding 1 on a 1x6 image, padded or not, with or without the options above: the
# kernels skip that pass (tests/test_refs_layers.py runs the default sweep's case that aborted).
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
                    "xla_disable_hlo_passes": "algsimp"}

# Run op by op, not compiled: dropout's mask is a constant of its config's seed, so a kernel would serve one layer
# only, while jax's eager ops are compiled per primitive and shape (129 dropout shapes for 393 dropout layers in
# 1,250 drawn stacks).
EAGER = frozenset({"dropout"})


class Kernels:
    """The compiled kernels of one process, keyed by signature; traces counts how many were traced."""

    def __init__(self, jax: Any, losses: dict[str, Any]) -> None:
        self.jax, self.losses = jax, losses
        self.compiled: dict[str, Any] = {}
        self.traces = 0

    def layer(self, fit: Fit) -> Any:
        """(params, x, dy) -> (y, dparams, dx) of the layer in fit's kernel shape: jit, or eager for EAGER kinds."""
        from ..layers import LAYERS

        jax, (kind, config, _) = self.jax, fit.kernel
        form = LAYERS[kind].jax

        def kernel(params: dict, x: Any, dy: Any) -> Any:
            y, pull = jax.vjp(lambda p, a: form(config, p, a, jax), params, x)
            return (y, *pull(dy))

        if kind in EAGER:
            return kernel
        key = unit_key(fit)
        if key not in self.compiled:
            def traced(*args: Any) -> Any:
                self.traces += 1  # runs only while jax traces, once per compile
                return kernel(*args)

            self.compiled[key] = jax.jit(traced, compiler_options=COMPILER_OPTIONS)
        return self.compiled[key]

    def loss(self, name: str, rows: int, width: int) -> Any:
        """jit of (a, y, cols, live, divisor) -> (loss, dL/da) on a (rows, width) bucket: cols marks the true
        columns, live the true rows (bool (rows, 1)), divisor the true mean's (jax_buckets.count)."""
        key = loss_key(name, rows, width)
        if key not in self.compiled:
            terms, jnp = self.losses[name], self.jax.numpy

            def value(a: Any, y: Any, cols: Any, live: Any, divisor: Any) -> Any:
                self.traces += 1
                return jnp.sum(jnp.where(live, terms(a, y, cols), 0.0)) / divisor

            self.compiled[key] = self.jax.jit(self.jax.value_and_grad(value), compiler_options=COMPILER_OPTIONS)
        return self.compiled[key]


def unit_key(fit: Fit) -> str:
    kind, config, in_shape = fit.kernel
    return json.dumps([kind, config, list(in_shape), fit.rows, "float64"], sort_keys=True)


def loss_key(name: str, rows: int, width: int) -> str:
    return json.dumps(["loss", name, rows, width, "float64"])


def loss_bucket(batch: int, n_out: int) -> tuple[int, int]:
    return up(batch, MIN_ROWS), up(n_out, MIN_WIDTH)


def units(step: Step) -> list[Unit]:
    """What jax walks for one layer: a dense layer's affine part and its activation, else the layer itself."""
    if step.kind == "dense":
        return [("dense", step.affine, step.in_shape), ("activation", {"fn": step.act}, step.out_shape)]
    return [(step.kind, step.config, step.in_shape)]


def signatures(case: Any) -> set[str]:
    """Every kernel key a case needs (its layers' and its loss's): a sweep compiles once per distinct key."""
    steps = plan(case.arch)
    keys = {unit_key(fit_unit(unit, case.batch)) for step in steps for unit in units(step) if unit[0] not in EAGER}
    return keys | {loss_key(case.arch.loss, *loss_bucket(case.batch, steps[-1].out_shape[-1]))}


def _loss(kernels: Kernels, name: str, a: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The loss of a (batch, n_out) and its gradient, through the loss's bucket."""
    batch, n_out = a.shape
    rows, width = loss_bucket(batch, n_out)
    value, g = kernels.loss(name, rows, width)(pad(a, (rows, width)), pad(y, (rows, width)),
                                               np.arange(width) < n_out, (np.arange(rows) < batch)[:, None],
                                               np.float64(count(name, batch, n_out)))
    return float(value), np.array(np.asarray(g)[:batch, :n_out])


def run(kernels: Kernels, case: Any) -> tuple[float, dict, np.ndarray, list, list, dict]:
    """The loss, {key: dL/dparam}, dL/dx, dz (one per dense layer), dout (one per layer; None where the fused
    loss skips the output activation) and meta {"forward": ((z or None, output) per layer)}, as numpy float64."""
    arch, batch = case.arch, case.batch
    steps, fused = plan(arch), fused_input(arch)
    a = np.asarray(case.x, dtype=np.float64)
    tape: list[list[tuple[Fit, Any, dict, np.ndarray]]] = []  # per layer, what the backward replays
    forward = []
    for step in steps:
        local = {name: np.asarray(case.params[key], dtype=np.float64) for name, key in step.keys.items()}
        skip_last = fused and step.position == len(steps)  # the loss reads this layer's input side
        walked = units(step)
        replay, z, out = [], None, a
        for n, unit in enumerate(walked):
            fit = fit_unit(unit, batch)
            kernel, params, x = kernels.layer(fit), fit.pad_params(local if n == 0 else {}), fit.pad_x(a)
            out = fit.crop_y(kernel(params, x, np.zeros(fit.shapes()[3]))[0])
            if skip_last and n == len(walked) - 1:
                break  # computed for the forward values only: a stays what the loss reads
            replay.append((fit, kernel, params, x))
            z, a = (out if step.kind == "dense" and n == 0 else z), out
        forward.append((z, out))
        tape.append(replay)
    loss, g = _loss(kernels, arch.loss, a, targets(case))
    grads, dz, dout = {}, [], [None] * len(steps)
    for step, replay in zip(reversed(steps), reversed(tape)):
        if not (fused and step.position == len(steps)):
            dout[step.position - 1] = g
        for n, (fit, kernel, params, x) in reversed(list(enumerate(replay))):
            if step.kind == "dense" and n == 0:
                dz.append(g)
            _, dparams, dx = kernel(params, x, fit.pad_y(g))
            g = fit.crop_x(dx)
            grads.update({step.keys[name]: d for name, d in fit.crop_params(dparams).items()})
    lam = float(arch.weight_decay)
    if lam:
        for key in weight_keys(arch):
            loss += 0.5 * lam * float(np.sum(case.params[key] ** 2))
            grads[key] = grads[key] + lam * case.params[key]
    return loss, {key: grads[key] for key in arch.param_shapes()}, g, dz[::-1], dout, {"forward": tuple(forward)}
