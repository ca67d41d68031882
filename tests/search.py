"""first(strategy, predicate): the first drawn value that satisfies predicate, without shrinking.

hypothesis.find shrinks what it finds, which costs hundreds of calls on a whole Case; tests that only
need some example with a property use this instead. Derandomized, so every run finds the same value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.strategies import SearchStrategy

T = TypeVar("T")


class _Found(Exception):
    pass


def first(strategy: SearchStrategy[T], predicate: Callable[[T], Any], max_examples: int = 300) -> T:
    found: list[T] = []

    @settings(database=None, max_examples=max_examples, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), deadline=None)
    @given(strategy)
    def search(value: T) -> None:
        if predicate(value):
            found.append(value)
            raise _Found

    try:
        search()
    except _Found:
        return found[0]
    raise AssertionError(f"no example in {max_examples} draws satisfies the predicate")
