"""The reference registry: which gradient producers exist, whether each can run here, and how to get one.

    status("torch")          -> RefStatus(name="torch", available=True, version="2.13.0+cpu", reason=None)
    producer("jax")(case)    -> Gradients            # Case -> Gradients, like engine.gradients
    resolve("fd,torch")      -> ["fd", "torch"]      # None or "all" -> every name
    require("fd,torch")      -> ["fd", "torch"], or UsageError when torch cannot run here

Nothing here imports torch or jax: availability is read from importlib.util.find_spec and
importlib.metadata, and each producer imports its framework only when it is first called, so
`import bpcheck` stays cheap and works without either.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..spec import Case, Gradients, UsageError, suggest

NAMES: tuple[str, ...] = ("fd", "torch", "jax")


@dataclass(frozen=True)
class RefStatus:
    """Whether a reference can run in this environment; reason says why not and how to fix it."""

    name: str
    available: bool
    version: str | None
    reason: str | None


@dataclass(frozen=True)
class _Reference:
    """name: the registry key; module: the bpcheck module holding gradients(case); packages: the
    third-party imports it needs, the first giving the version (none: numpy only); install: the pip
    line that provides them."""

    name: str
    module: str
    packages: tuple[str, ...]
    install: str | None


# torch 2.13.0 is pinned because it has a CPU wheel; an unpinned pip may fetch a CUDA build.
_REFERENCES: dict[str, _Reference] = {
    ref.name: ref
    for ref in (
        _Reference("fd", "bpcheck.references.fd", (), None),
        _Reference("torch", "bpcheck.references.torch_ref", ("torch",), "pip install torch==2.13.0 (or bpcheck[torch])"),
        _Reference("jax", "bpcheck.references.jax_ref", ("jax", "jaxlib"), "pip install jax (or bpcheck[jax])"),
    )
}
assert tuple(_REFERENCES) == NAMES


@functools.cache  # reading package metadata costs ~1 ms, and check_case asks per case
def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _probe(ref: _Reference) -> RefStatus:
    """The status of one reference, found without importing its framework."""
    if not ref.packages:
        return RefStatus(ref.name, True, _version("numpy"), None)
    for package in ref.packages:
        if importlib.util.find_spec(package) is None:
            return RefStatus(ref.name, False, None, f"{package} is not installed: {ref.install}")
    return RefStatus(ref.name, True, _version(ref.packages[0]), None)


def _lookup(name: str) -> _Reference:
    if name not in _REFERENCES:
        raise UsageError(f"reference {name!r}{suggest(name, NAMES)} is unknown: choose from {', '.join(NAMES)}")
    return _REFERENCES[name]


def status(name: str) -> RefStatus:
    """Whether reference `name` can run here, its framework's version, and if not, why and how to fix it."""
    return _probe(_lookup(name))


def _load(ref: _Reference) -> Callable[[Case], Gradients]:
    found = _probe(ref)
    if not found.available:
        raise UsageError(f"reference {ref.name!r} cannot run: {found.reason}")
    # Imports bpcheck's module only; it imports torch or jax when the producer is first called.
    return importlib.import_module(ref.module).gradients


def producer(name: str) -> Callable[[Case], Gradients]:
    """The gradient producer `name`: Case -> Gradients, in float64 whatever the case's dtype."""
    return _load(_lookup(name))


def resolve(names: str | Sequence[str] | None) -> list[str]:
    """Reference names from "fd,torch,jax" or a sequence of names, in order, once each; None or "all" = all."""
    if names is None:
        return list(NAMES)
    parts = names.split(",") if isinstance(names, str) else list(names)
    if not all(isinstance(p, str) for p in parts):
        raise UsageError(f"references {names!r} are not names: give a string like 'fd,torch' or a list of names")
    parts = [p.strip() for p in parts if p.strip()]
    if parts == ["all"]:
        return list(NAMES)
    if not parts:
        raise UsageError(f"references {names!r} name none: give some of {', '.join(NAMES)}, e.g. 'fd,torch'")
    for part in parts:
        _lookup(part)
    return list(dict.fromkeys(parts))


def is_all(names: str | Sequence[str] | None) -> bool:
    """True for None and "all": every reference, the ones that cannot run here SKIPPED."""
    if names is None:
        return True
    parts = names.split(",") if isinstance(names, str) else list(names)
    return [p.strip() for p in parts if isinstance(p, str) and p.strip()] == ["all"]


def require(names: str | Sequence[str] | None, what: str = "references") -> list[str]:
    """resolve(names), where a reference the caller named must be able to run here (UsageError naming it
    and how to install it); None or "all" keep the ones that cannot run, to be SKIPPED with the reason.
    A check against a named reference that silently did not run would pass without checking."""
    names_ = resolve(names)
    if not is_all(names):
        for name in names_:
            found = status(name)
            if not found.available:
                raise UsageError(f"{what} names {name!r}, which cannot run here: {found.reason}")
    return names_


def available() -> list[str]:
    """The names whose references can run here, in NAMES order."""
    return [name for name in NAMES if status(name).available]


__all__ = ["NAMES", "RefStatus", "available", "is_all", "producer", "require", "resolve", "status"]
