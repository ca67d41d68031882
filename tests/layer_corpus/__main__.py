"""python -m tests.layer_corpus: every entry against torch autograd, one line each (needs torch; jax for the jax ones).

For a correct entry: the worst relative error over its cases and two seeds. For a bug: the smallest error of its wrong
gradient(s) on its cases, the worst error of everything else, and the worst error on its `passes` cases.
"""

from .manifest import AUTOGRAD_BUGS, AUTOGRAD_CORRECT, BUGS, CORRECT
from .truth import autograd_errors, errors


def main() -> None:
    seeds = (0, 1)
    print(f"{'entry':30s} {'layer':13s} {'worst error':>11s}")
    for e in CORRECT + AUTOGRAD_CORRECT:
        judge = autograd_errors if e in AUTOGRAD_CORRECT else errors
        worst = max(max(judge(e, c, s).values()) for c in e.cases for s in seeds)
        print(f"{e.name:30s} {e.layer:13s} {worst:11.1e}")
    print(f"\n{'bug':30s} {'layer':13s} {'wrong':12s} {'min wrong':>9s} {'max other':>9s} {'passes':>8s}")
    for b in BUGS + AUTOGRAD_BUGS:
        judge = autograd_errors if b in AUTOGRAD_BUGS else errors
        runs = [judge(b, c, s) for c in b.cases for s in seeds]
        low = min(r[g] for r in runs for g in b.wrong)
        other = max([r[k] for r in runs for k in r if k not in b.wrong] or [0.0])
        passes = f"{max(max(judge(b, c, s).values()) for c in b.passes for s in seeds):8.1e}" if b.passes else "-"
        flag = " (convention)" if getattr(b, "convention", False) else ""
        print(f"{b.name:30s} {b.layer:13s} {','.join(b.wrong):12s} {low:9.1e} {other:9.1e} {passes:>8s}{flag}")


if __name__ == "__main__":
    main()
