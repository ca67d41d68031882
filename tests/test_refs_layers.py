"""The torch and jax references as generic loops over the layers; the loss value compared like any tensor; the
judge reading nothing from the engine it judges.

torch and jax tests skip (with the reason) where the framework is missing; nothing here mocks either.
"""

from __future__ import annotations

import numpy as np
import pytest

from bpcheck import engine
from bpcheck.byo import check_gradients
from bpcheck.check import check_case
from bpcheck.compare import CaseContext
from bpcheck.references import status
from bpcheck.references.layered import fused_input
from bpcheck.spec import ACTIVATIONS, LOSS_OUTPUT, LOSSES, Arch, Case

from .nets import random_case

AGREE = 1e-12
FLOOR = 1e-3
TORCH, JAX = status("torch"), status("jax")
needs_torch = pytest.mark.skipif(not TORCH.available, reason=f"torch cannot run here: {TORCH.reason}")
needs_jax = pytest.mark.skipif(not JAX.available, reason=f"jax cannot run here: {JAX.reason}")
needs_both = pytest.mark.skipif(not (TORCH.available and JAX.available), reason="needs torch and jax")


def rel(a, b, floor: float = 0.0) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(b), floor)
    return 0.0 if scale < 1e-14 else float(np.linalg.norm(a - b) / scale)


def worst(got, want) -> tuple[str, float]:
    """The largest norm-relative error over the loss, every param, dx and every dout entry the two share.

    A tensor far smaller than the case's whole gradient is judged relative to FLOOR of that whole: a gradient
    that is zero by a symmetry (a batchnorm's gamma before another norm layer, which undoes its scale) is the
    cancellation of terms of the whole's size, and no float64 implementation resolves it to 1e-12 of itself."""
    pairs = {"loss": (got.loss, want.loss), "dx": (got.dx, want.dx), **{k: (got.grads[k], want.grads[k]) for k in want.grads}}
    g, w = got.dout, want.dout
    assert len(g) == len(w)
    for i, (a, b) in enumerate(zip(g, w), start=1):
        assert (a is None) == (b is None), f"dout{i}: one side has none"
        if a is not None:
            assert a.shape == b.shape
            pairs[f"dout{i}"] = (a, b)
    whole = float(np.sqrt(sum(np.sum(np.square(np.asarray(b, dtype=np.float64))) for name, (a, b) in pairs.items()
                              if name != "loss")))
    errs = {name: rel(a, b, FLOOR * whole) for name, (a, b) in pairs.items()}
    name = max(errs, key=errs.get)
    return name, errs[name]


