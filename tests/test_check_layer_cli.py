"""check-layer as a user runs it: the command line (exit codes, one-line errors, the seed), the reference-free
checks each planted here on a small inline layer, --layer none, hostile code, and the pytest fixture.

The acceptance on course code (correct layers, planted bugs) is tests/test_check_layer.py, on the independent
corpus; the layers here are small on purpose, each with one fault the check under test must name.
"""

from __future__ import annotations

import textwrap

import pytest

from bpcheck.cli import main
from bpcheck.layercheck import check_layer

LAYER = textwrap.dedent('''
    import os
    import time

    import numpy as np

    MEMO = {}


    def affine_forward(x, w, b):
        return x.reshape(len(x), -1) @ w + b, (x, w)


    def affine_backward(dout, cache):
        x, w = cache
        return (dout @ w.T).reshape(x.shape), x.reshape(len(x), -1).T @ dout, dout.sum(axis=0)


    def affine_backward_db_mean(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        return dx, dw, dout.mean(axis=0)


    def affine_backward_stateful(dout, cache):       # a cache keyed on the shape: other arrays, same answer
        key = tuple(cache[0].shape)
        if key not in MEMO:
            MEMO[key] = affine_backward(dout, cache)
        return MEMO[key]


    def affine_backward_mutates(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        dout *= 2.0                                   # the caller's dout changed in place
        return dx, dw, db


    def affine_backward_float32(dout, cache):
        return tuple(g.astype(np.float32) for g in affine_backward(dout, cache))


    def affine_backward_noisy(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        return dx, dw + 1e-3 * np.random.standard_normal(dw.shape), db


    def affine_backward_two(dout, cache):
        return affine_backward(dout, cache)[:2]


    def affine_backward_raises(dout, cache):
        return 1 / 0


    def affine_backward_exits(dout, cache):
        os._exit(3)


    def affine_backward_hangs(dout, cache):
        time.sleep(600)


    def affine_backward_raises_for_batch_3(dout, cache):
        if len(dout) >= 3:
            raise IndexError("row 3 of a buffer sized for 2")
        return affine_backward(dout, cache)


    def affine_forward_no_cache(x, w, b):
        return x.reshape(len(x), -1) @ w + b


    def scale_forward(x, w):                          # no registry kind: out = x * w, w shared by the batch
        return x * w, (x, w)


    def scale_backward(dout, cache):
        x, w = cache
        return dout * w, (dout * x).sum(axis=0)


    def scale_backward_bad(dout, cache):
        x, w = cache
        return dout * w, (dout * x).mean(axis=0)
''')


@pytest.fixture(scope="module")
def layer_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("user") / "my_layers.py"
    path.write_text(LAYER)
    return str(path)


