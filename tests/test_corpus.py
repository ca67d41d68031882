"""bpcheck on backprop it did not write: the corpus of tests/corpus/ (issue 13).

Every correct engine is checked with check_gradients without and with its own loss_fn (100 cases each, over
its fixed archs and, when it takes arch, its pool of random ones): no failing label, no finding. An engine
whose loss is another convention (half SSE, summed CE, ...) fails without its loss_fn, as it must, and
every failing case must then name the convention. Every planted bug (tests/corpus/bugs.py) must be caught,
in every float64 case whose gradient it changes, with every ENGINE verdict naming the layer and a tensor
where the bug shows (found by diffing the bug with its correct engine, not by bpcheck).

What bpcheck gets wrong today is marked xfail(strict=True) with the failure seen, in KNOWN_ENGINE and
KNOWN_BUG below: when a fix lands the test XPASSes, the run goes red, and the mark is to be removed.
`python -m tests.corpus.run [names]` and `python -m tests.corpus.run --bugs [names]` print the same in full.
"""

from __future__ import annotations

from collections import Counter

import pytest

from bpcheck import SpecError

pytest.importorskip("torch", reason="the corpus is judged against torch and jax: pip install torch==2.13.0")
pytest.importorskip("jax", reason="the corpus is judged against torch and jax: pip install 'jax[cpu]'")

from tests.corpus import ENGINES  # noqa: E402
from tests.corpus.bugs import BUGS, check, judge  # noqa: E402
from tests.corpus.run import MODES, failures, plans, run, spec, summary  # noqa: E402

# (engine, mode) -> the failure bpcheck gives today (python -m tests.corpus.run ENGINE).
KNOWN_ENGINE: dict[tuple[str, str], str] = {}

# (bug, mode) -> what bpcheck gets wrong today (python -m tests.corpus.run --bugs BUG).
KNOWN_BUG: dict[tuple[str, str], str] = {}


def _engine_params():
    for name in ENGINES:
        for mode in MODES:
            known = KNOWN_ENGINE.get((name, mode))
            marks = [pytest.mark.xfail(strict=True, reason=known, raises=(AssertionError, SpecError))] if known else []
            yield pytest.param(name, mode, id=f"{name}-{mode}", marks=marks)


def _bug_params():
    for b in BUGS:
        for mode in b.modes:
            known = KNOWN_BUG.get((b.name, mode))
            marks = [pytest.mark.xfail(strict=True, reason=known, raises=AssertionError)] if known else []
            yield pytest.param(b, mode, id=f"{b.name}-{mode}", marks=marks)


def is_convention_engine(info: dict, mode: str) -> bool:
    """Without its loss_fn, an engine of another loss convention must fail, naming the convention."""
    return mode == "declared" and info["loss_convention"] != "declared" and info["weight_decay"] is None


@pytest.mark.parametrize(("name", "mode"), list(_engine_params()))
def test_correct_engine(name, mode):
    info = spec(name)
    planned = plans(name, mode)
    assert sum(p.cases for p in planned) >= 100
    results = [run(p) for p in planned]
    findings = [f"{f.check}: {f.message}" for r in results for f in r.findings]
    assert findings == [], f"{name} ({mode}): {findings[:3]}"
    assert sum(len(r.outcomes) for r in results) == sum(p.cases for p in planned)
    bad = [o for r in results for o in r.outcomes if not o.ok]
    if is_convention_engine(info, mode):
        unnamed = [o for o in bad if o.label != "ENGINE" or not o.explanation or "no known" in o.explanation]
        assert bad, f"{name} follows {info['loss_convention']}, yet passes as the declared loss"
        assert unnamed == [], (f"{name} ({mode}), {info['loss_convention']}: {len(unnamed)} case(s) fail without naming "
                               f"it: {unnamed[0].label} {unnamed[0].describe}: {unnamed[0].explanation}")
    else:
        counts = sum((failures(r) for r in results), start=Counter())
        assert bad == [], f"{name} ({mode}): {summary(counts, sum(len(r.outcomes) for r in results))}"


@pytest.mark.parametrize(("bug", "mode"), list(_bug_params()))
def test_planted_bug(bug, mode):
    result = check(bug, mode)
    j = judge(bug, result)
    assert j["as_listed"] >= 1, f"{bug.name}: bugs.py places it in layer {bug.layer} {bug.tensors}, never seen there"
    assert j["caught"] >= 1, f"{bug.name} ({mode}) is never caught: {dict(result.labels)}"
    problems = []
    if j["missed"]:
        labels = Counter(m.split(": ")[-1].split(" (")[0] for m in j["missed"])
        problems.append(f"missed in {len(j['missed'])} of {j['revealed']} float64 cases that reveal it "
                        f"({', '.join(f'{k} {n}' for k, n in labels.items())}), e.g. {j['missed'][0]}")
    if j["misplaced"]:
        named = Counter(m.split(": ")[1].split(", the bug")[0] for m in j["misplaced"])
        problems.append(f"{len(j['misplaced'])} ENGINE verdicts in {j['caught']} caught cases misplace it: "
                        + ", ".join(f"{k} ({n})" for k, n in named.most_common(4))
                        + f"; it is in layer {bug.layer} {'/'.join(bug.tensors)}")
    assert problems == [], f"{bug.name} ({mode}): " + "; ".join(problems)
