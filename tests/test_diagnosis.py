"""The diagnosis names wrong derivative forms in the user's words, and the top line groups cases by bug.

The engine here is written in another style than bpcheck's: one sample at a time, column vectors,
W stored (n_out, n_in) as in a textbook and transposed into bpcheck's row layout on the way out,
each activation's derivative computed from z through its own table. A planted bug replaces one
layer's derivative with a wrong form written out here (not taken from bpcheck.ops).
"""

from __future__ import annotations

import numpy as np
import pytest

from bpcheck import Arch
from bpcheck.byo import check_gradients
from bpcheck.ops import RULES

N_CASES = 4


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


FORWARD = {"tanh": np.tanh, "sigmoid": _sig, "relu": lambda v: np.maximum(v, 0.0),
           "leaky_relu": lambda v: np.where(v > 0, v, 0.01 * v), "elu": lambda v: np.where(v > 0, v, np.expm1(v)),
           "softplus": lambda v: np.log1p(np.exp(v)), "identity": lambda v: v,
           "softmax": lambda v: np.exp(v - v.max()) / np.exp(v - v.max()).sum(), "silu": lambda v: v * _sig(v)}


def _forward(name):
    if name.startswith("leaky_relu:"):  # the arch's own slope, 'leaky_relu:0.2'
        slope = float(name.split(":")[1])
        return lambda v: np.where(v > 0, v, slope * v)
    return FORWARD[name]


def _right(name, z, a, g):
    """dL/dz for one sample from dL/da, the right way."""
    if name.startswith("leaky_relu:"):
        return np.where(z > 0, 1.0, float(name.split(":")[1])) * g
    if name == "softmax":
        return a * g - a * float(a @ g)
    d = {"tanh": lambda: 1 - np.tanh(z) ** 2, "sigmoid": lambda: _sig(z) * (1 - _sig(z)),
         "relu": lambda: (z > 0).astype(float), "leaky_relu": lambda: np.where(z > 0, 1.0, 0.01),
         "elu": lambda: np.where(z > 0, 1.0, np.exp(z)), "softplus": lambda: _sig(z),
         "identity": lambda: np.ones_like(z), "silu": lambda: _sig(z) * (1 + z * (1 - _sig(z)))}[name]()
    return d * g


PLANTED = {  # how a person gets each derivative wrong, written out independently of bpcheck.ops
    "tanh 1 - a": lambda z, a, g: (1 - a) * g,
    "sigmoid of a": lambda z, a, g: _sig(a) * (1 - _sig(a)) * g,
    "softplus of a": lambda z, a, g: _sig(a) * g,
    "relu output": lambda z, a, g: a * g,
    "leaky dropped": lambda z, a, g: (z > 0) * g,
    "elu a": lambda z, a, g: np.where(z > 0, 1.0, a) * g,
    "softmax diagonal": lambda z, a, g: a * (1 - a) * g,
    "silu sigmoid only": lambda z, a, g: _sig(z) * g,
}


def per_sample_engine(arch: Arch, bug_layer: int | None = None, bug=None):
    """MSE backprop, one sample at a time, column vectors; bug replaces layer bug_layer's derivative."""
    acts = arch.activations

    def grads(params, x, y):
        L = len(acts)
        Ws = [params[f"W{k}"].T for k in range(1, L + 1)]          # (n_out, n_in), textbook layout
        bs = [params[f"b{k}"][:, None] for k in range(1, L + 1)]
        gW = [np.zeros_like(W) for W in Ws]
        gb = [np.zeros_like(b) for b in bs]
        n = y.size
        for xi, yi in zip(x, y):
            a_s, z_s = [xi[:, None]], []
            for W, b, act in zip(Ws, bs, acts):
                z_s.append(W @ a_s[-1] + b)
                a_s.append(_forward(act)(z_s[-1]))
            g = 2.0 * (a_s[-1] - yi[:, None]) / n
            for k in range(L - 1, -1, -1):
                z, a = z_s[k][:, 0], a_s[k + 1][:, 0]
                step = bug if bug_layer == k + 1 else (lambda z, a, g, act=acts[k]: _right(act, z, a, g))
                delta = step(z, a, g[:, 0])[:, None]
                gW[k] += delta @ a_s[k].T
                gb[k] += delta
                g = Ws[k].T @ delta
        out = {}
        for k in range(L):
            out[f"W{k + 1}"], out[f"b{k + 1}"] = gW[k].T, gb[k][:, 0]
        return out

    return grads


def test_the_independent_engine_passes_when_right():
    arch = Arch((3, 4, 3, 2), ("tanh", "softplus", "sigmoid"), "mse")
    result = check_gradients(per_sample_engine(arch), arch, cases=N_CASES, dtype="float64")
    assert result.ok, result.summary()


