"""An L2 term in the declared loss (Arch.weight_decay, --weight-decay): lambda/2 sum ||W_l||^2, weights only.

The engine, finite differences, torch and jax all carry it; a correct engine written elsewhere with the
term passes; one that writes the term lambda sum ||W||^2 (gradient 2 lambda W) is named as that factor 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bpcheck import Arch, Case, check_case, init_params
from bpcheck.byo import check_gradients
from bpcheck.spec import SpecError
from bpcheck.sweep import SweepConfig, run_sweep
from tests.test_diagnosis import per_sample_engine

LAM = 0.05
ARCH = Arch((3, 4, 2), ("tanh", "sigmoid"), "mse")


def with_decay(grads, lam: float):
    """A user's engine with its L2 term's gradient lam W added to every dW."""
    def decayed(params, x, y):
        g = grads(params, x, y)
        return {k: v + lam * params[k] if k.startswith("W") else v for k, v in g.items()}
    return decayed


def _case(arch, seed=0, batch=5):
    rng = np.random.default_rng(seed)
    return Case(arch, init_params(arch, rng), rng.standard_normal((batch, arch.sizes[0])),
                rng.uniform(0, 1, (batch, arch.sizes[-1])))


@pytest.mark.parametrize("loss, acts", [("mse", ("tanh", "sigmoid")), ("bce", ("relu", "sigmoid")),
                                        ("cross_entropy", ("elu", "softmax"))])
def test_every_reference_carries_the_term(loss, acts):
    arch = Arch((3, 4, 2), acts, loss, weight_decay=0.7)
    case = _case(arch)
    result = check_case(case)
    assert result.label in ("AGREE", "KINK"), result.message()
    assert check_case(case, fast=True).label in ("AGREE", "KINK")
    from bpcheck import engine

    plain = engine.gradients(_case(Arch((3, 4, 2), acts, loss)))
    g = engine.gradients(case)
    assert np.allclose(g.grads["W1"] - plain.grads["W1"], 0.7 * case.params["W1"])
    assert np.array_equal(g.grads["b1"], plain.grads["b1"])  # biases carry no decay
    assert np.isclose(g.loss - plain.loss, 0.35 * sum(float((case.params[k] ** 2).sum()) for k in ("W1", "W2")))


def test_a_correct_engine_with_l2_passes_with_weight_decay():
    grads = with_decay(per_sample_engine(ARCH), LAM)
    assert check_gradients(grads, ARCH, weight_decay=LAM, cases=6, seed=3).ok
    undeclared = check_gradients(grads, ARCH, cases=4, dtype="float64", seed=3)
    assert not undeclared.ok and "declare it (--weight-decay 0.05" in undeclared.diagnosis, undeclared.diagnosis


def test_the_term_written_lambda_sum_w2_is_named_as_a_factor_2():
    result = check_gradients(with_decay(per_sample_engine(ARCH), 2 * LAM), ARCH, weight_decay=LAM, cases=4,
                             dtype="float64", seed=3)
    assert not result.ok and set(result.labels) == {"ENGINE"}
    assert result.diagnosis.startswith("dW1 and dW2 carry 2 lambda W where the declared L2 term")
    assert "a factor 2 on the weight-decay term" in result.diagnosis


def test_the_term_left_out_of_the_gradient_is_named():
    result = check_gradients(per_sample_engine(ARCH), ARCH, weight_decay=LAM, cases=4, dtype="float64", seed=3)
    assert not result.ok and "lack the declared L2 term's lambda W (lambda = 0.05)" in result.diagnosis


def test_a_wrong_derivative_is_still_named_under_weight_decay():
    arch = Arch((3, 4, 2), ("tanh", "identity"), "mse")
    grads = with_decay(per_sample_engine(arch, 1, lambda z, a, g: (1 - a) * g), LAM)
    result = check_gradients(grads, arch, weight_decay=LAM, cases=4, dtype="float64", seed=1)
    assert result.diagnosis.startswith("layer 1 computes tanh' as 1 - a (should be 1 - a²)"), result.diagnosis


def test_arch_json_round_trip_and_old_files():
    arch = Arch((2, 3, 1), ("relu", "sigmoid"), "bce", weight_decay=0.01)
    assert Arch.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    assert arch.label() == "2-3-1 relu,sigmoid bce + weight_decay 0.01"
    old = {"sizes": [2, 3, 1], "activations": ["relu", "sigmoid"], "loss": "bce"}
    # an arch without the L2 term writes no weight_decay key, and its label (what case digests hash) is unchanged
    assert Arch.from_dict(old).weight_decay == 0.0 and "weight_decay" not in Arch.from_dict(old).to_dict()
    assert Arch.from_dict(old).label() == "2-3-1 relu,sigmoid bce"
    for bad in (-1.0, float("nan"), float("inf"), "0.1", True):
        with pytest.raises(SpecError, match="weight_decay"):
            Arch((2, 1), ("identity",), "mse", weight_decay=bad)


def test_a_sweep_with_weight_decay_passes_on_the_engine():
    run = run_sweep(SweepConfig(cases=10, references=("fd",), weight_decay=0.3))
    assert not run.failures()
    assert all(r.case["arch"]["weight_decay"] == 0.3 for r in run.results)


def test_cli_weight_decay(tmp_path):
    src = tmp_path / "l2.py"
    src.write_text(
        "import numpy as np\n"
        "def grads(params, x, y):\n"
        "    z1 = x @ params['W1'] + params['b1']; a1 = np.tanh(z1)\n"
        "    z2 = a1 @ params['W2'] + params['b2']\n"
        "    d2 = 2 * (z2 - y) / z2.size; d1 = (d2 @ params['W2'].T) * (1 - a1 ** 2)\n"
        "    return {'W1': x.T @ d1 + 0.01 * params['W1'], 'b1': d1.sum(0),\n"
        "            'W2': a1.T @ d2 + 0.01 * params['W2'], 'b2': d2.sum(0)}\n")
    base = [sys.executable, "-m", "bpcheck", "check", f"{src}:grads", "--arch", "2-3-1", "--activations",
            "tanh,identity", "--loss", "mse", "--cases", "4", "--refs", "fd"]
    ok = subprocess.run(base + ["--weight-decay", "0.01"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run(base + ["--weight-decay", "-1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--weight-decay" in bad.stderr and "Traceback" not in bad.stderr
