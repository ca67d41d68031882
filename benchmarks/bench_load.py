"""What reading a report.json back costs (`render`'s load path), step by step, and the two schema validators side by side.

    python -m benchmarks.bench_load reports/report.json [--rounds 3]

Steps, each the best of --rounds: bpcheck.jsonfile.read_json (bounded read, strict UTF-8 and JSON, depth walk),
the schema validation bpcheck uses (fastjsonschema, compiled once), the same validation with jsonschema (draft
2020-12, the reference implementation), and the whole of report.jsonfmt.load (read, validate, RunResult).
The validators run in turn in one process on the same parsed data, so their ratio is measured side by side.
"""

from __future__ import annotations

import argparse
import os
import time


def _best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    import jsonschema
    from referencing import Registry, Resource

    from bpcheck import jsonfile
    from bpcheck.report import jsonfmt

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", help="a report.json written by `bpcheck report`")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    fix = "give a report.json"
    data = jsonfile.read_json(args.report, fix)
    registry = Registry().with_resources((jsonfile.SCHEMA_BASE + n, Resource.from_contents(jsonfile.schema(n)))
                                         for n in jsonfile.SCHEMA_FILES)
    reference = jsonschema.Draft202012Validator(jsonfile.schema("report.schema.json"), registry=registry)
    jsonfile.validate(data, "report.schema.json", args.report, fix)  # compile once, outside the timing
    steps = {
        "read_json (read + parse + depth)": lambda: jsonfile.read_json(args.report, fix),
        "validate: fastjsonschema (bpcheck)": lambda: jsonfile.validate(data, "report.schema.json", args.report, fix),
        "validate: jsonschema": lambda: reference.validate(data),
        "jsonfmt.load (all of render's load)": lambda: jsonfmt.load(args.report),
    }
    size = os.path.getsize(args.report)
    print(f"{args.report}: {size / 1e6:.1f} MB, {len(data['results'])} results, best of {args.rounds}")
    times = {name: _best(fn, args.rounds) for name, fn in steps.items()}
    for name, seconds in times.items():
        print(f"  {name:40s} {seconds:8.3f} s")
    ratio = times["validate: jsonschema"] / times["validate: fastjsonschema (bpcheck)"]
    print(f"  jsonschema / fastjsonschema: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