@pytest.mark.parametrize("arch, layer, bug, words", [
    (Arch((3, 4, 2), ("tanh", "identity"), "mse"), 1, "tanh 1 - a", "layer 1 computes tanh' as 1 - a (should be 1 - a²)"),
    (Arch((3, 4, 3, 2), ("tanh", "sigmoid", "identity"), "mse"), 2, "sigmoid of a",
     "layer 2 computes sigmoid' as σ(a) (1 - σ(a)), σ' applied to the activation a instead of z"),
    (Arch((3, 4, 2), ("softplus", "tanh"), "mse"), 1, "softplus of a", "layer 1 computes softplus' as σ(a), from the output"),
    (Arch((3, 4, 2), ("relu", "identity"), "mse"), 1, "relu output", "layer 1 computes relu' as a, the activation itself"),
    (Arch((3, 4, 2), ("leaky_relu", "identity"), "mse"), 1, "leaky dropped",
     "layer 1 computes leaky_relu' as 1 where z > 0, else 0, relu's: the leaky slope dropped"),
    (Arch((3, 4, 2), ("elu", "tanh"), "mse"), 1, "elu a", "layer 1 computes elu' as 1 where z > 0, else a, the + 1 dropped"),
    (Arch((3, 3), ("softmax",), "mse"), 1, "softmax diagonal",
     "layer 1 computes softmax' as a (1 - a), the Jacobian's diagonal only"),
    (Arch((3, 4, 2), ("silu", "identity"), "mse"), 1, "silu sigmoid only",
     "layer 1 computes silu' as σ(z), the product rule's z σ'(z) term forgotten"),
])
def test_a_wrong_derivative_form_is_named_in_its_layer(arch, layer, bug, words):
    result = check_gradients(per_sample_engine(arch, layer, PLANTED[bug]), arch, cases=N_CASES, dtype="float64",
                             seed=1)
    assert not result.ok and set(result.labels) == {"ENGINE"}, result.summary()
    # The top line leads with the bug's name, and every case that differs names it (the ordinary-regime
    # cases at least: a tiny or saturated unit can make two wrong forms agree, which the diagnosis then says).
    assert result.diagnosis.startswith(words), result.diagnosis
    first = result.summary().splitlines()[2]
    assert first.startswith(f"diagnosis: {words}")
    assert "no known bug shape" not in result.diagnosis


def test_forms_that_one_case_cannot_tell_apart_are_both_named():
    """In layer 1 of a tiny-input case a = tanh(z) ~ z, so 1 - a and 1 - z² are not far apart either way;
    with z = a exactly the two tanh forms 1 - tanh(a)² and 1 - z² coincide: the diagnosis names both."""
    from bpcheck.compare import CaseContext, compare, find_bug
    from bpcheck.spec import Case, Gradients

    arch = Arch((2, 2, 1), ("identity", "tanh"), "mse")
    rng = np.random.default_rng(0)
    params = {"W1": np.eye(2), "b1": np.zeros(2), "W2": rng.standard_normal((2, 1)), "b2": np.zeros(1)}
    case = Case(arch, params, rng.standard_normal((4, 2)), rng.standard_normal((4, 1)))
    from bpcheck import engine

    ref = engine.gradients(case)
    _, caches = engine.forward(arch, params, case.x)
    rules = {**RULES, "tanh": RULES["tanh"].__class__(**{**RULES["tanh"].__dict__,
                                                        "backward": RULES["tanh"].wrong_form("one_minus_a").backward})}
    mine = engine.backward(arch, params, caches, case.y, rules=rules)
    mine = Gradients(mine.loss, mine.grads, mine.dx, source="user")
    ctx = CaseContext.build(case, ref)
    c = compare(ctx, mine, ref, "torch")
    bug = find_bug(ctx, mine, ref, "torch", c.tol, c.tensors, c.first_bad)
    assert bug is not None and bug.code == "wrong_derivative" and bug.get("form") == "one_minus_a"
    assert bug.get("layer") == 2 and bug.name == "layer 2 computes tanh' as 1 - a (should be 1 - a²)"


def test_the_top_line_groups_cases_by_bug_not_by_sentence():
    """A bias averaged over the batch on cases of different batch sizes is one kind: the sentences carry
    each case's own batch, the names do not."""
    arch = Arch((3, 4, 2), ("tanh", "identity"), "mse")
    right = per_sample_engine(arch)

    def averaged(params, x, y):
        g = right(params, x, y)
        return {k: v / len(x) if k.startswith("b") else v for k, v in g.items()}

    result = check_gradients(averaged, arch, cases=8, dtype="float64", seed=2)
    failing = [o for o in result.outcomes if not o.ok]
    assert len({o.result.case["x"].__len__() for o in failing}) > 1  # several batch sizes
    assert result.diagnosis.startswith("the bias gradient is averaged over the batch while the weight gradient is summed")
    assert "1/batch" not in result.diagnosis.split(" (in ")[0]


@pytest.mark.parametrize("name", ["tanh_prime_one_minus_tanh", "leaky_slope_dropped", "dw_transposed"])
def test_the_catalog_mutants_are_named_on_every_case_they_are_caught(name):
    """The catalog plants the wrong forms kept in ops.RULES; the sweep records whether the diagnosis named them."""
    from bpcheck.mutants.catalog import ENGINE_MUTANTS
    from bpcheck.mutants.sweep import run_mutant

    mutant = next(m for m in ENGINE_MUTANTS if m.name == name)
    out = run_mutant(mutant, 4, 0, run_baselines=(), shrink="none")
    caught = sum(c.caught for c in out.cases)
    assert caught >= 3 and out.named() == caught, [c.diagnosis for c in out.cases]
