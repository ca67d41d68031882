"""bpcheck: check hand-written backprop against finite differences, PyTorch and JAX."""

from .spec import (
    ACTIVATIONS,
    LOSSES,
    Arch,
    BpcheckError,
    Case,
    DataError,
    Gradients,
    SpecError,
    UsageError,
    UserFunctionError,
    init_params,
)

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "LOSSES", "Arch", "BpcheckError", "Case", "DataError", "Gradients", "SpecError",
    "UsageError", "UserFunctionError", "init_params", "__version__",
]
