"""The pytest plugin (pytest11 entry point "bpcheck"): inert unless a test uses it.

    def test_my_backprop(gradcheck):
        gradcheck(my_grad_fn, Arch((3, 4, 2), ("tanh", "sigmoid"), "mse"))   # or gradcheck(case)

Options: --bpcheck-refs (default all), --bpcheck-seed (default 0), --bpcheck-profile (a Hypothesis
profile registered in a conftest.py). Every run gets one header line naming the seed and each
reference found (with its version) or skipped (with the reason); nothing else changes unless a
test asks for the gradcheck fixture or an option is given. This module imports only pytest at
load time: bpcheck's own modules are imported inside the hooks, torch and jax only when a
reference actually runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import numpy as np

    from .results import CheckResult
    from .spec import Arch, Case, Gradients

GradFn = Callable[["dict[str, np.ndarray]", "np.ndarray", "np.ndarray"], "dict[str, np.ndarray]"]
DEFAULT_BATCH = 4


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bpcheck", "bpcheck gradient checks")
    group.addoption("--bpcheck-refs", default="all", metavar="NAMES",
                    help="references for the gradcheck fixture, comma-separated from fd, torch, jax (default: all)")
    group.addoption("--bpcheck-seed", type=int, default=0, metavar="N",
                    help="seed of the cases the gradcheck fixture builds from an arch (default: 0)")
    group.addoption("--bpcheck-profile", default=None, metavar="NAME",
                    help="load this Hypothesis settings profile (registered in a conftest.py), e.g. ci")


def _references(config: pytest.Config) -> list[str]:
    from .references import resolve
    from .spec import BpcheckError

    try:
        return resolve(config.getoption("bpcheck_refs"))
    except BpcheckError as exc:
        raise pytest.UsageError(f"--bpcheck-refs: {exc}") from None


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("bpcheck_refs") != "all":
        _references(config)  # a bad name stops the run before collection, with the fix
    profile = config.getoption("bpcheck_profile")
    if profile is not None:
        # conftest.py files next to the tests are imported before pytest_configure, so their
        # register_profile calls have run; the option then overrides what they loaded.
        from hypothesis import settings
        from hypothesis.errors import InvalidArgument

        try:
            settings.load_profile(profile)
        except InvalidArgument:
            raise pytest.UsageError(f"--bpcheck-profile={profile!r} is not a registered Hypothesis profile: "
                                    "register it with settings.register_profile in conftest.py") from None


def pytest_report_header(config: pytest.Config) -> str:
    """'bpcheck: seed 0; fd (numpy 2.4.0), torch 2.13.0+cpu found; jax skipped (jax is not installed: ...)'."""
    from .references import status

    found, skipped = [], []
    for name in _references(config):
        s = status(name)  # reads metadata only: torch and jax are not imported
        if s.available:
            found.append(name + (" (numpy " + s.version + ")" if name == "fd" and s.version else
                                 " " + s.version if s.version else ""))
        else:
            skipped.append(f"{name} skipped ({s.reason})")
    parts = [f"seed {config.getoption('bpcheck_seed')}"]
    if found:
        parts.append(", ".join(found) + " found")
    parts.extend(skipped)
    profile = config.getoption("bpcheck_profile")
    if profile is not None:
        parts.append(f"hypothesis profile {profile!r}")
    return "bpcheck: " + "; ".join(parts)


def seeded_case(arch: Arch, seed: int, *, batch: int = DEFAULT_BATCH, dtype: Any = "float64") -> Case:
    """A reproducible Case for arch: Xavier weights, biases ~ N(0, 0.5^2) (nonzero, so that bias bugs
    show), x ~ N(0, 1) of shape (batch, n_in), and targets fitting the loss."""
    import numpy as np

    from .spec import Case, init_params

    rng = np.random.default_rng(seed)
    params = init_params(arch, rng)
    params = {k: v + 0.5 * rng.standard_normal(v.shape) if k.startswith("b") else v for k, v in params.items()}
    x = rng.standard_normal((batch, arch.sizes[0]))
    n_out = arch.sizes[-1]
    if arch.loss == "bce":
        y = rng.random((batch, n_out))
    elif arch.loss == "cross_entropy":
        y = np.eye(n_out)[rng.integers(0, n_out, batch)]
    else:
        y = rng.standard_normal((batch, n_out))
    return Case(arch, params, x, y).astype(dtype)


def grad_fn_producer(grad_fn: GradFn) -> Callable[[Case], Gradients]:
    """A user's grad_fn(params, x, y) -> {'W1': dL/dW1, 'b1': ..., ...} as a producer Case -> Gradients.

    grad_fn gets writable copies (row-vector batches: x is (batch, n_in)); its result must hold every
    param name with the param's shape. The loss is the engine's (grad_fn gives none), dL/dx is not
    checked, and the per-layer trace is absent, so a fault is located by the first bad parameter.
    """
    from . import engine
    from .spec import Gradients, UserFunctionError

    name = getattr(grad_fn, "__qualname__", repr(grad_fn))

    def produce(case: Case) -> Gradients:
        import numpy as np

        out = grad_fn({k: v.copy() for k, v in case.params.items()}, case.x.copy(), case.y.copy())
        if not isinstance(out, dict):
            raise UserFunctionError(f"{name} returned {type(out).__name__}, not a dict: return "
                                    "{'W1': dL/dW1, 'b1': dL/db1, ...}")
        grads = {}
        for key, shape in case.arch.param_shapes().items():
            if key not in out:
                raise UserFunctionError(f"{name} returned no {key!r}: return a gradient for each of "
                                        f"{', '.join(case.arch.param_shapes())}")
            value = np.asarray(out[key])
            if value.shape != shape:
                raise UserFunctionError(f"{name} returned {key!r} of shape {value.shape}, but {key} is {shape}: "
                                        "W_l is (n_{l-1}, n_l) for row-vector batches")
            grads[key] = value.astype(case.dtype, copy=False)
        return Gradients(engine.loss(case.arch, case.params, case.x, case.y), grads, None, source=name)

    produce.__qualname__ = name
    produce.__module__ = getattr(grad_fn, "__module__", None) or "user"
    return produce


class GradCheck:
    """The gradcheck fixture: call it to assert that gradients agree with the references."""

    def __init__(self, references: list[str], seed: int) -> None:
        self.references = references
        self.seed = seed

    def case(self, arch: Arch, *, batch: int = DEFAULT_BATCH, dtype: Any = "float64") -> Case:
        """The case __call__ builds for arch: seeded by --bpcheck-seed."""
        return seeded_case(arch, self.seed, batch=batch, dtype=dtype)

    def __call__(self, case_or_grad_fn: Case | GradFn, arch: Arch | Case | None = None, *,
                 batch: int = DEFAULT_BATCH, dtype: Any = "float64", references: str | list[str] | None = None,
                 fast: bool = False) -> CheckResult:
        """gradcheck(case): the engine on a Case. gradcheck(grad_fn, arch_or_case): a user's
        grad_fn(params, x, y) -> {'W1': ..., 'b1': ...} on that Case, or on the seeded case for an Arch.

        Fails the test with AssertionError carrying the localised, diagnosed message (layer and
        parameter named); skips it when no requested reference can run here. Returns the CheckResult.
        """
        __tracebackhide__ = True
        from . import engine
        from .check import check_case
        from .spec import Arch, Case

        if isinstance(case_or_grad_fn, Case):
            if arch is not None:
                raise TypeError("gradcheck(case) checks the engine on that case: pass no arch, or pass a grad_fn first")
            case, producer = case_or_grad_fn, engine.gradients
        elif callable(case_or_grad_fn):
            if isinstance(arch, Case):
                case = arch
            elif isinstance(arch, Arch):
                case = self.case(arch, batch=batch, dtype=dtype)
            else:
                raise TypeError(f"gradcheck(grad_fn, arch) needs an Arch or a Case as arch, not {arch!r}: "
                                "e.g. Arch((3, 4, 2), ('tanh', 'sigmoid'), 'mse')")
            producer = grad_fn_producer(case_or_grad_fn)
        else:
            raise TypeError(f"gradcheck takes a Case or a grad_fn(params, x, y), not {case_or_grad_fn!r}")
        result = check_case(case, references if references is not None else self.references,
                            producer=producer, fast=fast)
        if result.verdicts and all(v.label == "SKIPPED" for v in result.verdicts):
            pytest.skip("bpcheck: no reference can run here: " + "; ".join(
                f"{v.reference} ({v.reason})" for v in result.verdicts))
        if not result.ok:
            raise AssertionError(result.message())
        return result


@pytest.fixture(scope="session")
def gradcheck(request: pytest.FixtureRequest) -> GradCheck:
    """Assert that a gradient function (or the engine on a Case) agrees with the references; see GradCheck.

    Session-scoped (it holds only the options), so @given tests may use it without a health-check warning.
    """
    config = request.config
    return GradCheck(_references(config), config.getoption("bpcheck_seed"))