def random_mlps(n: int, seed: int) -> list[Case]:
    """Random MLPs over every activation and loss, depth 1-4, widths 1-6, batches 1-9 (a stack of dense layers)."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        loss = LOSSES[i % len(LOSSES)]
        depth = 1 + int(rng.integers(4))
        sizes = [int(rng.integers(1, 7)) for _ in range(depth + 1)]
        if loss == "cross_entropy":
            sizes[-1] = max(2, sizes[-1])
        hidden = [str(rng.choice([a for a in ACTIVATIONS if a != "softmax"])) for _ in range(depth - 1)]
        out = LOSS_OUTPUT.get(loss, str(rng.choice(ACTIVATIONS)))
        arch = Arch(tuple(sizes), (*hidden, out), loss, weight_decay=float(rng.choice([0.0, 0.1])))
        cases.append(random_case(rng, arch, batch=1 + int(rng.integers(9))))
    return cases


CASES = random_mlps(24, 15)


def engine_dout(case: Case) -> tuple:
    """dL/d(output of layer i) from the engine: da for the hidden layers, the loss's dL/da_L for the last (None
    when a from-logits loss reads z_L)."""
    from bpcheck.ops import LOSS_RULES

    g = engine.gradients(case)
    if fused_input(case.arch):
        return (*g.da, None)
    out, _ = engine.forward(case.arch, case.params, case.x)
    return (*g.da, LOSS_RULES[case.arch.loss].backward(out, case.y))


@needs_torch
@needs_jax
@pytest.mark.parametrize("mode", ["eager", "jit", "bucketed", "layers"])
def test_generic_torch_and_jax_agree_with_each_other_and_the_engine(mode):
    """Every mode of jax (the generic loop, eager and compiled per signature, the MLP bucket, and one padded
    kernel per layer signature) and the generic
    torch loop: the loss, every gradient and every dout entry agree with the engine to <= 1e-12 in float64."""
    from bpcheck.references import jax_ref, torch_ref

    # eager jax compiles every op anew for each new shape (~5 s a case on a loaded machine): a few cases do
    for case in CASES[:4] if mode == "eager" else CASES:
        t, j = torch_ref.gradients(case), jax_ref.gradients(case, mode)
        want = engine.gradients(case)
        assert all(rel(a, b) == 0 for a, b in zip(want.dout, engine_dout(case)) if a is not None)
        for got in (t, j):
            name, err = worst(got, want)
            assert err <= AGREE, f"{got.source} ({mode}) vs engine on {case.arch.label()}: {name} {err:.2e}"
        name, err = worst(t, j)
        assert err <= AGREE, f"torch vs jax ({mode}) on {case.arch.label()}: {name} {err:.2e}"


@needs_jax
def test_jax_compiles_once_per_stack_signature():
    """The compile counter counts traces: a new signature (arch, batch) compiles once, a repeat with other values
    compiles nothing, another batch compiles again."""
    from bpcheck.references import jax_ref

    rng = np.random.default_rng(1)
    arch = Arch((3, 5, 2), ("tanh", "identity"), "huber")
    first = random_case(rng, arch, batch=4)
    before = jax_ref.compiles()
    jax_ref.gradients(first, "jit")
    assert jax_ref.compiles() == before + 1
    for _ in range(3):  # same signature, other params and data
        jax_ref.gradients(random_case(rng, arch, batch=4), "jit")
    assert jax_ref.compiles() == before + 1
    jax_ref.gradients(random_case(rng, arch, batch=5), "jit")
    assert jax_ref.compiles() == before + 2
    jax_ref.gradients(first, "eager")  # eager compiles nothing
    assert jax_ref.compiles() == before + 2


# --- the loss value, compared like any tensor --------------------------------------------------------------------

ARCH = Arch((3, 4, 2), ("tanh", "identity"), "mse")


def make_user_engine(*, forward_bug: str = ""):
    """A user's MLP for ARCH written in the test (not bpcheck's engine), returning its loss with the gradient.

    forward_bug='shifted': the hidden activation computed as tanh(z) + 0.1 (a wrong forward, and a backward
    consistent with it: the exact gradient of the wrong net); 'loss_half': the loss value reported as half the
    mean squared error while the gradient is right."""

    def grads(params, x, y):
        z1 = x @ params["W1"] + params["b1"]
        a1 = np.tanh(z1) + (0.1 if forward_bug == "shifted" else 0.0)
        z2 = a1 @ params["W2"] + params["b2"]
        r = z2 - y
        loss = np.mean(r * r) * (0.5 if forward_bug == "loss_half" else 1.0)
        d2 = 2.0 * r / r.size
        d1 = (d2 @ params["W2"].T) * (1.0 - np.tanh(z1) ** 2)
        return {"W1": x.T @ d1, "b1": d1.sum(axis=0), "W2": a1.T @ d2, "b2": d2.sum(axis=0), "loss": float(loss)}

    return grads


@needs_torch
def test_a_wrong_forward_is_named_by_the_loss():
    result = check_gradients(make_user_engine(forward_bug="shifted"), ARCH, cases=4, references="torch",
                             dtype="float64", in_process=True)
    assert not result.ok
    for outcome in result.outcomes:
        v = outcome.result.verdict("torch")
        assert v.label == "ENGINE"
        loss = next(t for t in v.tensors if t.name == "loss")
        assert not loss.ok
        text = outcome.result.message()  # 'the loss differs: grads 3.21245, torch 2.81402 (rel err 0.12, ...)'
        assert "the loss differs: " in text, text
        assert f"grads {loss.worst.engine:.6g}, torch {loss.worst.reference:.6g}" in text, text


@needs_torch
def test_a_loss_value_wrong_alone_is_caught_and_diagnosed():
    """Every gradient right, only the reported loss wrong (half of it): ENGINE, the diagnosis says so."""
    result = check_gradients(make_user_engine(forward_bug="loss_half"), ARCH, cases=3, references="torch,jax",
                             dtype="float64", in_process=True)
    assert not result.ok
    v = result.outcomes[0].result.verdict("torch")
    assert v.label == "ENGINE"
    assert [t.name for t in v.failing_tensors] == ["loss"]
    assert "the loss value differs while every gradient agrees" in v.diagnosis
    assert "the loss differs: " in result.outcomes[0].result.message()


@needs_torch
def test_a_right_forward_with_its_loss_is_no_false_alarm():
    """The same user engine, right: its loss agrees with torch's and jax's in float64 and float32, every regime."""
    result = check_gradients(make_user_engine(), ARCH, cases=30, seed=4, in_process=True)
    assert result.ok, result
    for outcome in result.outcomes:
        for v in outcome.result.verdicts:
            if v.label not in ("SKIPPED", "ERROR"):
                assert any(t.name == "loss" and t.ok for t in v.tensors), (v.reference, outcome.describe)


def test_a_function_that_returns_no_loss_has_none_compared():
    """Without 'loss' in its dict, a user's function is judged on its gradients alone: bpcheck's own forward
    does not stand in for the user's."""
    plain = make_user_engine()

    def grads(params, x, y):
        out = plain(params, x, y)
        del out["loss"]
        return out

    result = check_gradients(grads, ARCH, cases=2, references="fd", dtype="float64", in_process=True)
    assert result.ok
    assert not any(t.name == "loss" for o in result.outcomes for v in o.result.verdicts for t in v.tensors)


