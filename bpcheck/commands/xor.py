"""Train the seed essay's XOR network with the hand-written engine and print its predictions."""

from __future__ import annotations

import argparse

from .common import add_seed, int_at_least, positive_float

HELP = "train the essay's 2-2-1 XOR network with the engine (exit 0 when it learns XOR)"
# Measured: with these defaults the 2-2-1 sigmoid net learns XOR from RATE of seeds 0..49 (tests/test_xor.py).
DEFAULTS = {"epochs": 10000, "lr": 5.0, "hidden": 2, "activation": "sigmoid", "loss": "mse"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_seed(p)
    p.add_argument("--epochs", type=int_at_least(1), default=DEFAULTS["epochs"], help="training epochs (default %(default)s)")
    p.add_argument("--lr", type=positive_float, default=DEFAULTS["lr"], help="learning rate (default %(default)s)")
    p.add_argument("--hidden", type=int_at_least(1), default=DEFAULTS["hidden"], help="hidden units (default %(default)s)")
    p.add_argument("--activation", default=DEFAULTS["activation"], help="hidden activation (default %(default)s)")
    p.add_argument("--loss", default=DEFAULTS["loss"], help="mse, bce or huber (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    from ..xor import train_xor

    print(f"seed {args.seed}")
    result = train_xor(seed=args.seed, epochs=args.epochs, lr=args.lr, hidden=args.hidden,
                       activation=args.activation, loss=args.loss, log=print)
    print("=" * 60)
    print(f"network {result.arch.label()}, {args.epochs} epochs, lr {args.lr}")
    print("Final predictions:")
    for xi, pi, yi in zip(result.x, result.predictions[:, 0], result.y[:, 0]):
        mark = "ok" if (pi > 0.5) == (yi > 0.5) else "WRONG"
        print(f"Input: {xi.astype(int)} -> Predicted: {pi:.4f}, Actual: {int(yi)}  {mark}")
    print("learned XOR" if result.learned else "did not learn XOR: try another --seed, more --epochs or --hidden 3")
    return 0 if result.learned else 1
