"""Check your own backprop: `bpcheck check path/to/file.py:function --arch 2-2-1 --activations sigmoid,sigmoid --loss mse`.

The function takes (params, x, y) (or (arch, params, x, y), then --arch may be left out to draw
architectures) and returns {'W1': dL/dW1, 'b1': dL/db1, ...}: row-vector batches, W_l (n_{l-1}, n_l),
b_l (n_l,), unless --layout column (W_l (n_l, n_{l-1}), b_l (n_l, 1), samples as columns).
Exit 0: it agrees (a CONVENTION counts); 1: a disagreement or a failed check; 2: a usage or input
error (missing file or function, it raises or hangs, wrong keys, shapes or dtype).
"""

from __future__ import annotations

import argparse
import json
import sys

from .common import add_isolation, add_seed, add_targets, add_weight_decay, int_at_least

HELP = "check your own gradient function (file.py:function) against finite differences, torch and jax"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("function", help="the gradient function, as path/to/file.py:function")
    p.add_argument("--arch", help="layer sizes joined by '-', e.g. 2-2-1 (with --activations and --loss)")
    p.add_argument("--activations", help="one activation per layer, comma-separated, or one for all (e.g. sigmoid); "
                   "without --arch: the activations random architectures may use")
    p.add_argument("--loss", help="the declared loss: mse, bce, cross_entropy or huber")
    p.add_argument("--losses", help="without --arch: the losses random architectures may use, comma-separated")
    p.add_argument("--arch-json", metavar="FILE_OR_JSON",
                   help='the arch as JSON, in a file or inline: any stack {"in_shape": [1, 8, 8], "layers": [["conv2d", '
                   '{"out_channels": 2, "kernel": 3}], ["flatten", {}], ["dense", {"n": 3, "activation": "softmax"}]], '
                   '"loss": "cross_entropy"}, or an MLP {"sizes": [2, 2, 1], "activations": ["sigmoid", "sigmoid"], "loss": "mse"}')
    p.add_argument("--loss-fn", metavar="FILE:FUNCTION",
                   help="your own loss(params, x, y) -> float: finite differences then differentiate it")
    p.add_argument("--cases", type=int_at_least(1), default=10, help="cases to draw (default %(default)s)")
    add_seed(p)
    p.add_argument("--refs", default="all", help="references, comma-separated from fd, torch, jax (default all)")
    p.add_argument("--layout", choices=("row", "column"), default="row", help="how W, b and x are laid out (default row)")
    p.add_argument("--dtype", choices=("float64", "float32", "both"), default="both",
                   help="dtypes of the drawn cases (default both)")
    add_isolation(p)
    add_targets(p)
    add_weight_decay(p)
    p.add_argument("--report", metavar="DIR", help="also write the report files (as the report command) to DIR")


def arch_from_args(args: argparse.Namespace):
    """The Arch from --arch/--activations/--loss or --arch-json; None when neither is given."""
    from ..spec import Arch, UsageError

    given = [n for n in ("arch", "activations", "loss") if getattr(args, n)]
    if args.arch_json:
        if given:
            raise UsageError(f"--arch-json and --{given[0]} both give the arch: use one of them")
        return Arch.from_dict(read_arch_json(args.arch_json))
    if not args.arch and (args.activations or args.loss or args.losses):
        return _pools(args)
    if args.losses:
        raise UsageError("--losses is a pool for random architectures: with --arch, give the one --loss")
    if not given:
        return None
    missing = [n for n in ("arch", "activations", "loss") if not getattr(args, n)]
    if missing:
        raise UsageError(f"--{' and --'.join(missing)} missing: give --arch, --activations and --loss together, "
                         "e.g. --arch 2-2-1 --activations sigmoid,sigmoid --loss mse")
    return Arch.parse(args.arch, args.activations, args.loss)


