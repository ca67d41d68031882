"""The speed suite's pieces: the contenders compute the engine's loss, the suite's plumbing, and the speed fixes."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import nets
from benchmarks.run import goals_table, parse_args
from benchmarks.section import Goal
from bpcheck import engine
from bpcheck.references import directions, jax_ref, status
from bpcheck.spec import UsageError, param_names

needs_torch = pytest.mark.skipif(not status("torch").available, reason=status("torch").reason or "")
needs_jax = pytest.mark.skipif(not status("jax").available, reason=status("jax").reason or "")


def _engine_loss(case) -> float:
    return engine.loss(case.arch, case.params, case.x, case.y)


def test_flat_params_follow_param_names_row_major():
    case = nets.make_case("1k")
    flat = nets.flat_params(case)
    expected = np.concatenate([case.params[n].ravel() for n in param_names(case.arch.n_layers)])
    assert flat.shape == (case.arch.n_params,) and np.array_equal(flat, expected)


def test_sizes_have_the_named_parameter_counts():
    for label, n in (("1k", 1_000), ("10k", 10_000), ("100k", 100_000), ("deep10k", 10_000), ("deep100k", 100_000)):
        assert 0.95 * n <= nets.make_case(label).arch.n_params <= 1.05 * n
    assert nets.make_case("deep10k").arch.activations == ("tanh", "tanh", "softmax")


@needs_torch
@pytest.mark.parametrize("label", ["1k", "deep10k"])
def test_torch_net_is_the_engines_loss_and_gradient(label):
    import torch

    case = nets.make_case(label, seed=3)
    loss, flat = nets.torch_loss(case)
    flat.requires_grad_(True)
    value = loss(flat)
    (grad,) = torch.autograd.grad(value, flat)
    exact = np.concatenate([g.ravel() for g in engine.gradients(case).grads.values()])
    assert value.item() == pytest.approx(_engine_loss(case), rel=1e-13)
    assert np.allclose(grad.numpy(), exact, rtol=1e-10, atol=1e-14)


@needs_jax
def test_jax_net_is_the_engines_loss():
    case = nets.make_case("1k", seed=4)
    loss, flat = nets.jax_loss(case)
    assert float(loss(flat)) == pytest.approx(_engine_loss(case), rel=1e-13)


def test_accuracy_is_max_abs_and_norm_relative():
    max_abs, norm_rel = nets.accuracy(np.array([1.0, 2.5]), np.array([1.0, 2.0]))
    assert max_abs == 0.5 and norm_rel == pytest.approx(0.5 / np.sqrt(5.0))


def test_parse_args_rejects_an_unknown_case():
    with pytest.raises(SystemExit) as exc:
        parse_args(["--cases", "a,z"])
    assert exc.value.code == 2
    assert parse_args(["--cases", "b, d", "--skip-slow"]).cases == ["b", "d"]


def test_goals_table_marks_missed_goals():
    text = goals_table([Goal("g1", "<= 1x", "0.5x", True), Goal("g2", "<= 1x", "3x", False)])
    assert "| g1 | <= 1x | 0.5x | yes |" in text and "| g2 | <= 1x | 3x | NO |" in text


def test_plot_writes_a_png_and_no_temporary(tmp_path):
    from benchmarks.plot import plot_cost

    path = tmp_path / "bench.png"
    plot_cost([("bpcheck", 1_000, 0.01), ("bpcheck", 10_000, 0.1), ("torch", 1_000, 1.0), ("skip", 0, 1.0)], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bench.png"]


def test_squared_norms_match_the_plain_sum():
    v = np.random.default_rng(0).standard_normal((3, 4, 5))
    assert np.allclose(directions.squared_norms(v), (v ** 2).reshape(3, -1).sum(axis=1), rtol=1e-14)


def test_checked_directions_still_names_a_non_finite_direction():
    case = nets.make_case("1k")
    dirs = directions.random_directions(case, 2, np.random.default_rng(0))
    dirs["b2"] = dirs["b2"].copy()
    dirs["b2"][1, 0] = np.nan
    with pytest.raises(UsageError, match=r"directions\['b2'\] has non-finite values"):
        directions.checked_directions(dirs, case.arch.param_shapes())


def test_random_directions_are_unit_and_seeded():
    case = nets.make_case("1k")
    a = directions.random_directions(case, 3, np.random.default_rng(7))
    b = directions.random_directions(case, 3, np.random.default_rng(7))
    norms = np.sqrt(sum(directions.squared_norms(v) for v in a.values()))
    assert np.allclose(norms, 1.0, rtol=1e-14) and all(np.array_equal(a[k], b[k]) for k in a)


def test_jax_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BPCHECK_JAX_CACHE", "off")
    assert jax_ref.cache_dir() is None
    monkeypatch.setenv("BPCHECK_JAX_CACHE", str(tmp_path / "c"))
    assert jax_ref.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("BPCHECK_JAX_CACHE")
    assert jax_ref.cache_dir().parts[-3:] == (".cache", "bpcheck", "jax")


def _stamp_factory():
    import time

    return time.time  # step() -> the wall-clock time of the call, comparable across processes


def test_interleave_rotates_the_order_each_round():
    from benchmarks.interleave import interleave

    timings = {t.name: t.times for t in interleave({"A": _stamp_factory, "B": _stamp_factory}, rounds=4, rotate=True)}
    first = ["A" if a < b else "B" for a, b in zip(timings["A"], timings["B"])]
    assert first == ["A", "B", "A", "B"]


@pytest.mark.parametrize("dtypes", [(np.float64, np.float64), (np.float32, np.float32), (np.float32, np.float64)])
@pytest.mark.parametrize("shapes", [((16, 10), (16, 10)), ((7, 16, 1, 10), (1, 16, 1, 10)), ((1, 16, 10), (5, 16, 10))])
def test_in_place_softmax_family_equals_the_plain_formulas_bit_for_bit(shapes, dtypes):
    from bpcheck import ops

    rng = np.random.default_rng(1)
    z = (5 * rng.standard_normal(shapes[0])).astype(dtypes[0])
    y = rng.random(shapes[1]).astype(dtypes[1])
    shifted = z - z.max(axis=-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    e = np.exp(shifted)
    cross_entropy = -(y * log_softmax).sum(axis=-1).mean(axis=-1)
    assert np.array_equal(ops._log_softmax(z), log_softmax)
    assert np.array_equal(ops._softmax(z), e / e.sum(axis=-1, keepdims=True))
    got = ops._cross_entropy(z, y)
    assert got.dtype == cross_entropy.dtype and np.array_equal(got, cross_entropy)
