"""Hypothesis profiles for the whole suite, and pytester for the plugin's tests.

Select a profile with HYPOTHESIS_PROFILE=ci or `pytest --bpcheck-profile ci` (the option wins; the
bpcheck plugin loads it after this file has registered the profiles). Profiles set only what a
test leaves unset: a test with its own @settings(max_examples=...) keeps its number.

    dev       the default: quick, randomised, remembers failures in .hypothesis/
    ci        derandomize=True, 300 examples a property, no database: every run and every
              xdist worker draws the same examples, so -n 2 and a serial run agree
    thorough  5000 examples a property, randomised: for a long run before a release
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

# Reference calls (torch, jax, finite differences) take milliseconds, not microseconds, so
# Hypothesis's timing health check and per-example deadline would only add noise.
_SLOW_OK = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])

settings.register_profile("dev", max_examples=30, **_SLOW_OK)
settings.register_profile("ci", max_examples=300, derandomize=True, database=None, print_blob=True, **_SLOW_OK)
settings.register_profile("thorough", max_examples=5000, print_blob=True, **_SLOW_OK)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