def test_a_loss_that_is_not_a_number_names_the_key():
    plain = make_user_engine()

    def grads(params, x, y):
        return {**plain(params, x, y), "loss": np.ones(3)}

    result = check_gradients(grads, ARCH, cases=1, references="fd", dtype="float64", in_process=True)
    assert not result.ok
    assert "returned 'loss'" in result.input_error.message and "one real number" in result.input_error.message


# --- the judge reads nothing from the engine -----------------------------------------------------------------------

@needs_torch
def test_the_comparison_runs_with_the_engine_forward_and_backward_broken(monkeypatch):
    """CaseContext (forward values, rounding scales, kink masks) and a check of a user's producer against torch
    and jax never call bpcheck's engine: with its forward and backward planted to raise, the check still runs
    and reaches the same labels."""
    from bpcheck.references import torch_ref

    case = CASES[3]
    producer_grads = engine.gradients(case)  # a producer computed before the engine breaks
    before = CaseContext.build(case, torch_ref.gradients(case))

    def broken(*args, **kwargs):
        raise AssertionError("the judge called bpcheck's engine")

    monkeypatch.setattr(engine, "forward", broken)
    monkeypatch.setattr(engine, "backward", broken)
    after = CaseContext.build(case, torch_ref.gradients(case))
    assert after.scales == before.scales and after.kinks.keys() == before.kinks.keys()
    ok = check_case(case, "torch,jax" if JAX.available else "torch", producer=lambda c: producer_grads)
    assert ok.label == "AGREE", ok.message()
    wrong = type(producer_grads)(producer_grads.loss * 1.01, producer_grads.grads, producer_grads.dx)
    bad = check_case(case, "torch", producer=lambda c: wrong)
    assert bad.label == "ENGINE" and "the loss differs" in bad.message()


