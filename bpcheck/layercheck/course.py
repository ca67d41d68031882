"""The course contract: which arrays and config a course-style layer takes, and the registry kind it is.

    out, cache = forward(*arrays[, config])      grads = backward(dout, cache)      (loss: loss, dx = f(x, y))

Each course kind maps to a registry kind (bpcheck.layers) with a config translation both ways, so a
user's `conv_forward(x, w, b, {"stride": 1, "pad": 1})` is checked against the registry's conv2d with
{"out_channels": F, "kernel": [HH, WW], "stride": 1, "padding": 1}. Argument names and order follow the
courses (CS231n's layers.py): x first, then the layer's params, then one config dict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..spec import UsageError, suggest

Shape = tuple[int, ...]


@dataclass(frozen=True)
class CourseKind:
    """One course layer kind.

    arrays: the forward's positional arrays, in order; params: course array name -> the registry's local
    param name; config_keys: the course config's keys ('' tuple: no config argument); registry: the
    registry kind (None: no registry kind, e.g. softmax_loss); loss: the one-function loss form.
    to_registry(course_config, shapes) -> the registry config; to_course(registry_config) -> course config.
    """

    name: str
    registry: str | None
    arrays: tuple[str, ...]
    params: Mapping[str, str]
    config_keys: tuple[str, ...] = ()
    dims: tuple[int, ...] = (1, 2, 3)   # how many per-sample dims x may have
    spatial: bool = False               # x is (N, C, H, W)
    min_batch: int = 1
    loss: bool = False
    to_registry: Callable[[dict, dict[str, Shape]], dict] | None = None
    to_course: Callable[[dict], dict] | None = None
    fixed: tuple[str, ...] = ()         # course config keys that fix shapes (strides, pads, pool sizes)
    overrides: Mapping[str, Any] = field(default_factory=dict)  # registry config the course kind always has

    @property
    def configured(self) -> bool:
        return bool(self.config_keys)


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if not isinstance(value, (list, tuple)) else (int(value[0]), int(value[1]))


def _conv_registry(config: dict, shapes: dict[str, Shape]) -> dict:
    F, _, HH, WW = shapes["w"]
    return {"out_channels": F, "kernel": [HH, WW], "stride": int(config["stride"]), "padding": int(config["pad"])}


def _pool_registry(config: dict, shapes: dict[str, Shape]) -> dict:
    return {"kernel": [int(config["pool_height"]), int(config["pool_width"])], "stride": int(config["stride"])}


def _pool_course(reg: dict) -> dict:
    kh, kw = _pair(reg["kernel"])
    return {"pool_height": kh, "pool_width": kw, "stride": _pair(reg.get("stride") or kh)[0]}


KINDS: dict[str, CourseKind] = {k.name: k for k in (
    CourseKind("affine", "dense", ("x", "w", "b"), {"w": "W", "b": "b"},
               to_registry=lambda c, s: {"n": s["w"][1], "activation": "identity"}, overrides={"activation": "identity"}),
    CourseKind("relu", "activation", ("x",), {},
               to_registry=lambda c, s: {"fn": "relu"}, overrides={"fn": "relu"}),
    CourseKind("tanh", "activation", ("x",), {}, to_registry=lambda c, s: {"fn": "tanh"}, overrides={"fn": "tanh"}),
    CourseKind("sigmoid", "activation", ("x",), {}, to_registry=lambda c, s: {"fn": "sigmoid"},
               overrides={"fn": "sigmoid"}),
    # torch's nn.GELU() default, z Phi(z), and its tanh approximation
    CourseKind("gelu", "activation", ("x",), {}, to_registry=lambda c, s: {"fn": "gelu"}, overrides={"fn": "gelu"}),
    CourseKind("gelu_tanh", "activation", ("x",), {}, to_registry=lambda c, s: {"fn": "gelu_tanh"},
               overrides={"fn": "gelu_tanh"}),
    CourseKind("conv2d", "conv2d", ("x", "w", "b"), {"w": "W", "b": "b"}, ("stride", "pad"), (3,), True,
               to_registry=_conv_registry,
               to_course=lambda reg: {"stride": _pair(reg.get("stride", 1))[0], "pad": _pair(reg.get("padding", 0))[0]},
               fixed=("stride", "pad")),
    CourseKind("maxpool2d", "maxpool2d", ("x",), {}, ("pool_height", "pool_width", "stride"), (3,), True,
               to_registry=lambda c, s: _pool_registry(c, s), to_course=_pool_course,
               fixed=("pool_height", "pool_width", "stride")),
    CourseKind("avgpool2d", "avgpool2d", ("x",), {}, ("pool_height", "pool_width", "stride"), (3,), True,
               to_registry=lambda c, s: _pool_registry(c, s), to_course=_pool_course,
               fixed=("pool_height", "pool_width", "stride")),
    CourseKind("batchnorm", "batchnorm", ("x", "gamma", "beta"), {"gamma": "gamma", "beta": "beta"},
               ("mode", "eps"), (1,), min_batch=2,
               to_registry=lambda c, s: {"eps": float(c.get("eps", 1e-5))},
               to_course=lambda reg: {"mode": "train", "eps": float(reg.get("eps", 1e-5))}),
    CourseKind("spatial_batchnorm", "batchnorm", ("x", "gamma", "beta"), {"gamma": "gamma", "beta": "beta"},
               ("mode", "eps"), (3,), True, min_batch=1,
               to_registry=lambda c, s: {"eps": float(c.get("eps", 1e-5))},
               to_course=lambda reg: {"mode": "train", "eps": float(reg.get("eps", 1e-5))}),
    CourseKind("layernorm", "layernorm", ("x", "gamma", "beta"), {"gamma": "gamma", "beta": "beta"},
               ("eps",), (1,),
               to_registry=lambda c, s: {"eps": float(c.get("eps", 1e-5))},
               to_course=lambda reg: {"eps": float(reg.get("eps", 1e-5))}),
    # p is the KEEP probability in the courses, the drop probability in the registry
    CourseKind("dropout", "dropout", ("x",), {}, ("p", "mode", "seed"), (1, 3),
               to_registry=lambda c, s: {"p": 1.0 - float(c["p"]), "seed": int(c.get("seed", 0))},
               to_course=lambda reg: {"p": 1.0 - float(reg["p"]), "mode": "train", "seed": int(reg.get("seed", 0))}),
    CourseKind("softmax_loss", None, ("x",), {}, (), (1,), loss=True),
    CourseKind("none", None, (), {}),
)}


def course_kind(name: Any) -> CourseKind:
    """The CourseKind named; a UsageError lists the kinds."""
    if not isinstance(name, str) or name not in KINDS:
        raise UsageError(f"--layer {name!r} is not a layer kind{suggest(name, list(KINDS))}: choose from "
                         f"{', '.join(KINDS)} (none: any layer, with --shapes)")
    return KINDS[name]


def checked_config(kind: CourseKind, config: Any) -> dict | None:
    """The user's fixed course config (--config), its keys checked against the kind's; None when not given."""
    if config is None:
        return None
    if not isinstance(config, dict):
        raise UsageError(f"config {config!r:.60} is not a dict: give a JSON object, e.g. --config '{{\"stride\": 1}}'")
    if kind.name == "none":
        return dict(config)
    if not kind.configured:
        raise UsageError(f"--layer {kind.name} takes no config ({kind.name}_forward({', '.join(kind.arrays)})): "
                         "leave --config out")
    for key in config:
        if key not in kind.config_keys:
            raise UsageError(f"config key {key!r}{suggest(key, kind.config_keys)} is not one of {kind.name}'s: "
                             f"use {', '.join(kind.config_keys)}")
    if "mode" in config and config["mode"] != "train":
        raise UsageError(f"config mode={config['mode']!r}: check-layer checks the training-mode backward: give 'train'")
    if kind.name == "dropout" and "p" in config:
        p = config["p"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise UsageError(f"dropout p={p!r} is the KEEP probability (CS231n's convention): give a number in (0, 1]")
    for key in kind.fixed:
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "pad" else 1)):
            raise UsageError(f"config {key}={value!r} is not a whole number >= {0 if key == 'pad' else 1}: give e.g. 1")
    return dict(config)


def checked_shapes(shapes: Any) -> dict[str, Shape]:
    """--shapes for --layer none: {"x": [4, 3], "w": [3, 5]}, the forward's arrays in order."""
    if shapes is None:
        raise UsageError("--layer none needs --shapes: give the forward's arrays, e.g. --shapes '{\"x\": [4, 3], "
                         "\"w\": [3, 5]}'")
    if not isinstance(shapes, dict) or not shapes:
        raise UsageError(f"--shapes {shapes!r:.60} is not a JSON object of shapes: give e.g. "
                         "'{\"x\": [4, 3], \"w\": [3, 5]}' (the forward's arrays, in order)")
    out = {}
    for name, shape in shapes.items():
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
            raise UsageError(f"--shapes {name}={shape!r} is not a list of whole numbers >= 1: give e.g. [4, 3]")
        out[str(name)] = tuple(shape)
    return out


def course_config(kind: CourseKind, registry_config: dict, user: dict | None, seed: int) -> dict | None:
    """The course config handed to the user's forward (a fresh copy per call): the registry config translated,
    with the user's own values (--config) kept; dropout's seed from the case."""
    if not kind.configured:
        return None
    config = kind.to_course(registry_config) if kind.to_course else {}
    if kind.name == "dropout":
        config["seed"] = seed
    if "mode" in kind.config_keys:
        config["mode"] = "train"
    config.update(user or {})
    return config


def registry_params(kind: CourseKind, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {local: arrays[name] for name, local in kind.params.items()}


def registry_x(kind: CourseKind, x: np.ndarray) -> np.ndarray:
    """x as the registry layer takes it: affine flattens (N, d1, ..., dk) to (N, D)."""
    return x.reshape(x.shape[0], -1) if kind.name == "affine" else x


def course_grads(kind: CourseKind, arrays: dict[str, np.ndarray], dx: np.ndarray, grads: dict[str, np.ndarray]) -> dict:
    """The registry's (dx, {local: grad}) as {course name: grad}, dx in x's own shape."""
    out = {"x": np.reshape(dx, arrays["x"].shape)}
    out.update({name: grads[local] for name, local in kind.params.items()})
    return out
