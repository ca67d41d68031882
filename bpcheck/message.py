"""The one-paragraph messages of a CheckResult and its Verdicts: localised and diagnosed.

    dW2 (engine vs torch) at (2, 0): engine=0.3125, torch=0.31261, rel err 3.5e-4; norm-rel err 2.1e-4,
    unexplained 2.1e-4 > tol 1e-12; layer 2 is the first whose dL/dz disagrees; dW2 = 0.25 x torch
    everywhere (1/batch)

Plain text from the numbers in bpcheck.results; the report renders the same data its own way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .labels import LABEL_MEANING, LABELS

if TYPE_CHECKING:  # annotations only: bpcheck.results imports this module to give its classes .message()
    from .results import CheckResult, TensorMetrics, Verdict


def tensor_label(name: str) -> str:
    """'W2' -> 'dW2', 'x' -> 'dx'; traces ('dz2'), 'directions' and the loss value ('loss') stay as they are."""
    return name if name.startswith(("dz", "da", "direction")) or name == "loss" else f"d{name}"


def short_name(producer: str) -> str:
    """What the messages call the gradient under test: a user's function (bpcheck.byo names its producer
    'user.<function>') by its own name, anything else, planted engine variants included, 'engine'."""
    if not producer.startswith("user."):
        return "engine"
    return producer.removeprefix("user.").rsplit(":", 1)[-1]  # 'user.path/to/file.py:grads' -> 'grads'



def loss_sentence(t: TensorMetrics, reference: str, who: str) -> str:
    """'the loss differs: engine 0.693147, torch 0.702 (rel err 1.3e-2 > tol 1e-12)': a wrong forward, said plainly."""
    e = t.worst
    if e is None:
        return f"the loss differs ({who} vs {reference}): {t.note or 'not compared'}"
    return (f"the loss differs: {who} {e.engine:.6g}, {reference} {e.reference:.6g} (rel err {e.rel_err:.2g}, "
            f"unexplained {t.excess:.2g} > tol {t.tol:.2g})")


def _where(t: TensorMetrics, reference: str, who: str) -> str:
    if t.name == "loss":
        return loss_sentence(t, reference, who)
    head = f"{tensor_label(t.name)} ({who} vs {reference})"
    if t.note:
        return f"{head}: {t.note}"
    if t.worst is None:
        return head
    e = t.worst
    return (f"{head} at {e.index}: {who}={e.engine:.6g}, {reference}={e.reference:.6g}, rel err {e.rel_err:.2g}; "
            f"norm-rel err {t.norm_rel:.2g}, unexplained {t.excess:.2g} > tol {t.tol:.2g}")


def verdict_message(v: Verdict, who: str = "engine") -> str:
    """One verdict: the worst entry of the leading tensor, the first bad layer, the diagnosis, the reason.
    who names the gradient under test: the engine, or a user's function."""
    if v.label in ("SKIPPED", "ERROR"):
        return f"{v.reference}: {v.label} ({v.reason})"
    worst = v.worst_tensor()
    if worst is None:
        text = f"{v.reference}: {v.label}"
        if v.kinks:
            text += f", {v.kinks} coordinate(s) in a kink left out"
        parts = [text, v.diagnosis, v.reason]
        return "; ".join(p for p in parts if p)
    parts = [_where(worst, v.reference, who)]
    loss = next((t for t in v.failing_tensors if t.name == "loss"), None)
    if loss is not None and loss is not worst:  # a wrong forward: say so whatever tensor leads the message
        parts.append(loss_sentence(loss, v.reference, who))
    if v.first_bad_layer is not None and not (v.bug is not None and v.bug.get("kind")):  # a stack's says where itself
        if v.localised_by == "da":  # a stack: the layer whose backward passed a wrong gradient down
            parts.append(f"layer {v.first_bad_layer} is the first whose dL/d(input) disagrees")
        else:
            how = "dL/dz" if v.localised_by == "dz" else "W or b"
            parts.append(f"layer {v.first_bad_layer} is the first whose {how} disagrees")
    if v.diagnosis:
        parts.append(v.diagnosis)
    text = f"[{v.label}] " + "; ".join(parts)
    return text + (f" ({v.reason})" if v.reason else "")


def check_message(r: CheckResult) -> str:
    """Every label that matters, most severe first, each told once: in full for its first verdict
    (torch and jax before FD), the other references with the same label named after it."""
    head = f"{r.producer} on case {r.case_id} ({r.arch}, {r.dtype}, batch {r.batch}, {r.regime})"
    if r.error:
        return f"{head}: FAIL ERROR: the producer raised {r.error}"
    parts = []
    for label in LABELS:
        group = sorted((v for v in r.verdicts if v.label == label), key=lambda v: v.reference.startswith("fd"))
        if not group:
            continue
        if label == "AGREE":
            parts.append(f"agrees with {', '.join(v.reference for v in group)}")
        elif label == "SKIPPED":
            parts.append("skipped " + ", ".join(f"{v.reference} ({v.reason})" for v in group))
        else:
            text = verdict_message(group[0], short_name(r.producer))
            if len(group) > 1:
                text += f"; the same {label} against {', '.join(v.reference for v in group[1:])}"
            parts.append(text)
    if r.label in LABEL_MEANING and r.label not in ("AGREE", "SKIPPED"):
        parts.insert(0, f"{r.label}: {LABEL_MEANING[r.label]}")
    return f"{head}: {'ok' if r.ok else 'FAIL'} {r.label}. " + ". ".join(parts) + "."
