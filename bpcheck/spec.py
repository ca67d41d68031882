"""The one data model shared by the engine, the references, the checks and the report.

`Arch` says what network it is, `Case` holds everything needed to compute one loss, and
`Gradients` is what every gradient producer returns. All are plain, immutable data; every
invalid value raises a `BpcheckError` subclass whose message names the value and the fix.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

ACTIVATIONS: tuple[str, ...] = (
    "identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "softmax",
)
LOSSES: tuple[str, ...] = ("mse", "bce", "cross_entropy", "huber")
# Activations that take a parameter, written 'name:value' ('leaky_relu:0.2'): name -> (what it is, default).
PARAMETERS: dict[str, tuple[str, float]] = {"leaky_relu": ("slope", 0.01)}
# A loss computed from logits fixes the output activation it is fused with.
LOSS_OUTPUT: dict[str, str] = {"bce": "sigmoid", "cross_entropy": "softmax"}
DTYPES: dict[str, type] = {"float32": np.float32, "float64": np.float64}
SPEC_VERSION = 1
DEFAULT_TIMEOUT = 60.0  # seconds per call of a user's function (bpcheck.byo.isolation), unless --timeout says

Params = dict[str, np.ndarray]
Grads = dict[str, np.ndarray]


class BpcheckError(ValueError):
    """Any error a user can fix; the CLI prints its message as one line and exits 2."""


class SpecError(BpcheckError):
    """An invalid architecture, parameter set or spec JSON."""


class DataError(BpcheckError):
    """Inputs or targets that do not fit the architecture or the loss."""


class UserFunctionError(BpcheckError):
    """A user's gradient or loss function that cannot be loaded, called or read."""


class UsageError(BpcheckError):
    """A command-line or API option with a bad value."""


