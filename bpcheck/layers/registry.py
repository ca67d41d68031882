"""The layer registry (LAYERS, register) and the config check every kind shares.

It sits below the kind modules: each kind imports `register` from here, and the package's __init__ imports the
kinds (so each registers itself) and re-exports LAYERS, which keeps the imports one-way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..spec import SpecError, suggest
from ..vocab import LAYERS  # the very dict Arch validates against (vocab's docstring says why it lives there)
from .base import Layer


def register(layer: Layer) -> Layer:
    if layer.kind in LAYERS:
        raise ValueError(f"layer kind {layer.kind!r} is registered twice")
    LAYERS[layer.kind] = layer
    return layer


def check_keys(kind: str, config: Mapping[str, Any], allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    """A SpecError for a config that is not a dict, has a key the kind does not know, or lacks a required one."""
    if not isinstance(config, Mapping):
        raise SpecError(f"{kind}: config {config!r} is not a dict: give e.g. {{{', '.join(repr(k) for k in allowed)}}}")
    for key in config:
        if key not in allowed:
            raise SpecError(f"{kind}: unknown config key {key!r}{suggest(str(key), allowed)}: "
                            f"use {', '.join(map(repr, allowed)) or 'no keys'}")
    for key in required:
        if key not in config:
            raise SpecError(f"{kind}: config needs {key!r}: add it, e.g. {{{key!r}: 3}}")