def test_independent_forward_matches_the_engine_on_mlps():
    """The comparison's own forward (the layers' reference forms) gives the engine's z and a to rounding."""
    from bpcheck.compare.forward import independent_forward

    for case in CASES:
        _, caches = engine.forward(case.arch, case.params, case.x)
        for mine, theirs in zip(independent_forward(case), caches):
            for a, b in zip(mine, theirs):
                assert rel(a, b) <= 1e-14


# --- any stack: every kind on main, torch against jax against the engine -----------------------------------------

IMAGE_KINDS = ("conv2d", "maxpool2d", "avgpool2d", "activation", "batchnorm", "layernorm", "dropout")
VECTOR_KINDS = ("dense", "activation", "batchnorm", "layernorm", "dropout")
needs_stacks = pytest.mark.skipif(not hasattr(Arch, "stack"), reason="Arch.stack (the layered spec) is not on main yet")


def random_stack(rng: np.random.Generator) -> Case:
    """A random valid stack of the kinds registered here: an image part (conv, pools, norms, dropout,
    activations) and a flatten, or a vector input; hidden vector layers; a dense output fitting the loss."""
    from bpcheck.layers import LAYERS

    loss = LOSSES[int(rng.integers(len(LOSSES)))]
    image = "conv2d" in LAYERS and rng.random() < 0.7
    in_shape = (int(rng.integers(1, 3)), int(rng.integers(3, 7)), int(rng.integers(3, 7))) if image \
        else (int(rng.integers(1, 6)),)
    layers, shape = [], in_shape

    def draw(kinds: tuple[str, ...], most: int) -> None:
        nonlocal shape
        for _ in range(int(rng.integers(0, most + 1))):
            kind = str(rng.choice([k for k in kinds if k in LAYERS]))
            config = LAYERS[kind].draw_config(rng, shape)
            if config is not None:
                config = LAYERS[kind].check_config(config, shape)
                layers.append((kind, config))
                shape = LAYERS[kind].out_shape(config, shape)

    if image:
        draw(IMAGE_KINDS, 3)
        layers.append(("flatten", {}))
        shape = LAYERS["flatten"].out_shape({}, shape)
    draw(VECTOR_KINDS, 2)
    n_out = int(rng.integers(2 if loss == "cross_entropy" else 1, 4))
    layers.append(("dense", {"n": n_out, "activation": LOSS_OUTPUT.get(loss, str(rng.choice(["identity", "tanh"])))}))
    arch = Arch.stack(in_shape, layers, loss, weight_decay=float(rng.choice([0.0, 0.05])))
    batch = int(rng.integers(2, 6))
    params = {}
    for position, ((kind, config), shape) in enumerate(zip(arch.layers, arch.shapes), start=1):
        for name, value in LAYERS[kind].init(config, shape, rng, np.float64).items():
            params[f"{name}{position}"] = value + 0.2 * rng.standard_normal(value.shape)
    x = rng.standard_normal((batch, *in_shape))
    if loss == "cross_entropy" and rng.random() < 0.5:
        y = rng.integers(0, n_out, size=batch)  # integer class labels
    elif loss in ("bce", "cross_entropy"):
        y = rng.random((batch, n_out))
    else:
        y = rng.standard_normal((batch, n_out))
    return Case(arch, params, x, y)


