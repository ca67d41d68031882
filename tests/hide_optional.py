"""Run bpcheck in a Python that cannot import torch and/or jax, without uninstalling them.

A sitecustomize.py (written to a temporary directory put first on PYTHONPATH, so spawned sweep
workers inherit it) wraps every finder on sys.meta_path: for a hidden top-level name, find_spec
returns None and find_distributions yields nothing. That is exactly what Python sees when the
package is not installed (import raises ModuleNotFoundError, importlib.util.find_spec returns None,
importlib.metadata.version raises PackageNotFoundError). It hides the real package; it is not a mock.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HIDE_ENV = "BPCHECK_TEST_HIDE"
SITECUSTOMIZE = '''
import os, sys

_HIDDEN = {n for n in os.environ.get("BPCHECK_TEST_HIDE", "").split(",") if n}
_DISTS = {"torch": {"torch"}, "jax": {"jax", "jaxlib"}}
_HIDDEN_DISTS = set().union(*(_DISTS.get(n, {n}) for n in _HIDDEN)) if _HIDDEN else set()


class _Hiding:
    """Wraps one finder; hidden names are not found, as if not installed."""

    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _HIDDEN or name.partition(".")[0] in _HIDDEN_DISTS:
            return None
        find = getattr(self._finder, "find_spec", None)
        return find(name, path, target) if find else None

    def find_distributions(self, context=None):
        find = getattr(self._finder, "find_distributions", None)
        if find is None:
            return iter(())
        if context is None:
            from importlib.metadata import DistributionFinder
            context = DistributionFinder.Context()
        return (d for d in find(context) if (d.metadata["Name"] or "").lower() not in _HIDDEN_DISTS)

    def invalidate_caches(self):
        if hasattr(self._finder, "invalidate_caches"):
            self._finder.invalidate_caches()


if _HIDDEN:
    sys.meta_path[:] = [_Hiding(f) for f in sys.meta_path]
'''


def hidden_env(tmp_path: Path, hide: str) -> dict[str, str]:
    """os.environ plus a PYTHONPATH whose sitecustomize hides the comma-separated names in hide."""
    site = tmp_path / "hide_site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    env[HIDE_ENV] = hide
    return env


def run_bpcheck(argv: list[str], env: dict[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
                timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m bpcheck *argv` in a fresh process; stdout and stderr as text."""
    return subprocess.run([sys.executable, "-m", "bpcheck", *argv], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)
