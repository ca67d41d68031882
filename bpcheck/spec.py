"""The one data model shared by the engine, the references, the checks and the report.

`Arch` says what network it is (a stack of layers plus a loss; bpcheck.arch), `Case` holds everything
needed to compute one loss (bpcheck.case), and `Gradients` is what every gradient producer returns. All
are plain, immutable data; every invalid value raises a `BpcheckError` subclass whose message names the
value and the fix (bpcheck.vocab). This module is the one place to import them from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .arch import Arch, LayerSpec, Shape, param_names, split_key
from .case import (
    SPEC_VERSION,
    SPEC_VERSIONS,
    Case,
    init_params,
    migrate,
    migrate_v1,
    migrate_v2,
    one_hot,
    validate_params,
    with_weight_decay,
)
from .vocab import (
    ACTIVATIONS,
    DTYPES,
    LOSS_OUTPUT,
    LOSSES,
    PARAMETERS,
    BpcheckError,
    DataError,
    Grads,
    Params,
    SpecError,
    UsageError,
    UserFunctionError,
    canonical_activation,
    resolve_dtype,
    split_activation,
    suggest,
)

DEFAULT_TIMEOUT = 60.0  # seconds per call of a user's function (bpcheck.byo.isolation), unless --timeout says

__all__ = [
    "ACTIVATIONS", "DEFAULT_TIMEOUT", "DTYPES", "LOSSES", "LOSS_OUTPUT", "PARAMETERS", "SPEC_VERSION", "SPEC_VERSIONS",
    "Arch", "BpcheckError", "Case", "DataError", "Gradients", "Grads", "LayerSpec", "Params", "Shape", "SpecError",
    "UsageError", "UserFunctionError", "canonical_activation", "init_params", "migrate", "migrate_v1", "migrate_v2",
    "one_hot", "param_names",
    "resolve_dtype", "split_activation", "split_key", "suggest", "validate_params", "with_weight_decay",
]


@dataclass(frozen=True)
class Gradients:
    """What every gradient producer returns for one Case.

    grads has the params' keys and shapes; dx is dL/dx, (batch, *in_shape). dout[i-1] is dL/d(output of
    layer i), one per layer of any stack (None where a producer does not give it: the output of a dense
    layer fused with a from-logits loss). For a dense MLP, dz[l-1] is dL/dz_l for l = 1..L and da[l-1]
    is dL/da_l for the hidden layers l = 1..L-1 (so dout[l-1] is da[l-1] there); dz, da and dout may be
    None when a producer cannot give them. error, where given, is the producer's own estimate of its absolute
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
    dout: tuple[np.ndarray | None, ...] | None = None

    def tensors(self) -> dict[str, np.ndarray]:
        """Param grads plus 'x' for dL/dx: the tensors a comparison walks over, in a fixed order."""
        out = dict(self.grads)
        if self.dx is not None:
            out["x"] = self.dx
        return out
