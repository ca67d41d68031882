"""Every shipped tolerance row pinned by behaviour: an error planted just above the documented bound is caught, one
just below is not.

The documented values are written out here (the table in bpcheck/compare/tolerance.py's docstring and the README),
not read from TOLERANCES: a row changed by any factor (x1000 or /1000 of the FD error multiple, of rtol, of the
rounding safety factor, of atol, of FD's floor) fails a test below. The bound of a tensor of n coordinates is

    ||u|| <= rtol * max(||a||, ||b||) + safety * eps(dtype) * sqrt(width) * E + atol * sqrt(n),
    u_i = max(|a_i - b_i| - fd_mult * err_i - fd_floor * S, 0)

with E the tensor's rounding scale (rounding.py's model, an input here), err FD's error estimate and S the largest
gradient entry of the case.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpcheck import engine
from bpcheck import references as refs
from bpcheck.check import check_case
from bpcheck.compare.metrics import compare_tensor
from bpcheck.compare.tolerance import TOLERANCES, tolerance_for
from bpcheck.spec import Arch, Case, Gradients, init_params

TINY = {"float64": float(np.finfo(np.float64).tiny), "float32": float(np.finfo(np.float32).tiny)}
EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}
# (kind, dtype) -> rtol, safety, fd_mult, fd_floor, fd_rtol_no_estimate, atol: the documented table
DOCUMENTED = {
    ("analytic", "float64"): dict(rtol=1e-12, safety=4.0, fd_mult=0.0, fd_floor=0.0, no_estimate=0.0, atol=1e4 * TINY["float64"]),
    ("analytic", "float32"): dict(rtol=0.0, safety=4.0, fd_mult=0.0, fd_floor=0.0, no_estimate=0.0, atol=1e4 * TINY["float32"]),
    ("fd", "float64"): dict(rtol=1e-12, safety=4.0, fd_mult=10.0, fd_floor=1e-13, no_estimate=1e-6, atol=1e4 * TINY["float64"]),
    ("fd", "float32"): dict(rtol=0.0, safety=4.0, fd_mult=10.0, fd_floor=1e-13, no_estimate=1e-6, atol=1e4 * TINY["float32"]),
}
ROWS = [pytest.param(kind, dtype, id=f"{kind}-{dtype}") for kind, dtype in DOCUMENTED]
FD_ROWS = [p for p in ROWS if p.values[0] == "fd"]
ARCH = Arch((2, 3, 1), ("tanh", "identity"), "mse")
WIDTH = 4  # max(sizes 2, 3, 1 and the batch of 4): gamma = safety * eps * sqrt(WIDTH)
N = 12


def _case(dtype: str) -> Case:
    rng = np.random.default_rng(0)
    return Case(ARCH, init_params(ARCH, rng), rng.standard_normal((WIDTH, 2)), rng.standard_normal((WIDTH, 1))).astype(dtype)


def _ok(kind: str, dtype: str, a, b, *, E: float = 0.0, err=None, S: float = 0.0, has_estimate: bool = True) -> bool:
    tol = tolerance_for("fd" if kind == "fd" else "torch", _case(dtype), has_estimate=has_estimate, scale=S)
    return compare_tensor("W1", np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), tol, E, err=err).ok


def _b(n: int = N) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(n)


def _along(b: np.ndarray, size: float) -> np.ndarray:
    """b plus an error of norm `size` in a fixed random direction."""
    d = np.random.default_rng(2).standard_normal(b.shape)
    return b + size * d / np.linalg.norm(d)


def test_every_shipped_row_is_documented_and_pinned():
    assert set(TOLERANCES) == set(DOCUMENTED)


@pytest.mark.parametrize("kind, dtype", ROWS)
def test_rtol(kind, dtype):
    """E = 0 and no FD estimate: rtol alone (0 for float32, whose bound is all rounding)."""
    rtol, b = DOCUMENTED[(kind, dtype)]["rtol"], _b()
    if rtol:
        assert not _ok(kind, dtype, _along(b, 1.5 * rtol * np.linalg.norm(b)), b)
        assert _ok(kind, dtype, _along(b, 0.5 * rtol * np.linalg.norm(b)), b)
    else:
        assert not _ok(kind, dtype, _along(b, 1e-13 * np.linalg.norm(b)), b)  # nothing is allowed without rounding
    assert _ok(kind, dtype, b, b)


@pytest.mark.parametrize("kind, dtype", ROWS)
def test_the_rounding_safety_factor(kind, dtype):
    """E large enough that safety * eps * sqrt(width) * E dominates the bound."""
    row, b = DOCUMENTED[(kind, dtype)], _b()
    E = 1e5 * np.linalg.norm(b) if dtype == "float64" else np.linalg.norm(b)
    gamma = row["safety"] * EPS[dtype] * math.sqrt(WIDTH)
    bound = row["rtol"] * np.linalg.norm(b) + gamma * E
    assert not _ok(kind, dtype, _along(b, 1.2 * bound), b, E=E)
    assert _ok(kind, dtype, _along(b, 0.8 * bound), b, E=E)


@pytest.mark.parametrize("kind, dtype", ROWS)
def test_atol_where_the_dtype_underflows(kind, dtype):
    """A reference gradient of 0: only atol * sqrt(n) is allowed."""
    atol, zero = DOCUMENTED[(kind, dtype)]["atol"], np.zeros(N)
    assert not _ok(kind, dtype, _along(zero, 1.2 * atol * math.sqrt(N)), zero)
    assert _ok(kind, dtype, _along(zero, 0.8 * atol * math.sqrt(N)), zero)


@pytest.mark.parametrize("kind, dtype", FD_ROWS)
def test_the_fd_error_multiple(kind, dtype):
    """A difference of k x FD's own error estimate, coordinate by coordinate: caught above fd_mult, not below."""
    mult, b = DOCUMENTED[(kind, dtype)]["fd_mult"], _b()
    err = 1e-6 * np.abs(b) + 1e-7
    sign = np.where(np.arange(N) % 2, 1.0, -1.0)
    assert not _ok(kind, dtype, b + 1.1 * mult * err * sign, b, err=err)
    assert _ok(kind, dtype, b + 0.9 * mult * err * sign, b, err=err)