@needs_stacks
@needs_torch
@needs_jax
def test_generic_references_agree_on_random_stacks_of_every_kind():
    from bpcheck.layers import LAYERS
    from bpcheck.references import jax_ref, torch_ref

    rng = np.random.default_rng(2026)
    seen: set[str] = set()
    for drawn in range(150):  # at least 40 stacks, and on until every registered kind was in one
        if drawn >= 40 and seen >= set(LAYERS):
            break
        case = random_stack(rng)
        seen |= {kind for kind, _ in case.arch.layers}
        want = engine.gradients(case)
        t, j = torch_ref.gradients(case), jax_ref.gradients(case)
        for a, b, who in ((t, want, "torch vs engine"), (j, want, "jax vs engine"), (t, j, "torch vs jax")):
            name, err = worst(a, b)
            assert err <= AGREE, f"{who} on {case.arch.label()}: {name} {err:.2e}"
    assert seen >= set(LAYERS), sorted(set(LAYERS) - seen)


@needs_stacks
@needs_jax
def test_one_compile_per_layer_signature():
    """A stack compiles one kernel per layer signature (and its loss's) it has not met yet; the same stack with
    other values compiles nothing and gives other numbers, the same values the same bytes."""
    from bpcheck.references import jax_layers, jax_ref

    rng = np.random.default_rng(7)
    case = next(c for c in (random_stack(rng) for _ in range(50)) if not c.arch.is_mlp)
    new = jax_layers.signatures(case) - set(jax_ref._jax().layers.compiled)
    before = jax_ref.compiles()
    first = jax_ref.gradients(case)
    assert jax_ref.compiles() == before + len(new)
    again = jax_ref.gradients(case.with_params({k: v * 1.5 for k, v in case.params.items()}))
    assert jax_ref.compiles() == before + len(new)
    assert first.loss != again.loss
    repeat = jax_ref.gradients(case)
    assert all(first.grads[k].tobytes() == repeat.grads[k].tobytes() for k in first.grads)
    assert first.dx.tobytes() == repeat.dx.tobytes() and first.loss == repeat.loss


@needs_stacks
@needs_jax
def test_a_sweep_of_stacks_compiles_at_most_once_per_layer_signature():
    """The sweep's own stacks share layer signatures (a padded bucket: kind, config, shapes, batch): N of them
    compile one kernel per distinct signature, fewer than one per layer, and a second pass compiles nothing."""
    from bpcheck import draw, stacks
    from bpcheck.references import jax_layers, jax_ref
    from bpcheck.references.layered import plan

    cases = [draw.draw_case(5, i, layers=stacks.layer_kinds()) for i in range(24)]
    needed = set().union(*(jax_layers.signatures(c) for c in cases))
    kernels = sum(len(jax_layers.units(step)) for c in cases for step in plan(c.arch)) + len(cases)  # + the losses
    assert len(needed) < 0.75 * kernels, (len(needed), kernels)  # shared: 74 of 156 at this seed
    new = needed - set(jax_ref._jax().layers.compiled)
    before = jax_ref.compiles()
    first = [jax_ref.gradients(c) for c in cases]
    assert jax_ref.compiles() - before == len(new)
    again = [jax_ref.gradients(c) for c in cases]
    assert jax_ref.compiles() - before == len(new)
    for a, b in zip(first, again):  # deterministic: the same bytes
        assert a.loss == b.loss and all(a.grads[k].tobytes() == b.grads[k].tobytes() for k in a.grads)


@needs_stacks
@needs_torch
@needs_jax
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_engine_on_random_stacks_is_no_false_alarm(dtype):
    """check_case of bpcheck's engine on random stacks against torch and jax: the loss and every tensor agree
    (float32: within the probe's sampled rounding, kinks within rounding left out)."""
    rng = np.random.default_rng(99 if dtype == "float64" else 98)
    for _ in range(25):
        case = random_stack(rng).astype(dtype)
        result = check_case(case, "torch,jax")
        assert result.ok and result.label in ("AGREE", "KINK"), result.message()
        assert all(any(t.name == "loss" for t in v.tensors) for v in result.verdicts)


