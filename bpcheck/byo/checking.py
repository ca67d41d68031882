"""check_gradients: check anyone's own backprop against finite differences, torch and jax.

    import bpcheck
    result = bpcheck.check_gradients(my_grads, bpcheck.Arch((2, 2, 1), ("sigmoid", "sigmoid"), "mse"))
    print(result)            # verdict, diagnosis, the checks, the first failing case, one line per case
    assert result.ok

Per case: the user's function is called in its own layout (layouts.py) on writable copies; its output
is validated and converted (calls.py); the converted gradient goes through check.check_case like the
engine's, against torch and jax (the declared arch.loss) and finite differences, of the declared
loss or, given loss_fn, of the user's own loss. A disagreement is then explained by the loss
convention the gradient follows (conventions.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .. import engine
from .. import references as refs
from ..check import check_case, compared, reference_trace
from ..compare import CaseContext
from ..results import DEFAULT_FAIL_ON, LABELS, CheckResult, Verdict, worst_label
from ..spec import Arch, BpcheckError, Case, Gradients, with_weight_decay
from ..strategies import target_kinds
from .calls import UserGrad, function_name, hidden_state, narrower, nonfinite, takes_arch, user_targets
from .cases import build_cases
from .conventions import explain
from .isolation import DEFAULT_TIMEOUT, RemoteFunction, Worker, isolate
from .layouts import Layout, resolve_layout
from .loading import UserCallError, call_user
from .relocalise import relocalise
from .result import CaseOutcome, Finding, Result, common_diagnosis
from .user_oracle import assumption, with_user_fd

DEFAULT_CASES = 10


def check_gradients(
    grad_fn: Callable[..., Any],
    arch: Arch | dict | Any | None = None,
    *,
    loss_fn: Callable[..., Any] | None = None,
    cases: int | Sequence[Case] | tuple[np.ndarray, np.ndarray] = DEFAULT_CASES,
    seed: int = 0,
    references: str | Sequence[str] | None = None,
    dtype: str | Sequence[str] | None = None,
    layout: Layout | str | tuple | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    targets: str | None = None,
    skip_missing: bool = False,
    weight_decay: float | None = None,
    in_process: bool = False,
) -> Result:
    """Check grad_fn(params, x, y) -> {'W1': dL/dW1, 'b1': ..., ...} for arch.

    grad_fn(arch, params, x, y) is passed the Arch; arch may then be a Hypothesis strategy of Archs or
    None (small random nets). arch: an Arch or its dict (Arch.to_dict()). loss_fn(params, x, y) -> float,
    the user's own loss in the same layout: finite differences differentiate it (any convention works)
    while torch and jax differentiate arch.loss; a gradient that matches the user's loss but not the
    declared one is CONVENTION, with the factor or loss named. cases: how many to draw from
    bpcheck.strategies over every regime (deterministic from seed), a list of Cases, or fixed (x, y)
    with parameters drawn from seed. dtype: 'float64', 'float32' or both (None). layout: 'row'
    (bpcheck's), 'column', a Layout or (to_user, from_user). timeout: seconds per call of grad_fn or
    loss_fn (None: no limit). grad_fn and loss_fn run in a worker process (bpcheck.byo.isolation), so
    that exiting, hanging or patching numpy cannot change the verdict; in_process=True runs them in
    this process instead, trusting them (for a debugger).
    targets (bce and cross_entropy): None for one-hot and probability rows (what users feed), 'onehot',
    'probs', 'labels' (one-hot rows, handed to grad_fn and loss_fn as integer class indices) or 'any'
    (also nonnegative rows not summing to 1: a gradient exact only on normalised rows is CONVENTION).
    references: None or "all" (the ones that cannot run here are SKIPPED), or names, each of which must
    be able to run (else UsageError), unless skip_missing (the pytest fixture's: it skips the test).
    weight_decay: lambda of an L2 term lambda/2 sum ||W||^2 in the declared loss, set on every case's arch
    (None: as the arch says, Arch.weight_decay); a gradient with 2 lambda W (the term written lambda sum ||W||^2)
    is named as that factor 2.
    """
    lay = resolve_layout(layout)
    target_kinds(targets)
    labels = targets == "labels"
    UserGrad(grad_fn, lay, timeout, labels=labels)  # a bad timeout or arity is reported before a worker starts
    # One worker process for this run, shared by grad_fn and loss_fn (unless the caller isolated grad_fn already)
    owned = not isinstance(grad_fn, RemoteFunction)
    worker = Worker() if owned else grad_fn.worker
    grad_fn = isolate(grad_fn, timeout=timeout, in_process=in_process, worker=worker)
    loss_fn = None if loss_fn is None else isolate(loss_fn, timeout=timeout, in_process=in_process, worker=worker)
    user = UserGrad(grad_fn, lay, timeout, labels=labels)
    with_loss_arch = takes_arch(loss_fn, "loss_fn") if loss_fn is not None else False
    names = refs.resolve(references) if skip_missing else refs.require(references)
    drawn = build_cases(arch, cases, seed=seed, dtype=dtype, any_arch=user.with_arch, targets=targets)
    for case_arch in {c.arch for c in drawn} if lay.shapes is not None else ():
        lay.shapes(case_arch)  # a layout that cannot hold the arch (column on a conv stack) is a UsageError before any call
    if weight_decay is not None:
        Arch((1, 1), ("identity",), "mse", weight_decay)  # a bad lambda is Arch's SpecError, before any call
        drawn = [with_weight_decay(c, weight_decay) for c in drawn]
    findings: list[Finding] = []
    outcomes: list[CaseOutcome] = []
    for index, case in enumerate(drawn):
        describe = f"{case.x.dtype.name} {case.regime}, {case.arch.label()}, batch {case.batch}"
        try:
            call = user.call(case)
            if index == 0:
                _check_memory(user, case, call, findings)
        except UserCallError as exc:
            findings.append(Finding("timeout" if "did not return" in exc.headline else "raises", str(exc), index))
            break
        except BpcheckError as exc:
            findings.append(Finding("interface", str(exc), index))
            break
        if call.mutated and not any(f.check == "mutation" for f in findings):
            findings.append(Finding("mutation", f"{user.name} {call.mutated}", index))
        narrow = narrower(user.name, call.grads, case.x.dtype)
        if narrow and not any(f.check == "dtype" for f in findings):
            findings.append(Finding("dtype", narrow, index))
        bad = nonfinite(user.name, call.grads)
        if bad:
            findings.append(Finding("finite", bad, index))
            outcomes.append(CaseOutcome(index, "ERROR", False, None, bad, describe))
            continue
        user_loss = None if loss_fn is None else _user_loss(loss_fn, with_loss_arch, lay, case, timeout, labels)
        outcomes.append(_check_one(index, case, call.grads, user.name, names, user_loss, describe, call.loss))
    ok = all(o.ok for o in outcomes) and not findings and bool(outcomes)
    meta = {"requested_cases": len(drawn), "loss_fn": function_name(loss_fn) if loss_fn else None}
    if owned:  # this run's worker: stopped now, not whenever the garbage collector gets to it
        worker.stop()
    return Result(user.name, lay.name, tuple(names), seed, tuple(outcomes), tuple(findings),
                  common_diagnosis(outcomes), ok, meta)


def _check_memory(user: UserGrad, case: Case, first, findings: list[Finding]) -> None:
    message = hidden_state(user, case, first)
    if message:
        findings.append(Finding("stale", message, 0))


def _user_loss(loss_fn, with_arch: bool, lay: Layout, case: Case, timeout: float | None, labels: bool = False):
    """Params (bpcheck layout, float64) -> the user's loss on case's data, called in the user's layout."""
    case64 = case.astype(np.float64)
    name = function_name(loss_fn)

    def value(params: dict[str, np.ndarray], x: np.ndarray | None = None) -> float:
        args = lay.to_user(case64.arch, params, case64.x if x is None else x, user_targets(case64, labels))
        return call_user(loss_fn, ((case64.arch,) if with_arch else ()) + tuple(args), name=name, timeout=timeout)

    return value


def _producer(name: str, gradients: Gradients):
    def produce(case: Case) -> Gradients:
        return gradients

    produce.__qualname__ = name
    produce.__module__ = "user"
    return produce


def _check_one(index: int, case: Case, grads, name: str, names: list[str], user_loss, describe: str,
               loss: float | None = None) -> CaseOutcome:
    """check_case with the user's gradient, plus FD of the user's loss when given; then the explanation.

    loss: the value the user's function returned under 'loss' (its forward's), compared like any tensor; None
    when it returns none (then no loss is compared: bpcheck's own forward is not the user's)."""
    grads = dict(grads)
    dx = grads.pop("x", None)   # dL/dx, when the user's function returns it: checked like any tensor
    produced = Gradients(loss, grads, dx, source=name)
    analytic = [n for n in names if not (user_loss is not None and n == "fd")]
    result = check_case(case, analytic, producer=_producer(name, produced), skip_missing=True) if analytic else None
    case64 = case.astype(np.float64)
    # The declared loss's gradient and the trace the rounding scales are read from: torch's or jax's (check_case
    # ran them; cached). Only where neither can run does bpcheck's engine, itself checked against both by its
    # tests, stand in: the function judged here is the user's, not the engine.
    declared = reference_trace(case64, names) or _engine_stand_in(case64)
    ctx = CaseContext.build(case, declared)
    if user_loss is not None:
        result = _rebuild(result, case, with_user_fd(result, ctx, declared, produced, user_loss, case), name)
    explanation, convention = "", ""
    if result.label in ("ENGINE", "REFERENCE", "CONVENTION") and not _only_kink_convention(result):
        found = explain(ctx, {k: np.asarray(v) for k, v in grads.items()})
        explanation = found.sentence
        convention = found.variant.key if found.variant is not None else "shape" if found.complete else ""
        result = relocalise(assumption(result, found, case.arch.loss), ctx, produced)
        if result.label == "ENGINE" and found.unmatched and not found.complete:
            convention = ""  # a bug under that convention: the case is named by the bug, relative to the convention
        if result.label == "CONVENTION" and explanation:
            result = _relabel(result, explanation)
    return CaseOutcome(index, result.label, result.ok, result, explanation, describe, convention)


def _engine_stand_in(case64: Case) -> Gradients:
    """bpcheck's engine as the declared loss's reference, with its forward values as that reference's forward
    (Gradients.meta['forward']), which the rounding model and the convention models read."""
    _, caches = engine.forward(case64.arch, case64.params, case64.x)
    declared = engine.backward(case64.arch, case64.params, caches, case64.y)
    return replace(declared, meta={**declared.meta, "forward": tuple((c.z, c.a) for c in caches)})


def _only_kink_convention(result: CheckResult) -> bool:
    """CONVENTION from a subgradient at exact zeros (check_case's own), not from the user's loss."""
    return result.label == "CONVENTION" and not any(v.reason.startswith("the user's loss_fn") for v in result.verdicts)


def _rebuild(result: CheckResult | None, case: Case, verdicts: list[Verdict], name: str) -> CheckResult:
    label = worst_label([v.label for v in verdicts])
    ok = not any(v.label in DEFAULT_FAIL_ON for v in verdicts) and any(compared(v) for v in verdicts)
    if result is None:
        from ..check import case_digest

        return CheckResult(case_digest(case)[:12], case.arch.label(), case.x.dtype.name, case.regime, case.batch,
                           case.to_dict(), tuple(verdicts), label, ok, producer=name)
    return replace(result, verdicts=tuple(verdicts), label=label, ok=ok)


def _relabel(result: CheckResult, explanation: str) -> CheckResult:
    verdicts = tuple(replace(v, diagnosis=explanation) if v.label == "CONVENTION" else v for v in result.verdicts)
    return replace(result, verdicts=verdicts)


assert "CONVENTION" in LABELS