def read_arch_json(text: str) -> object:
    """The JSON that --arch-json gives: inline when it starts with '{' (or '['), else the file it names."""
    from ..spec import SpecError

    example = ('write {"sizes": [2, 2, 1], "activations": ["sigmoid", "sigmoid"], "loss": "mse"}, or a stack '
               '{"in_shape": [2], "layers": [["dense", {"n": 1, "activation": "sigmoid"}]], "loss": "mse"}')
    inline = text.lstrip().startswith(("{", "["))
    try:
        if inline:
            return json.loads(text)
        with open(text, encoding="utf-8") as f:
            return json.load(f)
    except OSError as exc:
        raise SpecError(f"cannot read --arch-json {text!r} ({exc.strerror}): give an existing file, or the JSON itself") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" ({exc.msg} at line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise SpecError(f"--arch-json {text!r:.80} is not JSON{where}: {example}") from None


def _parametrised(name: str) -> bool:
    """'leaky_relu:0.2': an activation with its parameter (spec.PARAMETERS)."""
    from ..spec import SpecError, canonical_activation

    try:
        canonical_activation(name)
    except SpecError:
        return False
    return True


def _pools(args: argparse.Namespace):
    """Random small nets (the default limits) whose activations and losses come from the pools given."""
    from ..spec import ACTIVATIONS, LOSSES, UsageError, suggest
    from ..strategies import architectures

    pools = {}
    for flag, text, vocabulary in (("activations", args.activations, ACTIVATIONS),
                                   ("losses", args.losses or args.loss, LOSSES)):
        if not text:
            continue
        names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
        bad = [n for n in names if n not in vocabulary and not (flag == "activations" and _parametrised(n))]
        if bad or not names:
            raise UsageError(f"--{flag} has unknown {bad[0] if bad else text!r}{suggest(bad[0], vocabulary) if bad else ''}: "
                             f"choose from {', '.join(vocabulary)}")
        pools[flag] = names
    try:
        return architectures(max_depth=3, max_width=4, **pools)
    except Exception as exc:  # the pools may leave no architecture (e.g. cross_entropy without softmax)
        raise UsageError(f"--activations/--losses leave no architecture to draw ({exc}): widen the pools") from None


def run(args: argparse.Namespace) -> int:
    import os

    from .. import references as refs

    refs.require(args.refs, "--refs")  # before any work: a named reference must be able to run here
    if args.report:  # absolute before any user code runs: a chdir in it cannot move the report
        args.report = os.path.abspath(args.report)
    if not args.report:
        return _check(args, None)
    from ..report import REPORT, OutputFolder

    # before any work (and before the user's file is imported): --report must be writable and not in use
    with OutputFolder(args.report, REPORT, flag="--report") as folder:
        return _check(args, folder)


def _check(args: argparse.Namespace, folder) -> int:
    from ..byo import check_gradients
    from ..byo.isolation import isolate

    arch = arch_from_args(args)
    grad_fn = isolate(args.function, timeout=args.timeout, in_process=args.in_process)
    loss_fn = isolate(args.loss_fn, timeout=args.timeout, in_process=args.in_process) if args.loss_fn else None
    dtype = None if args.dtype == "both" else args.dtype
    result = check_gradients(grad_fn, arch, loss_fn=loss_fn, cases=args.cases, seed=args.seed,
                             references=args.refs, dtype=dtype, layout=args.layout, timeout=args.timeout,
                             targets=args.targets, weight_decay=args.weight_decay, in_process=args.in_process)
    problem = result.input_error
    if problem is not None:
        print(f"bpcheck check: error: {problem.message}", file=sys.stderr)
        return 2
    print(f"bpcheck check {args.function}: " + result.summary())
    if folder is not None:
        write_report(result, folder, args.report)
    return 0 if result.ok else 1


def write_report(result, folder, directory: str) -> None:
    """The report command's files (every format, and cases/<id>.json for replay) through its one writer."""
    from ..report import write_report as writer

    paths = writer(result.run_result(), folder)
    print(f"report written to {directory} ({len(paths)} files)")
