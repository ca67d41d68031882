"""The verdict labels and what each means: below both bpcheck.results (which validates them) and bpcheck.message
(which writes them out), so results can import message and message need not import results."""

from __future__ import annotations

# Most to least severe; a CheckResult's overall label is its most severe verdict label.
LABELS: tuple[str, ...] = ("ENGINE", "REFERENCE", "ERROR", "CONVENTION", "FD_NOISE", "KINK", "AGREE", "SKIPPED")
DEFAULT_FAIL_ON: tuple[str, ...] = ("ENGINE", "REFERENCE")
LABEL_MEANING: dict[str, str] = {
    "ENGINE": "the gradient under test (the engine or your function) differs while the references agree with each other",
    "REFERENCE": "the references disagree with each other",
    "ERROR": ("a reference or the gradient under test raised, a worker died, or the gradient is not finite in the "
              "case's dtype (it overflows)"),
    "CONVENTION": ("another valid convention: a different one-sided slope at exact zeros of a kink, "
                   "or (given your loss_fn) your own loss"),
    "FD_NOISE": "only finite differences differ, beyond their estimate, while the analytic references agree",
    "KINK": "agrees once coordinates whose finite difference crosses a kink are left out",
    "AGREE": "agrees within tolerance",
    "SKIPPED": "the reference is not available",
}
