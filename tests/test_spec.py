"""Arch / Case validation, JSON round trips and init schemes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bpcheck.spec import Arch, BpcheckError, Case, DataError, SpecError, UsageError, init_params, validate_params

from .nets import random_case

GOOD = Arch((2, 3, 1), ("tanh", "sigmoid"), "bce")


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(sizes=(4,), activations=(), loss="mse"), ["sizes=(4,)", "at least"]),
        (dict(sizes=(), activations=(), loss="mse"), ["sizes=()", "at least"]),
        (dict(sizes=(2, 0, 1), activations=("relu", "relu"), loss="mse"), ["sizes[1]=0", ">= 1"]),
        (dict(sizes=(2, -3, 1), activations=("relu", "relu"), loss="mse"), ["sizes[1]=-3", ">= 1"]),
        (dict(sizes=(2, 2.5, 1), activations=("relu", "relu"), loss="mse"), ["2.5", "integer"]),
        (dict(sizes=(4, 8, 1), activations=("relu",), loss="mse"), ["1 name", "needs 2", "one activation per layer"]),
        (dict(sizes=(2, 1), activations=("rleu",), loss="mse"), ["'rleu'", "did you mean 'relu'"]),
        (dict(sizes=(2, 1), activations=("relu",), loss="mse2"), ["'mse2'", "did you mean 'mse'"]),
        (dict(sizes=(2, 1), activations=("relu",), loss="bce"), ["'bce'", "'sigmoid'", "'relu'"]),
        (dict(sizes=(2, 2), activations=("sigmoid",), loss="cross_entropy"), ["'softmax'", "'sigmoid'"]),
        (dict(sizes="2-1", activations=("relu",), loss="mse"), ["not a sequence"]),
    ],
)
def test_every_invalid_arch_raises_one_spec_error_naming_value_and_fix(kwargs, words):
    with pytest.raises(SpecError) as info:
        Arch(**kwargs)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_arch_round_trips_and_parses():
    assert Arch.from_dict(json.loads(json.dumps(GOOD.to_dict()))) == GOOD
    assert Arch.parse("2-3-1", "tanh,sigmoid", "bce") == GOOD
    assert Arch.parse("2-3-3-1", "relu", "mse").activations == ("relu",) * 3
    assert GOOD.param_shapes() == {"W1": (2, 3), "b1": (3,), "W2": (3, 1), "b2": (1,)}
    assert GOOD.n_params == 13
    with pytest.raises(SpecError, match="'2x2x1'.*2-8-1"):
        Arch.parse("2x2x1", "relu", "mse")
    with pytest.raises(SpecError, match="missing loss"):
        Arch.from_dict({"sizes": [2, 1], "activations": ["relu"]})


def _params(**override):
    p = init_params(GOOD, np.random.default_rng(0))
    p.update(override)
    return {k: v for k, v in p.items() if v is not None}


@pytest.mark.parametrize(
    "params, words",
    [
        (_params(W2=None), ["missing W2"]),
        ({**_params(), "W3": np.zeros((1, 1))}, ["unexpected W3"]),
        (_params(W1=np.zeros((3, 2))), ["'W1'", "(3, 2)", "(2, 3)"]),
        (_params(b1=np.array([1.0, np.nan, 0.0])), ["'b1'", "nan", "finite"]),
        (_params(b1=[0.0, 0.0, 0.0]), ["'b1'", "list", "numpy array"]),
        (_params(b1=np.zeros(3, dtype=np.int64)), ["'b1'", "int64", "float"]),
        ([1, 2], ["list", "dict"]),
    ],
)
def test_every_invalid_param_dict_raises(params, words):
    with pytest.raises(SpecError) as info:
        validate_params(GOOD, params)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    "x, y, words",
    [
        (np.zeros((4, 3)), np.zeros((4, 1)), ["x has shape (4, 3)", "(batch, 2)"]),
        (np.zeros((4, 2)), np.zeros((3, 1)), ["4 rows", "3"]),
        (np.zeros((0, 2)), np.zeros((0, 1)), ["empty batch"]),
        (np.full((4, 2), np.inf), np.zeros((4, 1)), ["x has inf", "finite"]),
        (np.zeros((4, 2)), np.full((4, 1), 2.0), ["bce targets", "[0, 1]", "2.0"]),
    ],
)
def test_bad_data_raises_data_error(x, y, words):
    with pytest.raises(DataError) as info:
        Case(GOOD, _params(), x, y)
    for word in words:
        assert word in str(info.value)


def test_cross_entropy_targets_must_be_nonnegative():
    arch = Arch((2, 3), ("softmax",), "cross_entropy")
    with pytest.raises(DataError, match="nonnegative"):
        Case(arch, init_params(arch, np.random.default_rng(0)), np.zeros((2, 2)), np.array([[1, 0, -1.0], [0, 1, 0]]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_case_json_round_trip_is_bit_for_bit(dtype):
    case = random_case(np.random.default_rng(5), dtype=dtype)
    back = Case.from_dict(json.loads(json.dumps(case.to_dict())))
    assert back.arch == case.arch and back.dtype == case.dtype
    for k in case.params:
        assert back.params[k].tobytes() == case.params[k].tobytes()
    assert back.x.tobytes() == case.x.tobytes() and back.y.tobytes() == case.y.tobytes()


@pytest.mark.parametrize(
    "mangle, words",
    [
        (lambda d: {**d, "spec_version": 99}, ["spec_version=99"]),
        (lambda d: {k: v for k, v in d.items() if k != "x"}, ["missing x"]),
        (lambda d: {**d, "x": [[1, "a"]]}, ["non-numeric"]),
        (lambda d: [1], ["not an object"]),
        (lambda d: {**d, "dtype": "float16"}, ["float16", "float32"]),
    ],
)
def test_broken_case_json_raises(mangle, words):
    d = mangle(random_case(np.random.default_rng(6)).to_dict())
    with pytest.raises(BpcheckError) as info:
        Case.from_dict(d)
    for word in words:
        assert word in str(info.value)


def test_case_is_immutable_and_copies_its_inputs():
    p = _params()
    x = np.zeros((2, 2))
    case = Case(GOOD, p, x, np.zeros((2, 1)))
    x[0, 0] = 5.0
    p["W1"][0, 0] = 7.0
    assert case.x[0, 0] == 0.0 and case.params["W1"][0, 0] != 7.0
    with pytest.raises(ValueError):
        case.params["W1"][0, 0] = 1.0


def test_init_schemes_are_seeded_and_scaled():
    arch = Arch((400, 300, 10), ("relu", "identity"), "mse")
    a = init_params(arch, np.random.default_rng(1), "he")
    b = init_params(arch, np.random.default_rng(1), "he")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["W1"].std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    x = init_params(arch, np.random.default_rng(1), "xavier")
    assert x["W1"].std() == pytest.approx(np.sqrt(2 / 700), rel=0.02)
    assert not a["b1"].any()
    assert init_params(arch, np.random.default_rng(1), dtype="float32")["W1"].dtype == np.float32
    with pytest.raises(UsageError, match="'kaiming'"):
        init_params(arch, np.random.default_rng(1), "kaiming")
