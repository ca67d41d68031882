"""Out-of-sample run of the issue-13 corpus: 200 cases per engine and mode (the tests use 100), seeds shifted by 7
from the tests' plans, so none of these draws is one the tests pinned.

    python -m tests.corpus.out_of_sample        # every engine (about 20 min on 2 cores)
    python -m tests.corpus.out_of_sample 0      # every other engine from the first (run 0 and 1 side by side)
"""

import dataclasses
import sys
from collections import Counter

from tests.corpus import ENGINES
from tests.corpus.run import MODES, failures, plans, run, spec, summary
from tests.test_corpus import is_convention_engine

names = list(ENGINES)[int(sys.argv[1])::2] if len(sys.argv) > 1 else list(ENGINES)
for name in names:
    for mode in MODES:
        results = [run(dataclasses.replace(p, seed=p.seed + 7)) for p in plans(name, mode, 200)]
        n = sum(len(r.outcomes) for r in results)
        findings = [f.check for r in results for f in r.findings]
        bad = [o for r in results for o in r.outcomes if not o.ok]
        if is_convention_engine(spec(name), mode):
            unnamed = [o for o in bad if o.label != "ENGINE" or not o.explanation or "no known" in o.explanation]
            print(f"{name:24s} {mode:8s} convention engine: {len(bad)} of {n} fail, {len(unnamed)} without naming it; "
                  f"findings {findings}", flush=True)
        else:
            counts = sum((failures(r) for r in results), start=Counter())
            print(f"{name:24s} {mode:8s} {len(bad)} of {n} failing; findings {findings} {summary(counts, n) if bad else ''}",
                  flush=True)
