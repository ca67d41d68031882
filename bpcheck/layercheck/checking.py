"""check_layer: check a course-style layer's backward (or a torch Function / jax custom_vjp) on drawn cases.

    result = bpcheck.check_layer(conv_forward, conv_backward, layer="conv2d", cases=50, seed=0)
    print(result); assert result.ok

Per case (one round trip to the worker, bpcheck.layercheck.remote): forward, then backward on a random
cotangent d1, on another d2, on a d1 + b d2 and on zeros; the same call again; a call on other arrays
(B) and on A once more; the batch permuted (per-sample layers). Back here: the interface (how many
gradients, their shapes and dtypes), the forward's output against the registry's independent
reference, every gradient against FD of <reference(theta), dout>, torch and jax (blame as everywhere),
and the reference-free properties (properties.py). A failing case is diagnosed (diagnose.py) and the
first kind of failure shrunk to its smallest shape (shrinking.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from .. import references as refs
from ..byo.isolation import DEFAULT_TIMEOUT, Worker
from ..byo.loading import UserCallError
from ..byo.result import INPUT_CHECKS
from ..spec import BpcheckError, UsageError
from .case_judging import case_config, judge_case, per_sample
from .cases import LayerCase, draw_cases
from .course import CourseKind, checked_config, checked_shapes, course_kind
from .frameworks import by_name, form_of
from .properties import RTOL, RTOL32
from .remote import UserLayer
from .result import Finding, LayerOutcome, LayerResult, common
from .run_case import ShapeError, run_case

DEFAULT_CASES = 20
PRECISIONS = ("float64", "float32")


def check_layer(forward: Callable | str, backward: Callable | str | None = None, *, layer: str,
                config: dict | None = None, shapes: dict | None = None, cases: int = DEFAULT_CASES, seed: int = 0,
                references: str | list | None = None, timeout: float | None = DEFAULT_TIMEOUT,
                in_process: bool = False, precision: str = "float64", shrink: bool = True) -> LayerResult:
    """Check forward/backward in the course contract for layer kind `layer` (bpcheck.layercheck.course.KINDS).

    forward(*arrays[, config]) -> (out, cache) and backward(dout, cache) -> the gradients of the arrays in
    order; for a loss layer (softmax_loss) forward is f(x, y) -> (loss, dx) and backward is None; a
    torch.autograd.Function subclass or a jax.custom_vjp function is passed as forward alone. Functions may
    be "path/to/file.py:name". config: fixed course config values (e.g. {"stride": 2}); shapes: for
    layer="none", the forward's arrays {"x": [4, 3], "w": [3, 5]}. precision="float32" for a layer that
    computes in float32 inside (its rounding is then held to float32's, not float64's). The user's code
    runs in a worker process (timeout seconds per call), or here with in_process=True.
    """
    kind = course_kind(layer)
    if kind.registry is not None:
        from ..layers import LAYERS

        if kind.registry not in LAYERS:
            raise UsageError(f"--layer {kind.name} needs the registry kind {kind.registry!r}, which this bpcheck does "
                             f"not have: upgrade bpcheck, or check it as --layer none with --shapes")
    form = _form(kind, forward, backward)
    if form in ("torch", "jax") and kind.name == "affine":
        kind = replace(kind, dims=(1,))  # a framework's linear takes x (N, D); course code flattens any x
    user_config = checked_config(kind, config)
    fixed_shapes = checked_shapes(shapes) if kind.name == "none" else _no_shapes(shapes)
    n = _cases(cases)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed={seed!r} is not a whole number >= 0: give e.g. seed=0")
    if precision not in PRECISIONS:
        raise UsageError(f"precision={precision!r}: give 'float64', or 'float32' for a layer that computes in float32")
    names = _references(kind, references)
    drawn = draw_cases(kind, n, int(seed), user_config, fixed_shapes)
    if form == "jax" and not in_process:
        forward = by_name(forward) or forward
    worker = Worker()
    try:
        user = UserLayer(forward, backward, form=form, timeout=timeout, in_process=in_process, worker=worker)
        outcomes, findings, first_bad = _run(kind, user, drawn, names, precision)
        smallest = ""
        if shrink and first_bad is not None and not any(f.check in INPUT_CHECKS for f in findings):
            from .shrinking import smallest_failing

            smallest = smallest_failing(kind, user, first_bad, names, precision, user_config, fixed_shapes)
    finally:
        worker.stop()
    failing = [o for o in outcomes if not o.ok]
    diagnosis = common([o.diagnosis for o in failing])
    ok = bool(outcomes) and not failing and not findings
    ran = ("shapes", "finite", "dtype", "forward", "mutation", "stale", "twice") + (
        ("float32",) if form in ("torch", "jax") else ()) + (
        () if kind.loss else ("linearity", "zero")) + (("permutation",) if per_sample(kind) else ())
    return LayerResult(user.name, kind.name, tuple(names), int(seed), tuple(outcomes), tuple(findings), diagnosis,
                       ok, smallest, {"ran": ran, "precision": precision, "form": form, "cases": n})


def _form(kind: CourseKind, forward: Any, backward: Any) -> str:
    framework = None if isinstance(forward, str) else form_of(forward)
    if framework:
        if backward is not None:
            raise UsageError(f"a {framework} {'autograd.Function' if framework == 'torch' else 'custom_vjp'} brings its "
                             "own backward: pass it alone, check_layer(fn, layer=...)")
        if kind.loss or kind.name == "none":
            raise UsageError(f"a {framework} function is checked as a known layer kind: give layer= one of affine, relu, "
                             "tanh, sigmoid, gelu, gelu_tanh, conv2d, maxpool2d, avgpool2d, batchnorm, spatial_batchnorm, "
                             "layernorm, dropout")
        return framework
    if kind.loss:
        if backward is not None:
            raise UsageError(f"{kind.name} is one function, loss, dx = f(x, y): give it alone (no backward)")
        return "loss"
    if backward is None:
        raise UsageError(f"--layer {kind.name} needs a forward and a backward (FILE.py:FORWARD FILE.py:BACKWARD)")
    return "course"


def _no_shapes(shapes: Any) -> None:
    if shapes is not None:
        raise UsageError("--shapes is for --layer none; a known kind draws its own shapes: leave --shapes out")
    return None


def _cases(cases: Any) -> int:
    if isinstance(cases, bool) or not isinstance(cases, (int, np.integer)) or cases < 1:
        raise UsageError(f"cases={cases!r}: give a number of cases >= 1")
    return int(cases)


def _references(kind: CourseKind, references: Any) -> list[str]:
    names = refs.require(references)
    if kind.name in ("dropout", "none"):
        if "fd" not in names:  # a check against no reference would pass without checking
            why = "your mask is known only to your forward" if kind.name == "dropout" else "it has no registry kind"
            raise UsageError(f"--layer {kind.name} is checked against fd alone ({why}): give --refs fd (or all)")
        return ["fd"]
    return [n for n in names if refs.status(n).available]


def _run(kind: CourseKind, user: UserLayer, drawn: list[LayerCase], names: list[str], precision: str):
    outcomes: list[LayerOutcome] = []
    findings: list[Finding] = []
    first_bad = None
    rtol = RTOL if precision == "float64" else RTOL32
    for case in drawn:
        index = case.meta["index"]
        try:
            run = run_case(kind, user, case, per_sample(kind))
        except UserCallError as exc:
            if "did not return" in exc.headline or exc.headline.startswith("importing "):  # cannot be checked at all
                findings.append(Finding("timeout" if "did not return" in exc.headline else "raises", str(exc), index))
                break
            # raising on some inputs is a bug of the layer (an index past a border, say); on all of them, see below
            outcomes.append(LayerOutcome(index, "ERROR", False, case.describe(), case.batch, (),
                                         f"{kind.name} raises on some inputs", (), case_config(case)))
            if not any(f.check == "crash" for f in findings):
                findings.append(Finding("crash", str(exc), index))
            first_bad = first_bad or case
            continue
        except ShapeError as exc:  # this case fails (a padding bug may show for one config only); the next may not
            outcomes.append(LayerOutcome(index, "ENGINE", False, case.describe(), case.batch, (),
                                         f"d{exc.arg} of {kind.name} comes back in the wrong shape", (exc.arg,),
                                         case_config(case)))
            if not any(f.check == "shapes" for f in findings):
                findings.append(Finding("shapes", str(exc), index, exc.arg))
            first_bad = first_bad or case
            continue
        except BpcheckError as exc:
            findings.append(Finding("interface", str(exc), index))
            break
        outcome, found = judge_case(kind, run, index, names, precision, rtol)
        outcomes.append(outcome)
        for f in found:
            if not any(g.check == f.check for g in findings):
                findings.append(f)
        if (not outcome.ok or found) and first_bad is None:
            first_bad = case
    if outcomes and all(o.label == "ERROR" and not o.verdicts for o in outcomes):
        # it raised on every case: nothing was checked, which is bad input (exit 2), not a verdict
        findings = [replace(f, check="raises") if f.check == "crash" else f for f in findings]
    return outcomes, findings, first_bad