def cli(capsys, *argv):
    code = main(["check-layer", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_correct_layer_exits_0_and_prints_the_seed(capsys, layer_file):
    code, out, err = cli(capsys, f"{layer_file}:affine_forward", f"{layer_file}:affine_backward", "--layer", "affine",
                         "--cases", "4", "--refs", "fd", "--seed", "5")
    assert code == 0, out + err
    assert "seed 5" in out and "ok: " in out and "linear in dout" in out


def test_wrong_gradient_exits_1_naming_the_argument(capsys, layer_file):
    code, out, _ = cli(capsys, f"{layer_file}:affine_forward", f"{layer_file}:affine_backward_db_mean", "--layer",
                       "affine", "--cases", "6", "--refs", "fd", "--no-shrink")
    assert code == 1
    assert "db of affine differs from fd" in out and "batch mean" in out


@pytest.mark.parametrize("argv, says", [
    (["--layer", "conv"], "did you mean 'conv2d'"),
    (["--layer", "affine", "--config", "{bad"], "--config '{bad' is not JSON"),
    (["--layer", "affine", "--config", '{"stride": 1}'], "--layer affine takes no config"),
    (["--layer", "none"], "--layer none needs --shapes"),
    (["--layer", "affine", "--refs", "fdd"], "'fdd' (did you mean 'fd'?) is unknown"),
    (["--layer", "none", "--shapes", '{"x": [2]}', "--refs", "torch"], "is checked against fd alone"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, layer_file, argv, says):
    code, out, err = cli(capsys, f"{layer_file}:affine_forward", f"{layer_file}:affine_backward", *argv, "--cases", "2")
    assert code == 2 and says in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and not out


@pytest.mark.parametrize("backward, says", [
    ("affine_backward_raises", "raised ZeroDivisionError"),
    ("affine_backward_exits", "ended bpcheck's worker process (exit code 3"),
    ("affine_backward_two", "returned 2 gradient(s), but the forward takes 3 array(s) (x, w, b)"),
    ("no_such_function", "has no function 'no_such_function'"),
])
def test_user_code_that_cannot_be_checked_exits_2(capsys, layer_file, backward, says):
    code, out, err = cli(capsys, f"{layer_file}:affine_forward", f"{layer_file}:{backward}", "--layer", "affine",
                         "--cases", "2", "--refs", "fd")
    assert code == 2 and says in err, err
    assert "ok" not in out


def test_a_raise_on_some_cases_fails_them_and_names_the_function(capsys, layer_file):
    code, out, err = cli(capsys, f"{layer_file}:affine_forward", f"{layer_file}:affine_backward_raises_for_batch_3",
                         "--layer", "affine", "--cases", "12", "--refs", "fd", "--no-shrink")
    assert code == 1, out + err
    assert "ERROR" in out and "affine_backward_raises_for_batch_3 raised IndexError: row 3" in out
    assert "my_layers.py\", line" in out  # the user's frame, not bpcheck's


def test_a_hang_is_killed_and_never_a_pass(capsys, layer_file):
    code, _, err = cli(capsys, f"{layer_file}:affine_forward", f"{layer_file}:affine_backward_hangs", "--layer",
                       "affine", "--cases", "2", "--refs", "fd", "--timeout", "1")
    assert code == 2 and "did not return within --timeout" in err


def test_forward_without_cache_is_named(capsys, layer_file):
    code, _, err = cli(capsys, f"{layer_file}:affine_forward_no_cache", f"{layer_file}:affine_backward", "--layer",
                       "affine", "--cases", "2", "--refs", "fd")
    assert code == 2 and "not (out, cache)" in err


@pytest.mark.parametrize("backward, check, says", [
    ("affine_backward_stateful", "stale", "the same gradients, bit for bit, for other arrays"),
    ("affine_backward_mutates", "mutation", "modified dout #0 in place"),
    ("affine_backward_float32", "dtype", "is float32 for float64 arrays"),
    ("affine_backward_noisy", "twice", "when called twice on the same arrays"),
])
def test_reference_free_checks_name_the_fault(layer_file, backward, check, says):
    result = check_layer(f"{layer_file}:affine_forward", f"{layer_file}:{backward}", layer="affine", cases=3,
                         references="fd", shrink=False)
    assert not result.ok
    found = [f for f in result.findings if f.check == check]
    assert found and says in found[0].message, str(result)


def test_layer_of_no_known_kind_against_fd_of_its_own_forward(layer_file):
    shapes = {"x": [3, 4], "w": [4]}
    good = check_layer(f"{layer_file}:scale_forward", f"{layer_file}:scale_backward", layer="none", shapes=shapes,
                       cases=4)
    assert good.ok and good.references == ("fd",), str(good)
    bad = check_layer(f"{layer_file}:scale_forward", f"{layer_file}:scale_backward_bad", layer="none", shapes=shapes,
                      cases=4, shrink=False)
    assert not bad.ok and bad.wrong_args == ("w",), str(bad)


def test_in_process_gives_the_same_result(layer_file):
    kw = dict(layer="affine", cases=4, references="fd", seed=2, shrink=False)
    a = check_layer(f"{layer_file}:affine_forward", f"{layer_file}:affine_backward_db_mean", **kw)
    b = check_layer(f"{layer_file}:affine_forward", f"{layer_file}:affine_backward_db_mean", in_process=True, **kw)
    assert str(a) == str(b) and not a.ok


FIXTURE_TEST = LAYER + textwrap.dedent('''

    def test_good(layercheck):
        layercheck(affine_forward, affine_backward, layer="affine", cases=3, references="fd")


    def test_bad(layercheck):
        layercheck(affine_forward, affine_backward_db_mean, layer="affine", cases=3, references="fd", shrink=False)
''')


def test_pytest_fixture_asserts(pytester):
    pytester.makepyfile(FIXTURE_TEST)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1, failed=1)
    assert any("db of affine differs from fd" in line for line in result.outlines)


def test_torch_function_checked_in_its_own_float32():
    torch = pytest.importorskip("torch")

    class HalfInFloat32(torch.autograd.Function):
        """tanh whose backward, given float32, computes in float16: right in float64, too coarse in float32."""

        @staticmethod
        def forward(ctx, x):
            y = torch.tanh(x)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            work = torch.float16 if g.dtype == torch.float32 else g.dtype
            return (g.to(work) * (1 - y.to(work) ** 2)).to(g.dtype)

    result = check_layer(HalfInFloat32, layer="tanh", cases=4, references="fd", shrink=False, in_process=True)
    assert not result.ok and [f.check for f in result.findings] == ["float32"], str(result)
    assert "dx of tanh in float32" in result.findings[0].message
