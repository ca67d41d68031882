"""Check one layer's backward: `bpcheck check-layer layers.py:conv_forward layers.py:conv_backward --layer conv2d`.

The course contract (CS231n's layers.py): out, cache = forward(*arrays[, config]); grads = backward(dout,
cache) in the forward's argument order. A loss layer is one function: `check-layer layers.py:softmax_loss
--layer softmax_loss`, loss, dx = f(x, y). A layer of no known kind: --layer none --shapes '{"x": [4, 3],
"w": [3, 5]}' (finite differences of your own forward and the reference-free checks). Exit 0: it agrees;
1: a disagreement or a failed check; 2: bad input (one line).
"""

from __future__ import annotations

import argparse
import json
import sys

from .common import add_isolation, add_seed, int_at_least

HELP = "check one layer's forward/backward (course style, file.py:forward file.py:backward) against FD, torch and jax"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("functions", nargs="+", metavar="FILE.py:FUNCTION",
                   help="the forward and the backward (a loss layer: the one function)")
    p.add_argument("--layer", required=True, metavar="KIND",
                   help="affine, relu, tanh, sigmoid, gelu (torch's exact default), gelu_tanh, conv2d, maxpool2d, avgpool2d, "
                        "batchnorm, spatial_batchnorm, layernorm, dropout, "
                        "softmax_loss, or none (with --shapes)")
    p.add_argument("--config", metavar="JSON", help='fixed config values, e.g. \'{"stride": 2, "pad": 1}\'')
    p.add_argument("--shapes", metavar="JSON", help='--layer none: the forward\'s arrays, e.g. \'{"x": [4, 3], "w": [3, 5]}\'')
    p.add_argument("--cases", type=int_at_least(1), default=20, help="cases to draw (default %(default)s)")
    add_seed(p)
    p.add_argument("--refs", default="all", help="references, comma-separated from fd, torch, jax (default all)")
    p.add_argument("--precision", choices=("float64", "float32"), default="float64",
                   help="float32 for a layer that computes in float32 inside (default float64)")
    p.add_argument("--no-shrink", action="store_true", help="do not search for the smallest failing case")
    add_isolation(p)


def _json(flag: str, text: str | None):
    from ..spec import UsageError

    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag} {text!r} is not JSON ({exc.msg}): give e.g. '{{\"stride\": 1}}'") from None


def run(args: argparse.Namespace) -> int:
    from ..layercheck import check_layer
    from ..spec import UsageError

    functions = args.functions
    if len(functions) > 2:
        raise UsageError(f"{len(functions)} functions given: give FILE.py:FORWARD FILE.py:BACKWARD (or one loss function)")
    for spec in functions:
        if spec.count(":") < 1 or not spec.rsplit(":", 1)[1].strip():
            raise UsageError(f"{spec!r} does not name a function: write it as path/to/file.py:function")
    forward, backward = functions[0], (functions[1] if len(functions) == 2 else None)
    result = check_layer(forward, backward, layer=args.layer, config=_json("--config", args.config),
                         shapes=_json("--shapes", args.shapes), cases=args.cases, seed=args.seed, references=args.refs,
                         timeout=args.timeout, in_process=args.in_process, precision=args.precision,
                         shrink=not args.no_shrink)
    problem = result.input_error
    if problem is not None:
        print(f"bpcheck check-layer: error: {problem.message}", file=sys.stderr)
        return 2
    print(f"bpcheck check-layer {' '.join(functions)}: " + result.summary())
    return 0 if result.ok else 1
