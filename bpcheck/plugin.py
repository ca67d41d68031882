"""The pytest plugin (pytest11 entry point "bpcheck"): inert unless a test uses it.

    def test_my_backprop(gradcheck):
        gradcheck(my_grad_fn, Arch((3, 4, 2), ("tanh", "sigmoid"), "mse"))   # bpcheck.check_gradients, asserted
        gradcheck(my_grad_fn, case)          # on one Case; gradcheck(case): the engine on it

    def test_my_conv(layercheck):
        layercheck(conv_forward, conv_backward, layer="conv2d")               # bpcheck.check_layer, asserted

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
    from .byo import Result
    from .results import CheckResult
    from .spec import Arch, Case


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bpcheck", "bpcheck gradient checks")
    group.addoption("--bpcheck-refs", default="all", metavar="NAMES",
                    help="references for the gradcheck fixture, comma-separated from fd, torch, jax (default: all)")
    group.addoption("--bpcheck-seed", type=int, default=0, metavar="N",
                    help="seed of the cases the gradcheck fixture draws for an arch (default: 0)")
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


class GradCheck:
    """The gradcheck fixture: call it to assert that gradients agree with the references.

    gradcheck(grad_fn, arch, **options) is bpcheck.check_gradients(grad_fn, arch, **options) with the
    run's --bpcheck-refs and --bpcheck-seed, asserted; gradcheck(grad_fn, case) checks grad_fn on that
    one Case; gradcheck(case) checks bpcheck's engine on it (check_case).
    """

    def __init__(self, references: list[str], seed: int) -> None:
        self.references = references
        self.seed = seed

    def __call__(self, case_or_grad_fn: Case | Callable[..., Any], arch: Arch | Case | Any = None,
                 **options: Any) -> Result | CheckResult:
        """Fail the test with AssertionError carrying the localised, diagnosed message (layer and
        parameter named); skip it when no requested reference can run here. Returns what the check
        returned: a byo Result for a grad_fn, a CheckResult for a Case.

        options (grad_fn only): loss_fn, cases, dtype, layout, timeout, as check_gradients takes them;
        references and seed override the run's options. For a Case: references, fast.
        """
        __tracebackhide__ = True
        from .spec import Case

        options.setdefault("references", self.references)
        if isinstance(case_or_grad_fn, Case):
            if arch is not None:
                raise TypeError("gradcheck(case) checks the engine on that case: pass no arch, or pass a grad_fn first")
            return self._engine(case_or_grad_fn, **options)
        if not callable(case_or_grad_fn):
            raise TypeError(f"gradcheck takes a grad_fn(params, x, y) or a Case, not {case_or_grad_fn!r:.60}")
        from .byo import check_gradients

        options.setdefault("seed", self.seed)
        options.setdefault("skip_missing", True)  # a reference that cannot run here skips the test, below
        if isinstance(arch, Case):
            arch, options["cases"] = arch.arch, [arch]
        result = check_gradients(case_or_grad_fn, arch, **options)
        if result.outcomes and set(result.labels) == {"SKIPPED"} and not result.findings:
            _skip_unavailable(result.references)
        if not result.ok:
            raise AssertionError(str(result))
        return result

    @staticmethod
    def _engine(case: Case, references: Any = None, fast: bool = False) -> CheckResult:
        __tracebackhide__ = True
        from .check import check_case

        result = check_case(case, references, fast=fast, skip_missing=True)
        if result.verdicts and all(v.label == "SKIPPED" for v in result.verdicts):
            _skip_unavailable([v.reference for v in result.verdicts])
        if not result.ok:
            raise AssertionError(result.message())
        return result


def _skip_unavailable(names: Any) -> None:
    from .references import status

    reasons = "; ".join(f"{n} ({status(n.split(':')[0]).reason})" for n in names)
    pytest.skip(f"bpcheck: no reference can run here: {reasons}")


class LayerCheck:
    """The layercheck fixture: layercheck(forward, backward, layer=..., **options) is bpcheck.check_layer with the
    run's --bpcheck-refs and --bpcheck-seed, asserted (AssertionError carrying the summary: the argument, the
    diagnosis, the smallest failing case). Returns the LayerResult."""

    def __init__(self, references: list[str] | None, seed: int) -> None:
        self.references = references
        self.seed = seed

    def __call__(self, forward: Any, backward: Any = None, *, layer: str, **options: Any) -> Any:
        __tracebackhide__ = True
        from .layercheck import check_layer

        options.setdefault("references", self.references)
        options.setdefault("seed", self.seed)
        result = check_layer(forward, backward, layer=layer, **options)
        if not result.ok:
            raise AssertionError(str(result))
        return result


@pytest.fixture(scope="session")
def layercheck(request: pytest.FixtureRequest) -> LayerCheck:
    """Assert that a layer's backward agrees with the references and passes the reference-free checks."""
    config = request.config
    named = config.getoption("bpcheck_refs")
    return LayerCheck(None if named == "all" else _references(config), config.getoption("bpcheck_seed"))


@pytest.fixture(scope="session")
def gradcheck(request: pytest.FixtureRequest) -> GradCheck:
    """Assert that a gradient function (or the engine on a Case) agrees with the references; see GradCheck.

    Session-scoped (it holds only the options), so @given tests may use it without a health-check warning.
    """
    config = request.config
    return GradCheck(_references(config), config.getoption("bpcheck_seed"))