def _planted(case: Case, key: str, factor: float):
    """A producer: the engine's gradients with one param's gradient scaled (key 'W3'), or with the gradient
    passed below layer i scaled (key 'da{i}': dL/d(output of layer i) and, backprop being linear in it,
    everything below: the params of layers 1..i, dL/dx and the traces below) -- a user's engine, as far as
    check_case knows."""
    right = engine.gradients(case)
    below = int(key[2:]) if key.startswith("da") else 0

    def position(k: str) -> int:
        return int(k.lstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"))

    def produce(c: Case):
        grads = {k: v * factor if k == key or position(k) <= below else v for k, v in right.grads.items()}
        dx = right.dx * factor if below else right.dx
        dout = tuple(None if d is None else d * factor if i <= below else d for i, d in enumerate(right.dout, 1))
        return type(right)(right.loss, grads, dx, right.dz, right.da, source="planted", dout=dout)

    return produce


@needs_stacks
@needs_torch
def test_a_stack_bug_is_localised_to_its_layer():
    """A wrong param gradient names its layer (by its params); a wrong dL/d(output of layer i) names layer i + 1,
    whose backward passed it down (by the da trace)."""
    rng = np.random.default_rng(5)

    def inner_weights(c: Case) -> list[str]:
        """Weights below the output layer whose gradient is not zero by a symmetry (a layernorm over one feature
        above makes it so): a scale of a zero gradient is no bug to find."""
        g = engine.gradients(c).grads
        whole = np.sqrt(sum(np.sum(v * v) for v in g.values()))
        return [k for k in c.arch.param_shapes() if k.startswith("W") and k != f"W{len(c.arch.layers)}"
                and np.linalg.norm(g[k]) > 1e-3 * whole]

    case = next(c for c in (random_stack(rng) for _ in range(500))
                if not c.arch.is_mlp and len(c.arch.layers) >= 4 and inner_weights(c))
    key = inner_weights(case)[0]
    position = int(key[1:])
    result = check_case(case, "torch", producer=_planted(case, key, 1.5))
    v = result.verdict("torch")
    assert v.label == "ENGINE" and v.first_bad_layer == position and v.localised_by == "params", v.message()
    i = len(case.arch.layers) - 2  # the output of the layer below the last: the last layer's backward made it
    result = check_case(case, "torch", producer=_planted(case, f"da{i}", 1.5))
    v = result.verdict("torch")
    assert v.label == "ENGINE" and v.first_bad_layer == i + 1 and v.localised_by == "da", v.message()
    kind = case.arch.layers[i][0]  # the layer by position and kind, from the diagnosis (bpcheck.compare.layer_bugs)
    assert f"layer {i + 1} ({kind}) is the first whose dL/d(input) disagrees" in v.message()


@needs_stacks
@needs_torch
@needs_jax
def test_the_conv_whose_backward_aborted_xla_runs_and_agrees_with_torch():
    """Case 2327 of the default sweep (seed 0, a stack): XLA's CPU compiler aborted the process on its conv's
    backward (kernel 2x5, stride 2, padding 1x2; a failed check in algebraic_simplifier), so the report labelled it
    ERROR; jax's layer kernels skip that pass now. An abort can't be caught, so the case runs in a child process;
    its gradients (batch 1 into batchnorm: all but zero below it) are compared with torch's relative to the largest
    entry of all of them."""
    import subprocess
    import sys

    script = ("import numpy as np; from bpcheck import draw; from bpcheck.references import jax_ref, torch_ref; "
              "c = draw.draw_case(0, 2327).astype(np.float64); j, t = jax_ref.gradients(c), torch_ref.gradients(c); "
              "scale = max(float(np.max(np.abs(g))) for g in t.grads.values()); print(c.arch.label()); "
              "print(max(float(np.max(np.abs(j.grads[k] - t.grads[k]))) for k in t.grads) / scale)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    label, err = done.stdout.split("\n")[:2]
    assert "conv2d(out_channels=3,kernel=2x5,stride=2,padding=1x2)" in label
    assert float(err) <= AGREE, (label, err)
