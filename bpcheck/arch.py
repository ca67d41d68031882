"""Arch: a network as a stack of layers plus a loss (issue 15; the contract is LAYERS_API.md).

A stack is in_shape (per sample, no batch axis) and a sequence of (kind, config) layers from the registry
(vocab.LAYERS, filled by bpcheck.layers); each config is checked by its kind against the shape the layers
before it produce, so a stack that exists has shapes that fit. The dense MLP is a shorthand for a stack of
dense layers: Arch((2, 2, 1), ('sigmoid', 'sigmoid'), 'mse') equals
Arch.stack((2,), [('dense', {'n': 2, 'activation': 'sigmoid'}), ('dense', {'n': 1, 'activation': 'sigmoid'})], 'mse').
A param's key is its layer's local name + the layer's 1-based position ('W1', 'b1', 'gamma3'), so an MLP
keeps the keys W1, b1, ..., WL, bL it always had.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .vocab import LAYERS, LOSS_OUTPUT, LOSSES, SpecError, canonical_activation, suggest

Shape = tuple[int, ...]
LayerSpec = tuple[str, dict[str, Any]]
_KEY = re.compile(r"([A-Za-z_]+)([1-9][0-9]*)")


def split_key(key: Any) -> tuple[str, int]:
    """('gamma', 3) for 'gamma3': a param key is the layer's local name + its 1-based position."""
    m = _KEY.fullmatch(key) if isinstance(key, str) else None
    if m is None:
        raise SpecError(f"param key {key!r} is not a local name followed by a layer position: write it like 'W1' or 'gamma3'")
    return m[1], int(m[2])


def param_names(n_layers: int) -> list[str]:
    """W1, b1, ..., WL, bL: the keys of a dense MLP, in the order a flat vector of its params is formed."""
    return [f"{p}{layer}" for layer in range(1, n_layers + 1) for p in ("W", "b")]


def _frozen(value: Any) -> Any:
    """A hashable twin of a JSON-like config (a list and a tuple of the same items are the same)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _as_tuple(value: Any, name: str) -> tuple:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise SpecError(f"Arch({name}={value!r}) is not a sequence: give a tuple, like {name}=(2, 2, 1)"
                        if name == "sizes" else
                        f"Arch({name}={value!r}) is not a sequence: give a tuple of names, like ('sigmoid', 'sigmoid')")
    return tuple(value)


def _mlp_layers(sizes: Any, activations: Any) -> tuple[int, list[LayerSpec]]:
    """The shorthand's (n_in, dense layers), with the messages the MLP-only Arch always gave."""
    sizes, acts = _as_tuple(sizes, "sizes"), _as_tuple(activations, "activations")
    if len(sizes) < 2:
        raise SpecError(f"Arch(sizes={sizes}) has {len(sizes)} size(s): give at least (n_in, n_out)")
    for i, n in enumerate(sizes):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise SpecError(f"Arch(sizes={sizes}) has sizes[{i}]={n!r}: every size must be an integer >= 1")
    sizes = tuple(int(n) for n in sizes)
    if len(acts) != len(sizes) - 1:
        raise SpecError(f"Arch(activations={acts}) has {len(acts)} name(s), but sizes={sizes} needs "
                        f"{len(sizes) - 1}: give one activation per layer")
    acts = tuple(canonical_activation(a) for a in acts)
    return sizes[0], [("dense", {"n": n, "activation": a}) for n, a in zip(sizes[1:], acts)]


def _in_shape(value: Any) -> Shape:
    shape = (value,) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or not shape or any(
            isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in shape):
        raise SpecError(f"Arch in_shape={value!r} is not a per-sample shape of integers >= 1: give e.g. (3,) or (1, 8, 8)")
    return tuple(int(n) for n in shape)


def _pair(position: int, item: Any) -> tuple[str, Mapping[str, Any]]:
    if isinstance(item, Mapping) or isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) != 2:
        raise SpecError(f"layer {position} is {item!r:.80}: give a (kind, config) pair, like "
                        "('dense', {'n': 4, 'activation': 'tanh'})")
    kind, config = item
    if not isinstance(kind, str) or kind not in LAYERS:
        known = sorted(LAYERS)
        raise SpecError(f"layer {position} has unknown kind {kind!r}{suggest(kind, known)}: choose from {', '.join(known)}")
    if not isinstance(config, Mapping):
        raise SpecError(f"layer {position} ({kind}) has config {config!r:.80}, not an object: give a dict like {{}} or "
                        "{'kernel': 2}")
    return kind, config


