"""Re-run check_case on a saved case (cases/<id>.json from a report, or a bare Case JSON) and print the verdict.

Exit 0 when the replayed case agrees (no --fail-on label), 1 when it disagrees, 2 for a bad file.
"""

from __future__ import annotations

import argparse

from .common import add_isolation

HELP = "re-check a saved case file and print its verdict (exit 1 if it disagrees)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("case", help="cases/<id>.json from a report, or a Case JSON")
    p.add_argument("--refs", default=None, help="references (default: those the file recorded, else all)")
    p.add_argument("--engine", default=None, metavar="FILE.py:FUNCTION",
                   help="replay this gradient function (default: bpcheck's engine; a case checked with --engine "
                        "needs it given again: replay runs no code that a file names)")
    add_isolation(p)


def run(args: argparse.Namespace) -> int:
    from ..replaying import load_case, recorded_producer, replay_case

    if args.refs is not None:
        from .. import references as refs

        refs.require(args.refs, "--refs")
    case, recorded = load_case(args.case)  # a bad file is a one-line error before anything runs; read once
    options = {"timeout": args.timeout, "in_process": args.in_process}
    producer = recorded_producer(recorded, args.engine, **options)
    result = replay_case(case, recorded, producer, references=args.refs)
    print(result.message())
    if "label" in recorded:
        was = recorded["label"]
        same = "the same verdict" if was == result.label else "a different verdict"
        print(f"recorded {was} (producer {recorded['producer']}), replayed {result.label} "
              f"(producer {result.producer}): {same}")
    print(f"verdict: {'FAIL' if not result.ok else 'ok'} {result.label}")
    return 0 if result.ok else 1
