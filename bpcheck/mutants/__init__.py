"""A catalog of real backprop bugs, and the sweep that measures who catches them.

    from bpcheck.mutants import MUTANTS, get
    m = get("tanh_prime_one_minus_tanh")
    check_case(case, producer=m.produce).label        # 'ENGINE'

MUTANTS is every entry, engine-style first (catalog.ENGINE_MUTANTS: one line of the engine's
backward changed, bpcheck.mutants.backward), then the layer mutants (layered.LAYER_MUTANTS: one layer's
backward of a stack replaced by a bug), then user-style (bpcheck.mutants.user: gradient
functions as a person writes them, with hidden state or side effects). `python -m bpcheck mutants`
runs them all (bpcheck.mutants.sweep) against bpcheck and the baselines (bpcheck.baselines).
"""

from __future__ import annotations

from ..spec import UsageError, suggest
from .catalog import ENGINE_MUTANTS, USER_MUTANTS, Conditions, Mutant
from .layered import LAYER_MUTANTS

MUTANTS: tuple[Mutant, ...] = ENGINE_MUTANTS + LAYER_MUTANTS + USER_MUTANTS
NAMES: tuple[str, ...] = tuple(m.name for m in MUTANTS)
assert len(set(NAMES)) == len(NAMES), "mutant names must be unique"


def get(name: str) -> Mutant:
    """The mutant called name; a UsageError naming the nearest one otherwise."""
    for m in MUTANTS:
        if m.name == name:
            return m
    raise UsageError(f"mutant {name!r}{suggest(name, NAMES)} is unknown: choose from {', '.join(NAMES)}")


def select(names: str | None) -> tuple[Mutant, ...]:
    """'a,b' -> those mutants in catalog order; None or '' -> all."""
    if not names:
        return MUTANTS
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    chosen = {get(n).name for n in wanted}
    return tuple(m for m in MUTANTS if m.name in chosen)


__all__ = ["MUTANTS", "NAMES", "Conditions", "Mutant", "get", "select"]
