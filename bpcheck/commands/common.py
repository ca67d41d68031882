"""Argument types shared by the subcommands: each rejects a bad value with the value and the fix."""

from __future__ import annotations

import argparse


def int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number: give an integer >= {minimum}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small: give an integer >= {minimum}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number: give a positive number like 0.5") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number > 0")
    return value


def add_targets(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--targets", choices=("onehot", "probs", "labels", "any"), default=None,
                        help="bce/cross_entropy targets to draw: onehot ({0,1} for bce), probs (rows summing to 1; "
                             "[0,1] for bce), labels (one-hot, but a user's function gets integer class indices), any "
                             "(adds nonnegative rows not summing to 1); default: one-hot and probability rows")


def add_weight_decay(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weight-decay", type=nonnegative_float, default=None, metavar="LAMBDA",
                        help="an L2 term lambda/2 sum ||W_l||^2 (weights, not biases) in the declared loss, so "
                             "dL/dW_l gains lambda W_l; a gradient with 2 lambda W (the term written lambda sum ||W||^2) "
                             "is named as a factor 2 on that term (default: none)")


def nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number: give a number >= 0 like 0.01") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0, like 0.01")
    return value


def add_seed(parser: argparse.ArgumentParser, default: int = 0) -> None:
    parser.add_argument("--seed", type=int_at_least(0), default=default,
                        help=f"seed for every random draw; the run is reproduced bit for bit from it (default {default})")


def add_executor(parser: argparse.ArgumentParser) -> None:
    """--jobs N and --scheduler ADDRESS: where the cases run (bpcheck.executors); results do not depend on it."""
    parser.add_argument("--jobs", type=int_at_least(1), default=1,
                        help="worker processes on this machine (default %(default)s; results do not depend on it)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run the cases on a Dask cluster: tcp://HOST:8786 (a running `dask scheduler`), or local:N "
                             "for N worker processes here (needs bpcheck[cluster]; results do not depend on it)")


def add_isolation(parser: argparse.ArgumentParser) -> None:
    """--timeout and --in-process: how the user's function runs (bpcheck.byo.isolation)."""
    from ..spec import DEFAULT_TIMEOUT

    parser.add_argument("--timeout", type=positive_float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="seconds per call of your function (default %(default)g); a call that overruns is "
                             "killed and reported")
    parser.add_argument("--in-process", action="store_true",
                        help="run your function in bpcheck's own process, not in a worker process: for a debugger; "
                             "this trusts the code (an exit, a hang or a patched numpy then reaches bpcheck)")
