"""bpcheck: check hand-written backprop against finite differences, PyTorch and JAX."""

from . import layers  # noqa: E402,F401  registers every layer kind, so an Arch can be built from here on
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
from .version import __version__

__all__ = [
    "ACTIVATIONS", "LOSSES", "Arch", "BpcheckError", "Case", "DataError", "Gradients", "SpecError",
    "UsageError", "UserFunctionError", "init_params", "__version__", "replay", "check_gradients", "check_case", "check_layer",
]


def __getattr__(name: str):
    # bpcheck.replay loads the checker on first use, so `import bpcheck` stays light (PEP 562).
    if name == "replay":
        from .replaying import replay

        return replay
    if name == "check_gradients":
        from .byo import check_gradients

        return check_gradients
    if name == "check_layer":
        from .layercheck import check_layer

        return check_layer
    if name == "check_case":
        from .check import check_case

        return check_case
    raise AttributeError(f"module 'bpcheck' has no attribute {name!r}")
