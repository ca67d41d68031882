"""Deterministic draws from the Hypothesis strategies: case i of a sweep from (seed, i) alone.

    case = draw_case(seed=0, index=17)        # the same Case, bit for bit, in any process

Hypothesis's own entry points (given, find, example) choose their randomness themselves, so a
sweep drives a ConjectureData with its own random.Random, seeded from SeedSequence([seed, index]).
The stock provider sometimes injects "local constants" collected from whatever modules are
imported at that moment (and caches them globally), which would make a draw depend on the
process; _SeededProvider never injects constants, so the draw depends on the seed alone.
Layered stacks (every case with --layers, one in LAYERED_EVERY by default) are drawn by
bpcheck.stacks.build_case from a numpy Generator instead: no Hypothesis internals on that path.
The regime and dtype of case i cycle through the requested ones, so every combination is covered
evenly whatever N is: regime = regimes[i % R], dtype = dtypes[(i // R) % D].
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.control import BuildContext
from hypothesis.errors import StopTest
from hypothesis.internal.conjecture.data import ConjectureData
from hypothesis.internal.conjecture.providers import HypothesisProvider

from . import strategies as bst
from .spec import Case, UsageError

MAX_CHOICES = 20_000
ATTEMPTS = 8  # an overrun draw (too many choices) retries with the next sub-seed
# In the default sweep, case i is a layered stack (bpcheck.stacks) when i % LAYERED_EVERY == LAYERED_EVERY - 1;
# 0: none. One in 4 keeps the default 200-case report within ~2x of its MLP-only time, now that jax compiles one
# small kernel per layer signature instead of one per stack (benchmarks/bench_report.py, README "Layered stacks").
LAYERED_EVERY = 4


def _no_constant(self, choice_type, constraints, *, p=0.05):
    return None


class _SeededProvider(HypothesisProvider):
    """Hypothesis's random provider without constant injection: output depends on its Random alone."""

    _maybe_draw_constant = _no_constant


@contextlib.contextmanager
def without_constant_injection() -> Iterator[None]:
    """For hypothesis.find (which picks its own provider): no local constants while inside, so what it
    finds does not depend on which modules this process happened to import first (--jobs 1 vs 2)."""
    saved = HypothesisProvider._maybe_draw_constant
    HypothesisProvider._maybe_draw_constant = _no_constant
    try:
        yield
    finally:
        HypothesisProvider._maybe_draw_constant = saved


def archs_for(regime: str, max_depth: int, max_width: int) -> st.SearchStrategy:
    """Small nets, with activations steered to where the regime has something to test
    (as bpcheck.strategies does by default, but with the sweep's depth and width limits)."""
    focus = {"near_kink": bst.KINKED, "saturating": bst.SATURATING}.get(regime)
    if focus is None:
        return bst.architectures(max_depth=max_depth, max_width=max_width)
    # depth >= 2 puts a focus activation in a hidden layer even when the loss fixes the output.
    return bst.architectures(min_depth=min(2, max_depth), max_depth=max_depth, max_width=max_width,
                             activations=focus)


def case_strategy(regime: str, dtype: str, max_depth: int = 3, max_width: int = 4,
                  activations: Sequence[str] | None = None, losses: Sequence[str] | None = None,
                  targets: str | None = None) -> st.SearchStrategy:
    """bst.cases restricted to one regime and dtype (and some activations and losses; targets as bst.cases takes them)."""
    if activations is None and losses is None:
        archs = archs_for(regime, max_depth, max_width)
    else:
        archs = bst.architectures(max_depth=max_depth, max_width=max_width,
                                  activations=tuple(activations or bst.ACTIVATIONS),
                                  losses=tuple(losses or bst.LOSSES), hidden_softmax="softmax" in (activations or ()))
    return bst.cases(archs=archs, regimes=(regime,), dtypes=(dtype,), targets=targets)


def draw(strategy: st.SearchStrategy, entropy: Sequence[int]):
    """One value of strategy, from a Random seeded by SeedSequence(entropy)."""
    state = np.random.SeedSequence(list(entropy)).generate_state(4)
    for attempt in range(ATTEMPTS):
        rnd = random.Random(int.from_bytes(state.tobytes(), "little") + attempt)
        data = ConjectureData(random=rnd, provider=_SeededProvider, max_choices=MAX_CHOICES)
        try:
            with BuildContext(data, wrapped_test=draw):
                return data.draw(strategy)
        except StopTest:
            continue
    raise UsageError(f"could not draw a case from seed {list(entropy)} in {ATTEMPTS} attempts: lower --max-width")


def regime_and_dtype(index: int, regimes: Sequence[str], dtypes: Sequence[str]) -> tuple[str, str]:
    return regimes[index % len(regimes)], dtypes[(index // len(regimes)) % len(dtypes)]


def is_layered(index: int, layers: Sequence[str] | None) -> bool:
    """Whether case index is a layered stack: every case when the kinds are named, else one in LAYERED_EVERY."""
    return bool(layers) or (LAYERED_EVERY > 0 and index % LAYERED_EVERY == LAYERED_EVERY - 1)


def draw_case(seed: int, index: int, *, regimes: Sequence[str] = bst.REGIMES,
              dtypes: Sequence[str] = bst.DTYPE_NAMES, max_depth: int = 3, max_width: int = 4,
              targets: str | None = None, layers: Sequence[str] | None = None) -> Case:
    """Case `index` of the sweep with this seed: a pure function of its arguments.

    layers: the kinds a layered case's body is drawn from (bpcheck.stacks), or None for the default mix, where
    one case in LAYERED_EVERY (if > 0) is a stack of every registered kind and the rest are MLPs. A layered case is
    drawn by numpy from SeedSequence([seed, index]) (max_depth and targets apply to MLPs only)."""
    regime, dtype = regime_and_dtype(index, regimes, dtypes)
    if is_layered(index, layers):
        from . import stacks

        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        return stacks.build_case(rng, layers or None, regime, dtype, max_width=max_width)
    return draw(case_strategy(regime, dtype, max_depth, max_width, targets=targets), (seed, index))
