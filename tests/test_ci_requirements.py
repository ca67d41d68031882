"""CI must fail, not skip, when torch or jax is missing or broken.

.ci/run sets BPCHECK_REQUIRE_REFS=torch,jax; the hook in tests/conftest.py then turns every skip whose reason names
one of them into a failure (a collection error for a module-level skip). Unset, as under `tox -e bare`, those
tests skip with the reason. The hook is tested on the suite's own files, in a pytest subprocess where torch is
really hidden (tests/hide_optional.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bpcheck import engine
from bpcheck import references as refs
from bpcheck.spec import Arch, Case, init_params

from .conftest import REQUIRE_REFS
from .hide_optional import hidden_env

ROOT = Path(__file__).resolve().parent.parent
# a module that skips at collection without torch, and a test that skips in its fixture's setup
SKIPPING = ["tests/test_no_false_alarms.py", "tests/test_torch_jax_refs.py::test_torch_thread_count_is_restored",
            "tests/test_torch_jax_refs.py::test_resolve_parses_lists"]


def test_each_required_reference_runs_and_agrees_with_the_engine():
    """Installed but broken (an import or a call that fails) is caught here, where a skip would not say it."""
    required = [n for n in os.environ.get(REQUIRE_REFS, "").split(",") if n.strip()]
    if not required:
        pytest.skip(f"{REQUIRE_REFS} is not set")
    arch = Arch((3, 4, 2), ("tanh", "softmax"), "cross_entropy")
    rng = np.random.default_rng(0)
    case = Case(arch, init_params(arch, rng), rng.standard_normal((5, 3)), np.eye(2)[rng.integers(0, 2, 5)])
    want = engine.gradients(case)
    for name in required:
        status = refs.status(name.strip())
        assert status.available, f"{REQUIRE_REFS} requires {name}: {status.reason}"
        got = refs.producer(name.strip())(case)
        for key, g in want.grads.items():
            assert np.linalg.norm(got.grads[key] - g) <= 1e-10 * np.linalg.norm(g), (name, key)


def _pytest(tmp_path: Path, require: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in hidden_env(tmp_path, "torch").items() if not k.startswith(("PYTEST_", REQUIRE_REFS))}
    if require is not None:
        env[REQUIRE_REFS] = require
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           "--continue-on-collection-errors", "-rfEs", *SKIPPING],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_a_skip_for_a_required_reference_fails_the_run(tmp_path):
    done = _pytest(tmp_path, "torch,jax")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "ERROR tests/test_no_false_alarms.py" in out and "ERROR tests/test_torch_jax_refs.py::test_torch_thread" in out
    assert f"{REQUIRE_REFS}=torch,jax requires torch, but this was skipped (Skipped: torch is not installed" in out
    assert "1 passed, 2 errors" in out and "skipped" not in out.splitlines()[-1]


def test_without_the_variable_the_same_tests_skip(tmp_path):
    """What tox -e bare sees: the reason, and exit 0."""
    done = _pytest(tmp_path, None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 2 skipped" in done.stdout and "SKIPPED [1] tests/test_no_false_alarms.py" in done.stdout


def test_a_required_name_the_skip_does_not_name_leaves_it_a_skip(tmp_path):
    """jax is required, torch is hidden: a skip for torch is not jax's failure."""
    done = _pytest(tmp_path, "jax")
    assert done.returncode == 0 and "1 passed, 2 skipped" in done.stdout, done.stdout
