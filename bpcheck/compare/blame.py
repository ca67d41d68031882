"""Blame across oracles: one label per reference, from who agrees with whom.

The inputs are booleans, so the rules are plain to read and to test:
  engine ~ R                   -> AGREE (KINK if kink coordinates were left out)
  else, R analytic and the difference is a subgradient convention at exact zeros -> CONVENTION
  R = fd:  every analytic reference (at least one) agrees with the engine -> FD_NOISE
           no analytic reference available                               -> ENGINE (FD alone)
           fd agrees with every analytic reference                        -> ENGINE
           otherwise                                                      -> REFERENCE
  R analytic: other analytic references exist: R agrees with all of them -> ENGINE, else REFERENCE
              only fd besides: fd agrees with R -> ENGINE, else REFERENCE (fd sides with the engine,
              or all three differ); R alone -> ENGINE
SKIPPED and ERROR references take no part.
"""

from __future__ import annotations

from .tolerance import kind_of

KINK_REASON = {
    "fd": "coordinates whose finite difference crosses a kink are left out",
    "analytic": "pre-activations within rounding of a kink: the coordinates they reach are held to what either "
                "one-sided slope there allows",
}


def _pair(pairs: dict[frozenset[str], bool], a: str, b: str) -> bool:
    return pairs[frozenset((a, b))]


def _names(refs: list[str]) -> str:
    return " and ".join(refs) if len(refs) < 3 else ", ".join(refs[:-1]) + f" and {refs[-1]}"


def blame(
    engine_agrees: dict[str, bool],
    pairs: dict[frozenset[str], bool],
    *,
    convention: dict[str, bool] | None = None,
    kinked: dict[str, bool] | None = None,
) -> dict[str, tuple[str, str]]:
    """reference -> (label, reason) for every reference in engine_agrees (the ones that ran).

    pairs[frozenset((a, b))] says whether references a and b agree with each other.
    """
    convention = convention or {}
    kinked = kinked or {}
    refs = list(engine_agrees)
    analytic = [r for r in refs if kind_of(r) == "analytic"]
    fds = [r for r in refs if kind_of(r) == "fd"]
    out: dict[str, tuple[str, str]] = {}
    for r in refs:
        if engine_agrees[r]:
            out[r] = ("KINK", KINK_REASON[kind_of(r)]) if kinked.get(r) else ("AGREE", "")
            continue
        if convention.get(r):
            out[r] = ("CONVENTION", "")
            continue
        if kind_of(r) == "fd":
            out[r] = _blame_fd(r, analytic, engine_agrees, pairs)
        else:
            out[r] = _blame_analytic(r, analytic, fds, engine_agrees, pairs)
    return out


def _blame_fd(r: str, analytic: list[str], engine_agrees: dict[str, bool],
              pairs: dict[frozenset[str], bool]) -> tuple[str, str]:
    if not analytic:
        return "ENGINE", f"{r} is the only reference; the difference is beyond its own error estimate"
    if all(engine_agrees[a] for a in analytic):
        return "FD_NOISE", f"{_names(analytic)} agree with the engine; only {r} differs, beyond its estimate"
    if all(_pair(pairs, r, a) for a in analytic):
        return "ENGINE", f"{r} agrees with {_names(analytic)}"
    against = [a for a in analytic if not _pair(pairs, r, a)]
    return "REFERENCE", f"{r} disagrees with {_names(against)}"


def _blame_analytic(r: str, analytic: list[str], fds: list[str], engine_agrees: dict[str, bool],
                    pairs: dict[frozenset[str], bool]) -> tuple[str, str]:
    others = [a for a in analytic if a != r]
    if others:
        against = [a for a in others if not _pair(pairs, r, a)]
        if not against:
            return "ENGINE", f"{r} agrees with {_names(others + [f for f in fds if _pair(pairs, r, f)])}"
        return "REFERENCE", f"{r} disagrees with {_names(against)}"
    if fds:
        if all(_pair(pairs, r, f) for f in fds):
            return "ENGINE", f"{r} agrees with {_names(fds)}"
        sides = [f for f in fds if engine_agrees[f]]
        if sides:
            return "REFERENCE", f"{r} disagrees with {_names(fds)}, which agree(s) with the engine"
        return "REFERENCE", f"{r}, {_names(fds)} and the engine all differ"
    return "ENGINE", f"{r} is the only reference"
