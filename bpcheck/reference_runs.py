"""The references' gradients of a case, cached: they run on the float64 copy of the case and do not depend on the
producer, so checking a second producer on the same case (or a fast check, then the full one) reuses them.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import references as refs
from .compare import kind_of
from .compare.tolerance import dtype_name
from .spec import Case, Gradients

CACHE_SIZE = 32
_cache: OrderedDict[tuple[str, str], tuple[Any, float]] = OrderedDict()


def case_digest(case: Case) -> str:
    """sha1 over the arch, dtype, regime and every array's bytes: equal cases, equal digests."""
    h = hashlib.sha1(f"{case.arch.label()}|{dtype_name(case.x.dtype)}|{case.regime}".encode())
    for arr in (*case.params.values(), case.x, case.y):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def cached(key: tuple[str, str], compute: Callable[[], Any]) -> tuple[Any, float]:
    """(value, seconds it took) from the cache, or computed, timed and cached (LRU, CACHE_SIZE entries)."""
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    start = time.perf_counter()
    value = compute()
    _cache[key] = (value, time.perf_counter() - start)
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return _cache[key]


def clear_cache() -> None:
    _cache.clear()


def run_reference(name: str, case64: Case, digest: str) -> tuple[Gradients | None, float, str]:
    """(gradients, seconds, error message); the producer's exception becomes the message."""
    try:
        grads, seconds = cached((name, digest), lambda: refs.producer(name)(case64))
    except Exception as exc:  # any failure of a reference is reported as its ERROR verdict
        return None, 0.0, f"{type(exc).__name__}: {exc}"
    return grads, seconds, ""


def pick_trace(ran: dict[str, Gradients]) -> Gradients | None:
    """The reference whose trace scales the tolerances (an MLP's dz, any other stack's dout): torch or jax before FD."""
    ordered = sorted(ran, key=lambda n: kind_of(n) == "fd")
    return next((ran[n] for n in ordered if ran[n].dz is not None or ran[n].dout is not None), None)


def reference_trace(case64: Case, names: Sequence[str] | None = None) -> Gradients | None:
    """torch's or jax's Gradients of the float64 case (whichever of names runs here, torch first; cached, so a
    check_case that ran them already costs nothing), or None: for callers that need a reference's trace."""
    ran = {}
    for name in refs.resolve(names):
        if kind_of(name) == "analytic" and refs.status(name).available:
            grads, _, error = run_reference(name, case64, case_digest(case64))
            if not error:
                ran[name] = grads
    return pick_trace(ran)
