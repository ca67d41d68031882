"""Case: everything needed to compute one loss (an Arch, its params, a batch x and its targets y).

x is (batch, *arch.in_shape). y is (batch, n_out) floats or, for the loss 'cross_entropy' only, integer class
labels (batch,), kept int64; `case.targets` is the float matrix every loss evaluation reads (y itself, or
the labels' one-hot rows). A case file is Case.to_dict(), spec_version 3; older files load through migrate:
spec_version 1 files (dense MLPs, arch {'sizes', 'activations', 'loss'}) through migrate_v1, and spec_version
1 and 2 files, whose 'gelu' was the tanh approximation, through migrate_v2 ('gelu' became the exact z Phi(z)
in spec_version 3, torch's nn.GELU() default; the tanh form is 'gelu_tanh').
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .arch import Arch
from .vocab import DTYPES, LAYERS, DataError, Params, SpecError, UsageError, resolve_dtype, suggest

SPEC_VERSION = 3
SPEC_VERSIONS = (1, 2, 3)  # what Case.from_dict reads
# The layer config keys that name an activation (dense's and the activation layer's).
_ACTIVATION_KEYS = ("activation", "fn")


def migrate_v1(d: dict[str, Any]) -> dict[str, Any]:
    """A spec_version 1 case dict (a dense MLP: arch {'sizes', 'activations', 'loss'}) as spec_version 2.

    The arch goes through Arch, so a broken v1 arch raises the SpecError it always did; params, x and y are
    unchanged (an MLP's keys and arrays mean the same in both versions)."""
    arch = Arch.from_dict(d.get("arch"))
    return {**d, "spec_version": 2, "arch": arch.to_dict()}


def migrate_v2(d: dict[str, Any]) -> dict[str, Any]:
    """A spec_version 2 case dict as spec_version 3: its 'gelu' meant the tanh approximation, now 'gelu_tanh'.

    Only the names change (a value that is not a layer list is left for Arch to reject with its own message)."""
    arch = d.get("arch")
    if isinstance(arch, dict) and isinstance(arch.get("layers"), list):
        layers = [[layer[0], {k: "gelu_tanh" if k in _ACTIVATION_KEYS and v == "gelu" else v for k, v in layer[1].items()}]
                  if isinstance(layer, list) and len(layer) == 2 and isinstance(layer[1], dict) else layer
                  for layer in arch["layers"]]
        arch = {**arch, "layers": layers}
    return {**d, "spec_version": 3, "arch": arch}


def migrate(d: dict[str, Any]) -> dict[str, Any]:
    """A case dict of any spec_version in SPEC_VERSIONS as the current one (d itself is not changed)."""
    if d.get("spec_version") == 1:
        d = migrate_v1(d)
    if d.get("spec_version") == 2:
        d = migrate_v2(d)
    return d


def _is_labels(arch: Arch, y: np.ndarray) -> bool:
    return arch.loss == "cross_entropy" and y.ndim == 1 and np.issubdtype(y.dtype, np.integer)


def one_hot(labels: np.ndarray, n: int, dtype: Any) -> np.ndarray:
    out = np.zeros((len(labels), n), dtype=dtype)
    out[np.arange(len(labels)), labels] = 1
    return out


def _check_array(name: str, arr: np.ndarray) -> None:
    if arr.shape[0] == 0:
        raise DataError(f"{name} has an empty batch (shape {arr.shape}): give at least one row")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{name} has dtype {arr.dtype}: give real numbers")
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise DataError(f"{name} has {arr[bad]} at {bad}: every value must be finite")


@dataclass(frozen=True)
class Case:
    """Everything needed to compute one loss; params and x share one float dtype, float targets are cast to it."""

    arch: Arch
    params: Params
    x: np.ndarray
    y: np.ndarray
    regime: str = "ordinary"

    def __post_init__(self) -> None:
        arch = self.arch
        validate_params(arch, self.params)
        dtypes = {v.dtype for v in self.params.values()}
        if len(dtypes) > 1:
            raise SpecError(f"params mix dtypes {sorted(d.name for d in dtypes)}: give every array one dtype")
        dtype = dtypes.pop()
        x, y = np.asarray(self.x), np.asarray(self.y)
        n_out = arch.shapes[-1][0]
        if x.shape[1:] != arch.in_shape or x.ndim < 2:
            raise DataError(f"x has shape {x.shape}, but arch {arch.label()} needs (batch, {', '.join(map(str, arch.in_shape))})")
        _check_array("x", x)
        labels = _is_labels(arch, y)
        if not labels and (y.ndim != 2 or y.shape[1] != n_out):
            also = ", or integer class labels (batch,)" if arch.loss == "cross_entropy" else ""
            raise DataError(f"y has shape {y.shape}, but arch {arch.label()} needs (batch, {n_out}){also}")
        _check_array("y", y)
        if x.shape[0] != y.shape[0]:
            raise DataError(f"x has {x.shape[0]} rows but y has {y.shape[0]}: give one target row per input row")
        if labels and (y.min() < 0 or y.max() >= n_out):
            raise DataError(f"cross_entropy labels must be class indices in [0, {n_out - 1}], but y has "
                            f"{y.min() if y.min() < 0 else y.max()}: give one label per row, below the {n_out} outputs")
        if arch.loss == "bce" and (y.min() < 0 or y.max() > 1):
            raise DataError(f"bce targets must lie in [0, 1], but y has {y.min() if y.min() < 0 else y.max()}: "
                            "rescale the targets, or use mse")
        if arch.loss == "cross_entropy" and y.min() < 0:
            raise DataError(f"cross_entropy targets must be nonnegative, but y has {y.min()}: give one-hot or probability rows")
        # Copies keep the case immutable even if the caller later edits its arrays.
        object.__setattr__(self, "params", {k: np.array(self.params[k], copy=True) for k in arch.param_shapes()})
        object.__setattr__(self, "x", np.array(x, dtype=dtype, copy=True))
        object.__setattr__(self, "y", np.array(y, dtype=np.int64 if labels else dtype, copy=True))
        targets = one_hot(self.y, n_out, dtype) if labels else self.y
        object.__setattr__(self, "_targets", targets)
        for arr in (*self.params.values(), self.x, self.y, targets):
            arr.flags.writeable = False

    @property
    def targets(self) -> np.ndarray:
        """(batch, n_out) floats in the case's dtype: y, or the one-hot rows of integer labels."""
        return self._targets  # type: ignore[attr-defined]

    @property
    def labels(self) -> bool:
        """y holds integer class labels (batch,) rather than target rows."""
        return self.y.ndim == 1

    @property
    def dtype(self) -> type:
        return self.x.dtype.type

    @property
    def batch(self) -> int:
        return int(self.x.shape[0])

    def astype(self, dtype: Any) -> Case:
        dt = resolve_dtype(dtype)
        return Case(self.arch, {k: v.astype(dt) for k, v in self.params.items()},
                    self.x.astype(dt), self.y if self.labels else self.y.astype(dt), self.regime)

    def with_params(self, params: Params) -> Case:
        return Case(self.arch, params, self.x, self.y, self.regime)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; floats are written as Python floats, whose repr round-trips exactly; labels as ints."""
        return {
            "spec_version": SPEC_VERSION,
            "arch": self.arch.to_dict(),
            "dtype": self.x.dtype.name,
            "regime": self.regime,
            "params": {k: v.astype(np.float64).tolist() for k, v in self.params.items()},
            "x": self.x.astype(np.float64).tolist(),
            "y": self.y.tolist() if self.labels else self.y.astype(np.float64).tolist(),
        }

    @classmethod
    def from_dict(cls, d: Any) -> Case:
        if not isinstance(d, dict):
            raise SpecError(f"case JSON is {type(d).__name__}, not an object: give a file written by bpcheck")
        version = d.get("spec_version")
        if isinstance(version, bool) or version not in SPEC_VERSIONS:
            raise SpecError(f"case JSON has spec_version={version!r}, but this bpcheck reads "
                            f"{', '.join(map(str, SPEC_VERSIONS))}: re-create the case with this version")
        missing = [k for k in ("arch", "dtype", "params", "x", "y") if k not in d]
        if missing:
            raise SpecError(f"case JSON is missing {', '.join(missing)}: give a file written by bpcheck")
        d = migrate(d)
        arch = Arch.from_dict(d["arch"])
        dt = resolve_dtype(d["dtype"])
        if not isinstance(d["params"], dict):
            raise SpecError("case JSON 'params' is not an object: give {'W1': [[...]], 'b1': [...], ...}")
        try:
            params = {k: np.array(v, dtype=np.float64).astype(dt) for k, v in d["params"].items()}
            x = np.array(d["x"], dtype=np.float64).astype(dt)
            y = np.array(d["y"])
            if not (y.ndim == 1 and y.dtype.kind in "iu"):  # integer labels stay integers
                y = np.array(d["y"], dtype=np.float64).astype(dt)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SpecError(f"case JSON has a non-numeric or ragged array ({exc}): give nested lists of numbers") from None
        return cls(arch, params, x, y, str(d.get("regime", "ordinary")))


def with_weight_decay(case: Case, lam: float | None) -> Case:
    """case with its arch's L2 term set to lam (None: as it is)."""
    if lam is None or lam == case.arch.weight_decay:
        return case
    return Case(case.arch.with_weight_decay(lam), case.params, case.x, case.y, case.regime)


def init_params(arch: Arch, rng: np.random.Generator, scheme: str = "xavier", dtype: Any = np.float64,
                gain: float = 1.0) -> Params:
    """Dense weights: Xavier (normal, std gain*sqrt(2/(fan_in+fan_out))) or He (normal, std gain*sqrt(2/fan_in)),
    biases 0, drawn in key order (an MLP's draws are those bpcheck always made); other kinds: their Layer.init."""
    if scheme not in ("xavier", "he"):
        raise UsageError(f"init scheme {scheme!r}{suggest(scheme, ('xavier', 'he'))} is unknown: use 'xavier' or 'he'")
    dtype = resolve_dtype(dtype)
    params: Params = {}
    for position, ((kind, config), shape) in enumerate(zip(arch.layers, arch.shapes), start=1):
        if kind != "dense":
            own = LAYERS[kind].init(config, shape, rng, dtype)
            params.update({f"{k}{position}": np.asarray(v, dtype=dtype) for k, v in own.items()})
            continue
        fan_in, fan_out = shape[0], config["n"]
        std = gain * (math.sqrt(2.0 / (fan_in + fan_out)) if scheme == "xavier" else math.sqrt(2.0 / fan_in))
        params[f"W{position}"] = (rng.standard_normal((fan_in, fan_out)) * std).astype(dtype)
        params[f"b{position}"] = np.zeros((fan_out,), dtype=dtype)
    return params


def validate_params(arch: Arch, params: Any, what: str = "params") -> None:
    """Every name present once, with the arch's shape, a float dtype and finite values."""
    if not isinstance(params, dict):
        raise SpecError(f"{what} is a {type(params).__name__}, not a dict: give {{'W1': ..., 'b1': ...}}")
    shapes = arch.param_shapes()
    missing = [k for k in shapes if k not in params]
    extra = [k for k in params if k not in shapes]
    if missing:
        raise SpecError(f"{what} is missing {', '.join(missing)}: arch {arch.label()} needs {', '.join(shapes)}")
    if extra:
        raise SpecError(f"{what} has unexpected {', '.join(map(str, extra))}: arch {arch.label()} needs only {', '.join(shapes)}")
    for name, shape in shapes.items():
        value = params[name]
        if not isinstance(value, np.ndarray):
            raise SpecError(f"{what}[{name!r}] is a {type(value).__name__}: give a numpy array of shape {shape}")
        if value.shape != shape:
            raise SpecError(f"{what}[{name!r}] has shape {value.shape}, but arch {arch.label()} needs {shape}")
        if value.dtype.name not in DTYPES:
            raise SpecError(f"{what}[{name!r}] has dtype {value.dtype}: use float32 or float64")
        if not np.all(np.isfinite(value)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
            raise SpecError(f"{what}[{name!r}] has {value[bad]} at {bad}: every parameter must be finite")
