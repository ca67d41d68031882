"""Hypothesis profiles for the whole suite, and pytester for the plugin's tests.

Select a profile with HYPOTHESIS_PROFILE=ci or `pytest --bpcheck-profile ci` (the option wins; the
bpcheck plugin loads it after this file has registered the profiles). Profiles set only what a
test leaves unset: a test with its own @settings(max_examples=...) keeps its number.

    dev       the default: quick, randomised, remembers failures in .hypothesis/
    ci        derandomize=True, 300 examples a property, no database: every run and every
              xdist worker draws the same examples, so -n 2 and a serial run agree
    thorough  5000 examples a property, randomised: for a long run before a release

BPCHECK_REQUIRE_REFS=torch,jax (set by .ci/run) turns a skip whose reason names a required reference into a
failure (tests/test_ci_requirements.py).
"""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

# Reference calls (torch, jax, finite differences) take milliseconds, not microseconds, so
# Hypothesis's timing health check and per-example deadline would only add noise.
_SLOW_OK = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])

settings.register_profile("dev", max_examples=30, **_SLOW_OK)
settings.register_profile("ci", max_examples=300, derandomize=True, database=None, print_blob=True, **_SLOW_OK)
settings.register_profile("thorough", max_examples=5000, print_blob=True, **_SLOW_OK)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# CI sets BPCHECK_REQUIRE_REFS=torch,jax (.ci/run): there a test skipped because torch or jax is missing or
# broken is a failure, so a CI machine that lost them cannot go green by skipping. Unset (tox -e bare, a
# laptop), such tests skip with the reason, as before.
REQUIRE_REFS = "BPCHECK_REQUIRE_REFS"


def _required() -> list[str]:
    return [n.strip() for n in os.environ.get(REQUIRE_REFS, "").split(",") if n.strip()]


def _fail_required_skip(report) -> None:
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return
    reason = str(report.longrepr[2])
    named = [n for n in _required() if re.search(rf"\b{re.escape(n)}\b", reason)]
    if named:
        report.outcome = "failed"
        report.longrepr = (f"{REQUIRE_REFS}={os.environ[REQUIRE_REFS]} requires {', '.join(named)}, but this was "
                           f"skipped ({reason}): install it (pip install torch==2.13.0 jax), or unset {REQUIRE_REFS}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_required_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_required_skip(outcome.get_result())