@pytest.mark.parametrize("kind, dtype", FD_ROWS)
def test_the_fd_floor(kind, dtype):
    """fd_floor * S comes off every coordinate (S: the largest gradient entry). 10,000 coordinates of 0 beside one
    of S = 1: an excess of 0.5e-13 on each adds up past rtol * ||b||, a shortfall leaves nothing unexplained."""
    floor = DOCUMENTED[(kind, dtype)]["fd_floor"]
    b = np.zeros(10_000)
    b[0] = 1.0
    err = np.zeros_like(b)
    assert not _ok(kind, dtype, b + np.where(b == 0, 1.5 * floor, 0.0), b, err=err, S=1.0)
    assert _ok(kind, dtype, b + np.where(b == 0, 0.9 * floor, 0.0), b, err=err, S=1.0)


@pytest.mark.parametrize("kind, dtype", FD_ROWS)
def test_rtol_when_fd_gives_no_estimate(kind, dtype):
    rtol, b = DOCUMENTED[(kind, dtype)]["no_estimate"], _b()
    assert not _ok(kind, dtype, _along(b, 1.5 * rtol * np.linalg.norm(b)), b, has_estimate=False)
    assert _ok(kind, dtype, _along(b, 0.5 * rtol * np.linalg.norm(b)), b, has_estimate=False)


def _fd_plus(k: float):
    """A producer returning FD's own gradient plus k x FD's error estimate: it differs from the FD reference by
    exactly k estimates (the FD reference is deterministic, and cached per case)."""
    def produce(case: Case) -> Gradients:
        fd = refs.producer("fd")(case.astype(np.float64))
        grads = {key: (g + k * fd.error[key]).astype(case.dtype) for key, g in fd.grads.items()}
        return Gradients(engine.loss(case.arch, case.params, case.x, case.y), grads, None)

    return produce


def test_the_fd_error_multiple_through_check_case():
    """End to end, on a real case and FD's real error estimate: 11 estimates off is ENGINE, 9 is AGREE."""
    case = _case("float64")
    fd = refs.producer("fd")(case)
    ratio = min(float(np.min(fd.error[k] / (1e-13 * max(np.abs(g).max() for g in fd.grads.values()))))
                for k in fd.grads)
    assert ratio > 10, "the estimate must dwarf the floor, for the test to read the multiple"
    assert check_case(case, "fd", producer=_fd_plus(11.0)).label == "ENGINE"
    assert check_case(case, "fd", producer=_fd_plus(9.0)).label == "AGREE"