class Arch:
    """A stack of layers plus a loss; Arch(sizes, activations, loss[, weight_decay]) is the dense-MLP shorthand.

    weight_decay: lambda of an L2 term in the declared loss, L = loss + lambda/2 sum ||W||^2 over every
    param whose local name is 'W' (dense and conv weights; not biases or norm params), so dL/dW gains
    lambda W; 0 (the default) is no term. Immutable, hashable, and equal when the stacks are equal.
    """

    __slots__ = ("in_shape", "loss", "weight_decay", "shapes", "_layers", "_params", "_mlp", "_key", "_hash")

    def __init__(self, sizes: Sequence[int], activations: Sequence[str], loss: str, weight_decay: float = 0.0) -> None:
        n_in, layers = _mlp_layers(sizes, activations)
        self._build((n_in,), layers, loss, weight_decay)

    @classmethod
    def stack(cls, in_shape: Any, layers: Sequence[Any], loss: str, weight_decay: float = 0.0) -> Arch:
        """Arch.stack((1, 8, 8), [('conv2d', {'out_channels': 2, 'kernel': 3}), ('flatten', {}), ...], 'mse')."""
        arch = cls.__new__(cls)
        arch._build(in_shape, layers, loss, weight_decay)
        return arch

    def _build(self, in_shape: Any, layers: Any, loss: Any, weight_decay: Any) -> None:
        set_ = object.__setattr__
        if not isinstance(loss, str) or loss not in LOSSES:
            raise SpecError(f"Arch has unknown loss {loss!r}{suggest(loss, LOSSES)}: choose from {', '.join(LOSSES)}")
        lam = weight_decay
        if isinstance(lam, bool) or not isinstance(lam, (int, float, np.floating, np.integer)) \
                or not math.isfinite(lam) or lam < 0:
            raise SpecError(f"Arch(weight_decay={lam!r}) is not a finite number >= 0: give the lambda of "
                            "lambda/2 sum ||W||^2, e.g. 0.01, or 0 for none")
        shape = _in_shape(in_shape)
        if isinstance(layers, (str, bytes, Mapping)) or not isinstance(layers, Sequence) or not layers:
            raise SpecError(f"Arch layers={layers!r:.80} is not a non-empty list of (kind, config) pairs: give e.g. "
                            "[('dense', {'n': 1, 'activation': 'sigmoid'})]")
        shapes, checked, params = [shape], [], {}
        for position, item in enumerate(layers, start=1):
            kind, config = _pair(position, item)
            layer = LAYERS[kind]
            try:
                config = dict(layer.check_config(config, shape))
                for local, s in layer.param_shapes(config, shape).items():
                    params[f"{local}{position}"] = tuple(int(n) for n in s)
                shape = tuple(int(n) for n in layer.out_shape(config, shape))
            except SpecError as exc:  # the kind names the value and the fix; this names where it is
                raise SpecError(f"layer {position} ({kind}): {str(exc).removeprefix(kind + ': ')}") from None
            except (TypeError, ValueError, KeyError, IndexError) as exc:
                raise SpecError(f"layer {position} ({kind}) cannot read config {_jsonable(config)!r:.80} on input shape "
                                f"{shape} ({type(exc).__name__}: {exc}): give the config keys {kind} documents") from None
            shapes.append(shape)
            checked.append((kind, config))
        if len(shape) != 1:
            raise SpecError(f"the stack ends in per-sample shape {shape}, but the loss {loss!r} needs a vector: end it "
                            "with ('flatten', {}) and a dense layer")
        needed = LOSS_OUTPUT.get(loss)
        last_kind, last = checked[-1]
        if needed and (last_kind != "dense" or last.get("activation") != needed):
            wrong, fix = (f"output activation is {last.get('activation')!r}", f"make the last activation {needed!r}") \
                if last_kind == "dense" else (f"last layer ({len(checked)}) is {last_kind}",
                                              f"make the last layer dense with activation {needed!r}")
            raise SpecError(f"Arch(loss={loss!r}) is computed from logits through a {needed} output, but the "
                            f"{wrong}: {fix}, or choose another loss")
        set_(self, "in_shape", shapes[0])
        set_(self, "loss", loss)
        set_(self, "weight_decay", float(lam))
        set_(self, "shapes", tuple(shapes))
        set_(self, "_layers", tuple(checked))
        set_(self, "_params", params)
        set_(self, "_mlp", len(shapes[0]) == 1 and all(k == "dense" for k, _ in checked))
        set_(self, "_key", (shapes[0], _frozen(checked), loss, float(lam)))
        set_(self, "_hash", hash(self._key))  # once: the engine looks its plan up by arch on every call

    # -- what the stack is ------------------------------------------------------------------------------------
    @property
    def layers(self) -> tuple[LayerSpec, ...]:
        """((kind, config), ...) with every default filled; the configs are fresh copies, safe to edit."""
        return tuple((kind, dict(config)) for kind, config in self._layers)

    @property
    def is_mlp(self) -> bool:
        """Every layer dense, on a vector input: sizes, activations and n_layers mean what they always did."""
        return self._mlp

    def _need_mlp(self, what: str) -> None:
        if not self._mlp:
            raise SpecError(f"arch.{what} is defined for dense MLPs only, and {self.label()} is a stack of "
                            f"{', '.join(dict.fromkeys(k for k, _ in self._layers))}: read arch.layers and arch.shapes")

    @property
    def sizes(self) -> tuple[int, ...]:
        self._need_mlp("sizes")
        return (self.in_shape[0], *(config["n"] for _, config in self._layers))

    @property
    def activations(self) -> tuple[str, ...]:
        self._need_mlp("activations")
        return tuple(config["activation"] for _, config in self._layers)

    @property
    def n_layers(self) -> int:
        self._need_mlp("n_layers")
        return len(self._layers)

    @property
    def n_params(self) -> int:
        return sum(math.prod(s) for s in self._params.values())

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """The one place shapes are defined: {key: shape}, by layer position, then the layer's own order."""
        return dict(self._params)

    def with_weight_decay(self, lam: float) -> Arch:
        return Arch.stack(self.in_shape, self._layers, self.loss, lam)

    def label(self) -> str:
        """'2-2-1 sigmoid,sigmoid mse' for an MLP (the form --arch reads), else the in_shape and each layer."""
        decay = f" + weight_decay {self.weight_decay:g}" if self.weight_decay else ""
        if self._mlp:
            return f"{'-'.join(map(str, self.sizes))} {','.join(self.activations)} {self.loss}{decay}"

        def value(v: Any) -> str:
            return "x".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

        parts = [kind + (f"({','.join(f'{k}={value(v)}' for k, v in config.items())})" if config else "")
                 for kind, config in self._layers]
        return f"{'x'.join(map(str, self.in_shape))} {'-'.join(parts)} {self.loss}{decay}"

    # -- JSON -------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """{'in_shape', 'layers': [[kind, config], ...], 'loss'[, 'weight_decay']} (a spec_version 2 arch)."""
        d: dict[str, Any] = {"in_shape": list(self.in_shape), "layers": [[k, _jsonable(c)] for k, c in self._layers],
                             "loss": self.loss}
        if self.weight_decay:  # absent when 0, as in spec_version 1
            d["weight_decay"] = self.weight_decay
        return d

    @classmethod
    def from_dict(cls, d: Any) -> Arch:
        """An arch dict of spec_version 2 ({'in_shape', 'layers', 'loss'}) or 1 ({'sizes', 'activations', 'loss'})."""
        if not isinstance(d, dict):
            raise SpecError(f"arch JSON is {type(d).__name__}, not an object: give {{'in_shape', 'layers', 'loss'}} "
                            "or {'sizes', 'activations', 'loss'}")
        keys = ("in_shape", "layers", "loss") if "layers" in d or "in_shape" in d else ("sizes", "activations", "loss")
        missing = [k for k in keys if k not in d]
        if missing:
            raise SpecError(f"arch JSON is missing {', '.join(missing)}: give {', '.join(keys[:-1])} and loss")
        extra = sorted(set(d) - {*keys, "weight_decay"})
        if extra:
            raise SpecError(f"arch JSON has unknown key {extra[0]!r}: give only {', '.join(keys)} and weight_decay")
        if keys[0] == "sizes":
            return cls(d["sizes"], d["activations"], d["loss"], d.get("weight_decay", 0.0))
        return cls.stack(d["in_shape"], d["layers"], d["loss"], d.get("weight_decay", 0.0))

    @classmethod
    def parse(cls, sizes: str, activations: str, loss: str, weight_decay: float = 0.0) -> Arch:
        """Arch.parse('2-2-1', 'sigmoid,sigmoid', 'mse'); a single activation name is used for every layer."""
        parts = sizes.split("-")
        try:
            dims = tuple(int(p) for p in parts)
        except ValueError:
            raise SpecError(f"--arch {sizes!r} is not sizes joined by '-': write it like 2-8-1") from None
        acts = tuple(a.strip() for a in activations.split(",") if a.strip())
        if len(acts) == 1 and len(dims) > 2:
            acts = acts * (len(dims) - 1)
        return cls(dims, acts, loss.strip(), weight_decay)

    # -- value semantics --------------------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Arch is immutable: build another (Arch.stack, or arch.with_weight_decay) instead of setting {name}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Arch) and self._key == other._key

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple:
        return (Arch.stack, (self.in_shape, self._layers, self.loss, self.weight_decay))

    def __repr__(self) -> str:
        if self._mlp:
            return (f"Arch(sizes={self.sizes}, activations={self.activations}, loss={self.loss!r}, "
                    f"weight_decay={self.weight_decay!r})")
        return (f"Arch.stack(in_shape={self.in_shape}, layers={self.layers!r}, loss={self.loss!r}, "
                f"weight_decay={self.weight_decay!r})")