def suggest(name: object, choices: tuple[str, ...] | list[str]) -> str:
    """' (did you mean 'x'?)' for the nearest choice, or '' when none is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def param_names(n_layers: int) -> list[str]:
    """W1, b1, ..., WL, bL: the order used everywhere a flat vector of params is formed."""
    return [f"{p}{layer}" for layer in range(1, n_layers + 1) for p in ("W", "b")]


@dataclass(frozen=True)
class Arch:
    """A dense MLP: z_l = a_{l-1} @ W_l + b_l, a_l = act_l(z_l), for l = 1..L.

    sizes = (n_in, h1, ..., n_out); one activation per layer; loss from LOSSES.
    weight_decay: lambda of an L2 term in the declared loss, L = loss + lambda/2 sum_l ||W_l||^2 (weights
    only, not biases), so dL/dW_l gains lambda W_l; 0 (the default) is no term.
    """

    sizes: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", _as_tuple(self.sizes, "sizes"))
        object.__setattr__(self, "activations", _as_tuple(self.activations, "activations"))
        sizes, acts = self.sizes, self.activations
        if len(sizes) < 2:
            raise SpecError(f"Arch(sizes={sizes}) has {len(sizes)} size(s): give at least (n_in, n_out)")
        for i, n in enumerate(sizes):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise SpecError(f"Arch(sizes={sizes}) has sizes[{i}]={n!r}: every size must be an integer >= 1")
        object.__setattr__(self, "sizes", tuple(int(n) for n in sizes))
        if len(acts) != len(sizes) - 1:
            raise SpecError(
                f"Arch(activations={acts}) has {len(acts)} name(s), but sizes={self.sizes} needs "
                f"{len(sizes) - 1}: give one activation per layer"
            )
        object.__setattr__(self, "activations", tuple(canonical_activation(act) for act in acts))
        if self.loss not in LOSSES:
            raise SpecError(
                f"Arch has unknown loss {self.loss!r}{suggest(self.loss, LOSSES)}: choose from {', '.join(LOSSES)}"
            )
        lam = self.weight_decay
        if isinstance(lam, bool) or not isinstance(lam, (int, float, np.floating, np.integer)) \
                or not math.isfinite(lam) or lam < 0:
            raise SpecError(f"Arch(weight_decay={lam!r}) is not a finite number >= 0: give the lambda of "
                            "lambda/2 sum ||W||^2, e.g. 0.01, or 0 for none")
        object.__setattr__(self, "weight_decay", float(lam))
        needed = LOSS_OUTPUT.get(self.loss)
        if needed and acts[-1] != needed:
            raise SpecError(
                f"Arch(loss={self.loss!r}) is computed from logits through a {needed} output, but the output "
                f"activation is {acts[-1]!r}: make the last activation {needed!r}, or choose another loss"
            )

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def n_params(self) -> int:
        return sum(math.prod(s) for s in self.param_shapes().values())

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """The one place shapes are defined: W_l is (n_{l-1}, n_l) and b_l is (n_l,)."""
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(1, self.n_layers + 1):
            shapes[f"W{layer}"] = (self.sizes[layer - 1], self.sizes[layer])
            shapes[f"b{layer}"] = (self.sizes[layer],)
        return shapes

    def label(self) -> str:
        """'2-2-1 sigmoid,sigmoid mse': the compact form the CLI reads and the report prints."""
        decay = f" + weight_decay {self.weight_decay:g}" if self.weight_decay else ""
        return f"{'-'.join(map(str, self.sizes))} {','.join(self.activations)} {self.loss}{decay}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"sizes": list(self.sizes), "activations": list(self.activations), "loss": self.loss}
        if self.weight_decay:  # absent when 0: files without it (and their digests) stay as they were
            d["weight_decay"] = self.weight_decay
        return d

    @classmethod
    def from_dict(cls, d: Any) -> Arch:
        if not isinstance(d, dict):
            raise SpecError(f"arch JSON is {type(d).__name__}, not an object: give {{'sizes', 'activations', 'loss'}}")
        missing = [k for k in ("sizes", "activations", "loss") if k not in d]
        if missing:
            raise SpecError(f"arch JSON is missing {', '.join(missing)}: give sizes, activations and loss")
        return cls(tuple(d["sizes"]), tuple(d["activations"]), d["loss"], d.get("weight_decay", 0.0))

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


def split_activation(act: Any) -> tuple[str, float | None]:
    """('leaky_relu', 0.2) for 'leaky_relu:0.2', ('tanh', None) for 'tanh'; a SpecError names a bad one."""
    if not isinstance(act, str):
        raise SpecError(f"Arch has activation {act!r}, not a name: choose from {', '.join(ACTIVATIONS)}")
    base, sep, text = act.partition(":")
    if base not in ACTIVATIONS:
        raise SpecError(f"Arch has unknown activation {act!r}{suggest(base, ACTIVATIONS)}: choose from "
                        f"{', '.join(ACTIVATIONS)}")
    if not sep:
        return base, None
    if base not in PARAMETERS:
        raise SpecError(f"Arch has activation {act!r}, but {base} takes no parameter: write {base!r}")
    what, default = PARAMETERS[base]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise SpecError(f"Arch has activation {act!r}: its {what} {text!r} is not a finite number >= 0; write e.g. "
                        f"{base}:0.2 (default {default:g})")
    return base, value


def canonical_activation(act: Any) -> str:
    """The one spelling of an activation: 'leaky_relu:0.2', and the bare name for the default parameter
    ('leaky_relu:0.01' is 'leaky_relu'), so equal nets compare, hash and serialise equal."""
    base, value = split_activation(act)
    if value is None or value == PARAMETERS[base][1]:
        return base
    return f"{base}:{value!r}"


def _as_tuple(value: Any, name: str) -> tuple:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise SpecError(f"Arch({name}={value!r}) is not a sequence: give a tuple, like {name}=(2, 2, 1)"
                        if name == "sizes" else
                        f"Arch({name}={value!r}) is not a sequence: give a tuple of names, like ('sigmoid', 'sigmoid')")
    return tuple(value)


def with_weight_decay(case: Case, lam: float | None) -> Case:
    """case with its arch's L2 term set to lam (None: as it is)."""
    if lam is None or lam == case.arch.weight_decay:
        return case
    return Case(replace(case.arch, weight_decay=lam), case.params, case.x, case.y, case.regime)


def init_params(arch: Arch, rng: np.random.Generator, scheme: str = "xavier", dtype: Any = np.float64,
                gain: float = 1.0) -> Params:
    """Xavier (normal, std gain*sqrt(2/(fan_in+fan_out))) or He (normal, std gain*sqrt(2/fan_in)); biases start at 0."""
    if scheme not in ("xavier", "he"):
        raise UsageError(f"init scheme {scheme!r}{suggest(scheme, ('xavier', 'he'))} is unknown: use 'xavier' or 'he'")
    dtype = resolve_dtype(dtype)
    params: Params = {}
    for name, shape in arch.param_shapes().items():
        if name.startswith("W"):
            fan_in, fan_out = shape
            std = gain * (math.sqrt(2.0 / (fan_in + fan_out)) if scheme == "xavier" else math.sqrt(2.0 / fan_in))
            params[name] = (rng.standard_normal(shape) * std).astype(dtype)
        else:
            params[name] = np.zeros(shape, dtype=dtype)
    return params


