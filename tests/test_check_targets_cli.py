"""`bpcheck check --targets` and the --activations/--losses pools for random architectures (no --arch)."""

from __future__ import annotations

import pathlib

import pytest

from bpcheck.cli import main

# The vote these tests read needs torch and jax beside FD (the verdicts name them): without them, skip.
pytest.importorskip("torch", reason="the user's loss is judged beside torch and jax: pip install torch==2.13.0")
pytest.importorskip("jax", reason="the user's loss is judged beside torch and jax: pip install 'jax[cpu]'")

HERE = pathlib.Path(__file__).parent
FUNCTIONS = f"{HERE / 'independent.py'}"
CE = ["--arch", "3-4-3", "--activations", "tanh,softmax", "--loss", "cross_entropy"]


def run(capsys, *argv):
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_labels_give_integer_indices_on_the_command_line(capsys):
    code, out, err = run(capsys, f"{FUNCTIONS}:softmax_loss_labels", *CE, "--cases", "4", "--targets", "labels")
    assert code == 0, out + err
    assert "ok: 4 AGREE" in out


def test_any_targets_make_the_textbook_delta_a_convention(capsys):
    code, out, _ = run(capsys, f"{FUNCTIONS}:ce_textbook_grads", *CE, "--cases", "10", "--targets", "any")
    assert code == 0 and "CONVENTION" in out and "each target row assumed to sum to 1" in out, out


def test_pools_draw_random_architectures_from_the_given_activations_and_losses(capsys):
    code, out, err = run(capsys, f"{FUNCTIONS}:half_sse_grads", "--activations", "relu,tanh", "--losses", "mse",
                         "--loss-fn", f"{FUNCTIONS}:half_sse_loss", "--cases", "10")
    assert code == 0, out + err
    described = [line for line in out.splitlines() if line.strip().startswith("case ")]
    assert len(described) == 10
    for line in described:
        acts = line.split(", ")[1].split()[1].split(",")
        assert set(acts) <= {"relu", "tanh"} and " mse" in line, line


@pytest.mark.parametrize("argv, words", [
    (["--activations", "relu,tanhh", "--losses", "mse"], "'tanhh'"),
    (["--targets", "onehott"], "invalid choice: 'onehott'"),
    (["--arch", "2-2-1", "--activations", "tanh", "--loss", "mse", "--losses", "mse"], "--losses is a pool"),
])
def test_bad_pools_and_targets_are_one_line_exit_2(capsys, argv, words):
    code, out, err = run(capsys, f"{FUNCTIONS}:half_sse_grads", *argv, "--cases", "2")
    assert code == 2 and words in err and "Traceback" not in err, err


def test_report_sweep_draws_unnormalised_rows_only_under_any():
    import numpy as np

    from bpcheck.sweep import SweepConfig

    def row_sums(targets):
        config = SweepConfig(cases=60, seed=0, targets=targets).validate()
        drawn = [config.draw(i) for i in range(60)]
        # rows only: the layered stacks of the default sweep draw cross_entropy's targets as integer labels
        return [c.y.sum(axis=1) for c in drawn if c.arch.loss == "cross_entropy" and c.y.ndim == 2]

    default, wide = row_sums(None), row_sums("any")
    assert default and all(np.allclose(s, 1.0, atol=1e-6) for s in default)
    assert any(not np.allclose(s, 1.0, atol=1e-6) for s in wide)
    assert [c.y.tolist() for c in (SweepConfig(cases=3, seed=5).draw(i) for i in range(3))] == \
        [c.y.tolist() for c in (SweepConfig(cases=3, seed=5).draw(i) for i in range(3))]


def test_report_targets_option_is_validated(capsys):
    code = main(["report", "--cases", "1", "--targets", "soft", "--out", "unused"])
    assert code == 2 and "invalid choice: 'soft'" in capsys.readouterr().err
