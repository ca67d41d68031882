"""The examples: the essay's XOR script is caught with both of its bugs named; its fix and the column
engine pass. Run as a user would, through `python -m bpcheck check`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XOR = ["--arch", "2-2-1", "--activations", "sigmoid,sigmoid", "--loss", "mse"]


def bpcheck(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bpcheck", "check", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def essay():
    return bpcheck("examples/seed_xor.py:grads", *XOR)


def test_essay_script_exits_1(essay):
    assert essay.returncode == 1, essay.stdout + essay.stderr
    assert "Traceback" not in essay.stderr


def test_essay_bug_1_output_delta_is_summed_bce_not_mse(essay):
    line = next(x for x in essay.stdout.splitlines() if x.startswith("diagnosis:"))
    assert "its output delta y_hat - y is the gradient of summed binary cross-entropy" in line
    assert "not of the MSE it reports" in line and "sigma' and the 2/N factor are missing" in line


def test_essay_bug_2_biases_averaged_weights_summed(essay):
    line = next(x for x in essay.stdout.splitlines() if x.startswith("diagnosis:"))
    assert "db1 and db2 = 1/batch x that gradient" in line
    assert "the bias gradients average over the batch while the weight gradients sum" in line


def test_fixed_script_exits_0():
    done = bpcheck("examples/seed_xor_fixed.py:grads", *XOR)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok: 10 AGREE" in done.stdout


def test_column_layout_example_exits_0():
    done = bpcheck("examples/column_layout.py:grads", "--layout", "column", "--arch", "3-4-2",
                   "--activations", "tanh,sigmoid", "--loss", "mse", "--cases", "5")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("script", ["seed_xor.py", "seed_xor_fixed.py"])
def test_scripts_train_when_run(script):
    done = subprocess.run([sys.executable, os.path.join("examples", script)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Final predictions" in done.stdout and "Epoch 0: Loss" in done.stdout


HALF_SSE = ["--arch", "3-5-4-2", "--activations", "relu,relu,identity", "--loss", "mse",
            "--loss-fn", "examples/half_sse_relu.py:loss"]


def test_half_sse_relu_net_is_a_convention_and_its_layer_1_bug_is_named_in_layer_1():
    good = bpcheck("examples/half_sse_relu.py:grads", *HALF_SSE)
    assert good.returncode == 0 and "CONVENTION" in good.stdout and "ENGINE" not in good.stdout, good.stdout
    assert "half the sum of squared errors" in good.stdout
    bad = bpcheck("examples/half_sse_relu.py:grads_relu1_missing", *HALF_SSE)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    line = next(x for x in bad.stdout.splitlines() if x.startswith("diagnosis:"))
    assert line.startswith("diagnosis: the derivative of relu is missing in layer 1 (the rest follows half the sum")


def test_tanh_prime_bug_is_named_in_its_layer():
    out = bpcheck("examples/tanh_prime_bug.py:grads", "--arch", "3-4-2", "--activations", "tanh,identity",
                  "--loss", "mse")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "diagnosis: layer 1 computes tanh' as 1 - a (should be 1 - a²)" in out.stdout


def _readme_excerpt(marker: str) -> tuple[list[str], list[str]]:
    """The README's fenced block after the marker comment: (the command's argv after 'check', the output lines)."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    block = text[text.index(marker):].split("```")[1].strip().splitlines()
    command = block[0].removeprefix("$ python -m bpcheck check ").split()
    return command, block[1:]


def test_readme_cnn_excerpt():
    """The README's CNN excerpt is what the command prints (so it stays true), and the fixed function passes."""
    pytest.importorskip("torch", reason="the README's excerpt was run against fd, torch and jax")
    pytest.importorskip("jax", reason="the README's excerpt was run against fd, torch and jax")
    command, lines = _readme_excerpt("test_readme_cnn_excerpt")
    done = bpcheck(*command)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout.splitlines()
    for line in lines:
        assert line in out, (line, done.stdout)
    fixed = bpcheck("examples/cnn_kernel_flip.py:grads_fixed", *command[1:])
    assert fixed.returncode == 0 and "ok: 10 AGREE" in fixed.stdout, fixed.stdout + fixed.stderr