def resolve_dtype(dtype: Any) -> type:
    """np.float32 / np.float64 from a dtype or its name; anything else is a UsageError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in DTYPES:
        raise UsageError(f"dtype {dtype!r} is not supported: use 'float32' or 'float64'")
    return DTYPES[dt.name]


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


@dataclass(frozen=True)
class Case:
    """Everything needed to compute one loss: x is (batch, n_in), y is (batch, n_out).

    Params and x share one float dtype (the case's dtype); y is cast to it.
    """

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
        for name, arr, n in (("x", x, arch.sizes[0]), ("y", y, arch.sizes[-1])):
            if arr.ndim != 2 or arr.shape[1] != n:
                raise DataError(f"{name} has shape {arr.shape}, but arch {arch.label()} needs (batch, {n})")
            if arr.shape[0] == 0:
                raise DataError(f"{name} has an empty batch (shape {arr.shape}): give at least one row")
            if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
                raise DataError(f"{name} has dtype {arr.dtype}: give real numbers")
            if not np.all(np.isfinite(arr)):
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
                raise DataError(f"{name} has {arr[bad]} at {bad}: every value must be finite")
        if x.shape[0] != y.shape[0]:
            raise DataError(f"x has {x.shape[0]} rows but y has {y.shape[0]}: give one target row per input row")
        if arch.loss == "bce" and (y.min() < 0 or y.max() > 1):
            raise DataError(f"bce targets must lie in [0, 1], but y has {y.min() if y.min() < 0 else y.max()}: "
                            "rescale the targets, or use mse")
        if arch.loss == "cross_entropy" and y.min() < 0:
            raise DataError(f"cross_entropy targets must be nonnegative, but y has {y.min()}: give one-hot or probability rows")
        # Copies keep the case immutable even if the caller later edits its arrays.
        object.__setattr__(self, "params", {k: np.array(self.params[k], copy=True) for k in arch.param_shapes()})
        object.__setattr__(self, "x", np.array(x, dtype=dtype, copy=True))
        object.__setattr__(self, "y", np.array(y, dtype=dtype, copy=True))
        for arr in (*self.params.values(), self.x, self.y):
            arr.flags.writeable = False

    @property
    def dtype(self) -> type:
        return self.x.dtype.type

    @property
    def batch(self) -> int:
        return int(self.x.shape[0])

    def astype(self, dtype: Any) -> Case:
        dt = resolve_dtype(dtype)
        return Case(self.arch, {k: v.astype(dt) for k, v in self.params.items()},
                    self.x.astype(dt), self.y.astype(dt), self.regime)

    def with_params(self, params: Params) -> Case:
        return Case(self.arch, params, self.x, self.y, self.regime)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; floats are written as Python floats, whose repr round-trips exactly."""
        return {
            "spec_version": SPEC_VERSION,
            "arch": self.arch.to_dict(),
            "dtype": self.x.dtype.name,
            "regime": self.regime,
            "params": {k: v.astype(np.float64).tolist() for k, v in self.params.items()},
            "x": self.x.astype(np.float64).tolist(),
            "y": self.y.astype(np.float64).tolist(),
        }

    @classmethod
    def from_dict(cls, d: Any) -> Case:
        if not isinstance(d, dict):
            raise SpecError(f"case JSON is {type(d).__name__}, not an object: give a file written by bpcheck")
        version = d.get("spec_version")
        if version != SPEC_VERSION:
            raise SpecError(f"case JSON has spec_version={version!r}, but this bpcheck reads {SPEC_VERSION}: "
                            "re-create the case with this version")
        missing = [k for k in ("arch", "dtype", "params", "x", "y") if k not in d]
        if missing:
            raise SpecError(f"case JSON is missing {', '.join(missing)}: give a file written by bpcheck")
        arch = Arch.from_dict(d["arch"])
        dt = resolve_dtype(d["dtype"])
        if not isinstance(d["params"], dict):
            raise SpecError("case JSON 'params' is not an object: give {'W1': [[...]], 'b1': [...], ...}")
        try:
            params = {k: np.array(v, dtype=np.float64).astype(dt) for k, v in d["params"].items()}
            x = np.array(d["x"], dtype=np.float64).astype(dt)
            y = np.array(d["y"], dtype=np.float64).astype(dt)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"case JSON has a non-numeric or ragged array ({exc}): give nested lists of numbers") from None
        return cls(arch, params, x, y, str(d.get("regime", "ordinary")))


@dataclass(frozen=True)
class Gradients:
    """What every gradient producer returns for one Case.

    grads has the params' keys and shapes; dx is dL/dx, (batch, n_in). dz[l-1] is dL/dz_l for
    l = 1..L and da[l-1] is dL/da_l for the hidden layers l = 1..L-1; either may be None when a
    producer cannot give it. error, where given, is the producer's own estimate of its absolute
    error per coordinate (finite differences), and kink marks coordinates whose perturbation
    crossed a non-smooth point, so that they must not be compared.
    """

    loss: float
    grads: Grads
    dx: np.ndarray | None
    dz: tuple[np.ndarray, ...] | None = None
    da: tuple[np.ndarray, ...] | None = None
    error: Grads | None = None
    kink: dict[str, np.ndarray] | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def tensors(self) -> dict[str, np.ndarray]:
        """Param grads plus 'x' for dL/dx: the tensors a comparison walks over, in a fixed order."""
        out = dict(self.grads)
        if self.dx is not None:
            out["x"] = self.dx
        return out
