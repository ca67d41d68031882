"""The essay's first lesson: the engine learns XOR, from most seeds, on the CLI defaults."""

from __future__ import annotations

import numpy as np
import pytest

from bpcheck.cli import main
from bpcheck.commands.xor import DEFAULTS
from bpcheck.xor import train_xor


def test_defaults_learn_xor_from_at_least_90_percent_of_seeds_0_to_49():
    learned = [train_xor(seed=s, **{k: DEFAULTS[k] for k in ("epochs", "lr", "hidden", "activation", "loss")}).learned
               for s in range(50)]
    rate = sum(learned) / 50
    print(f"XOR learned from {sum(learned)}/50 seeds ({rate:.0%})")
    assert rate >= 0.9


def test_xor_command_prints_the_loss_every_1000_epochs_and_a_prediction_table(capsys):
    assert main(["xor", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "seed 0" in out
    assert "Epoch 0: Loss = " in out and "Epoch 9000: Loss = " in out
    assert out.count("-> Predicted:") == 4 and "learned XOR" in out


def test_xor_training_is_deterministic_from_its_seed():
    a, b = train_xor(seed=7, epochs=500), train_xor(seed=7, epochs=500)
    assert a.history == b.history and all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_xor_exits_nonzero_when_it_does_not_learn(capsys):
    assert main(["xor", "--epochs", "1"]) == 1
    assert "did not learn XOR" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["xor", "--activation", "sigmiod"], ["'sigmiod'", "did you mean 'sigmoid'"]),
    (["xor", "--loss", "cross_entropy"], ["cross_entropy", "mse, bce or huber"]),
    (["xor", "--lr", "-1"], ["--lr", "> 0"]),
    (["xor", "--epochs", "0"], ["--epochs", ">= 1"]),
    (["xor", "--epocs", "5"], ["--epocs"]),
])
def test_xor_bad_flags_exit_2_with_one_line(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err
