"""One case that ran, judged: the verdicts against the references and the property findings.

A module of its own because both the sweep (checking) and the shrinking search (shrinking) judge cases, and
checking calls shrinking: both import this module, so neither imports the other back.
"""

from __future__ import annotations

from .cases import LayerCase
from .course import CourseKind
from .diagnose import diagnose
from .judge import PASSING, judge, worst
from .result import Finding, LayerOutcome
from .run_case import CaseRun


def per_sample(kind: CourseKind) -> bool:
    """Whether the kind treats each sample of a batch on its own (then the permutation property applies)."""
    if kind.registry is None:
        return kind.loss
    from ..layers import LAYERS

    return kind.name != "dropout" and LAYERS[kind.registry].per_sample


def case_config(case: LayerCase) -> tuple:
    """What the 'fails only for' observation compares: the batch and each config value of the case."""
    return (("batch", case.batch),) + tuple(sorted((k, v) for k, v in (case.config or {}).items()
                                                   if k not in ("mode", "seed") and isinstance(v, (int, float))))


def judge_case(kind: CourseKind, run: CaseRun, index: int, names: list[str], precision: str,
               rtol: float) -> tuple[LayerOutcome, list[Finding]]:
    """The verdicts and property findings of one case that ran."""
    from .properties import linearity, permutation, precision32, same_for_other, same_twice, zero_dout

    case, oracle = run.case, run.oracle
    findings = [Finding(check, message, index, arg) for check, arg, message in run.problems]
    arg_names = list(run.grads)
    e = run.rounding if precision == "float64" else {k: v * 2.0**29 for k, v in run.rounding.items()}
    verdicts = []
    if oracle is not None:
        ran = {n: oracle.gradients(n, run.dout) for n in names if n != "fd"}
        fd = oracle.fd(run.dout) if "fd" in names else None
        verdicts = judge(run.grads, ran, fd, e, pool=kind.name == "maxpool2d")
        right = next(iter(ran.values()), None) or ({k: v.grad for k, v in fd.items()} if fd else None)
    elif run.fd is not None:
        verdicts = judge(run.grads, {}, run.fd, e)
        right = {k: v.grad for k, v in run.fd.items()}
    else:
        right = None
    checks = []
    if run.linear is not None:
        g1, g2, g12, a, b, zeros = run.linear
        checks.append(("zero",) + zero_dout(kind.name, arg_names, zeros))
        checks.append(("linearity",) + linearity(kind.name, arg_names, g1, g2, g12, a, b, e, rtol))
    if run.permuted is not None:
        perm, gp = run.permuted
        checks.append(("permutation",) + permutation(kind.name, arg_names, list(run.grads.values()), gp, perm, e, rtol))
    if run.float32 is not None and right is not None:
        checks.append(("float32",) + precision32(kind.name, arg_names, run.float32, right, run.rounding))
    if run.again is not None:
        checks.append(("twice",) + same_twice(kind.name, arg_names, list(run.grads.values()), run.again, False, rtol))
        stale = same_for_other(kind.name, arg_names, list(run.grads.values()), run.other)
        if not stale[1]:
            stale = same_twice(kind.name, arg_names, list(run.grads.values()), run.after_other, True, rtol)
        checks.append(("stale",) + stale)
    findings += [Finding(check, message, index, arg) for check, arg, message in checks if message]
    label = worst([v.label for v in verdicts]) if verdicts else ("AGREE" if not findings else "ERROR")
    wrong = tuple(dict.fromkeys(v.arg for v in verdicts if v.label not in PASSING))
    text = diagnose(kind, oracle, run.grads, right, wrong, run.dout) if wrong and oracle is not None and right else ""
    ok = label in PASSING
    outcome = LayerOutcome(index, label, ok, case.describe(), case.batch, tuple(verdicts), text, (), case_config(case))
    return outcome, findings
