"""The layered data model (issue 15): stacks, their validation, spec_version 1-3 files and the generic engine.

The engine's MLP numbers are checked against tests/engine_v1.py, a frozen copy of the MLP-only engine
bpcheck had before the layers (e684ffb): both run on the same drawn cases, nothing is hard-coded.
"""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from bpcheck import engine
from bpcheck.ops import LOSS_RULES
from bpcheck.spec import SPEC_VERSION, Arch, Case, DataError, SpecError, init_params, migrate, migrate_v1, split_key

from . import engine_v1
from .nets import random_case

DATA = Path(__file__).parent / "data"
V1_FILES = sorted(DATA.glob("case_v1_*.json"))
DENSE_TANH_SOFTMAX = [("dense", {"n": 4, "activation": "tanh"}), ("dense", {"n": 2, "activation": "softmax"})]


def test_the_mlp_shorthand_is_the_stack_of_dense_layers():
    short = Arch((3, 4, 2), ("tanh", "softmax"), "cross_entropy", 0.5)
    long = Arch.stack((3,), DENSE_TANH_SOFTMAX, "cross_entropy", weight_decay=0.5)
    assert short == long and hash(short) == hash(long) and long.is_mlp
    assert long.sizes == (3, 4, 2) and long.activations == ("tanh", "softmax") and long.n_layers == 2
    assert long.label() == "3-4-2 tanh,softmax cross_entropy + weight_decay 0.5"
    assert long.layers == (("dense", {"n": 4, "activation": "tanh"}), ("dense", {"n": 2, "activation": "softmax"}))
    assert long.in_shape == (3,) and long.shapes == ((3,), (4,), (2,))
    assert list(long.param_shapes()) == ["W1", "b1", "W2", "b2"]
    assert Arch.stack(3, [("dense", {"n": 1})], "mse").layers[0][1]["activation"] == "identity"  # defaults filled
    assert pickle.loads(pickle.dumps(long)) == long and copy.deepcopy(long) == long
    with pytest.raises(AttributeError, match="immutable"):
        long.loss = "mse"  # type: ignore[misc]


def test_a_stack_that_is_not_an_mlp_keys_params_by_position_and_refuses_the_mlp_words():
    arch = Arch.stack((3,), [("dense", {"n": 4}), ("activation", {"fn": "relu"}), ("dense", {"n": 2, "activation": "softmax"})],
                      "cross_entropy")
    assert not arch.is_mlp and list(arch.param_shapes()) == ["W1", "b1", "W3", "b3"]
    assert arch.param_shapes()["W3"] == (4, 2) and arch.n_params == 3 * 4 + 4 + 4 * 2 + 2
    assert split_key("W3") == ("W", 3) and split_key("gamma12") == ("gamma", 12)
    for what in ("sizes", "activations", "n_layers"):
        with pytest.raises(SpecError, match=f"arch.{what} is defined for dense MLPs only.*arch.layers"):
            getattr(arch, what)
    assert Arch.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    assert arch.label() == "3 dense(n=4,activation=identity)-activation(fn=relu)-dense(n=2,activation=softmax) cross_entropy"
    with pytest.raises(SpecError, match="'W0'.*'gamma3'"):
        split_key("W0")


@pytest.mark.parametrize("in_shape, layers, loss, words", [
    ((3,), [("dense", {"n": 4}), ("dense", {"n": 0})], "mse", ["layer 2 (dense)", "n=0", "{'n': 8}"]),
    ((3,), [("dense", {"n": 4}), ("dnese", {"n": 1})], "mse", ["layer 2", "'dnese'", "did you mean 'dense'"]),
    ((3,), [("dense", {"n": 4, "activation": "rleu"})], "mse", ["layer 1 (dense)", "'rleu'", "did you mean 'relu'"]),
    ((3,), [("dense", {"n": 4, "widht": 2})], "mse", ["layer 1 (dense)", "'widht'"]),
    ((3,), ["dense"], "mse", ["layer 1", "(kind, config) pair"]),
    ((3,), [("dense", [4])], "mse", ["layer 1 (dense)", "not an object"]),
    ((3,), [], "mse", ["non-empty list"]),
    ((1, 4, 4), [("dense", {"n": 2})], "mse", ["layer 1 (dense)", "(1, 4, 4)", "flatten"]),
    ((1, 4, 4), [("activation", {"fn": "tanh"})], "mse", ["ends in per-sample shape (1, 4, 4)", "flatten"]),
    ((0, 4), [("dense", {"n": 2})], "mse", ["in_shape=(0, 4)", "(1, 8, 8)"]),
    ((3,), [("dense", {"n": 2}), ("activation", {"fn": "softmax"})], "cross_entropy",
     ["'cross_entropy'", "last layer (2) is activation", "dense with activation 'softmax'"]),
    ((3,), [("dense", {"n": 2})], "hinge", ["'hinge'", "mse"]),
])
def test_a_bad_stack_is_one_spec_error_naming_the_position_the_value_and_the_fix(in_shape, layers, loss, words):
    with pytest.raises(SpecError) as info:
        Arch.stack(in_shape, layers, loss)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("path", V1_FILES, ids=lambda p: p.name)
def test_a_spec_version_1_file_written_before_layers_loads_as_the_same_case(path):
    raw = json.loads(path.read_text())
    assert raw["spec_version"] == 1 and "sizes" in raw["arch"]
    case = Case.from_dict(raw)
    v1 = raw["arch"]
    assert case.arch == Arch(tuple(v1["sizes"]), tuple(v1["activations"]), v1["loss"], v1.get("weight_decay", 0.0))
    dt = np.dtype(raw["dtype"])
    for k, v in raw["params"].items():
        assert case.params[k].tobytes() == np.array(v, dtype=np.float64).astype(dt).tobytes()
    assert case.x.tobytes() == np.array(raw["x"]).astype(dt).tobytes()
    assert case.y.tobytes() == np.array(raw["y"]).astype(dt).tobytes()
    assert migrate_v1(raw)["spec_version"] == 2
    migrated = migrate(raw)
    assert migrated["spec_version"] == SPEC_VERSION and migrated["arch"] == case.arch.to_dict() and raw["spec_version"] == 1
    assert case.to_dict() == {**migrated, "regime": case.regime}
    _same_gradients(engine.gradients(case), engine_v1.gradients(case))


def _arrays_unchanged(case: Case, raw: dict) -> None:
    dt = np.dtype(raw["dtype"])
    for k, v in raw["params"].items():
        assert case.params[k].tobytes() == np.array(v, dtype=np.float64).astype(dt).tobytes()
    assert case.x.tobytes() == np.array(raw["x"]).astype(dt).tobytes()
    assert case.y.tobytes() == np.array(raw["y"]).astype(dt).tobytes()


def test_a_spec_version_2_file_whose_gelu_was_the_tanh_form_loads_as_gelu_tanh():
    # Written by bpcheck before spec_version 3 (`bpcheck check tests/corpus/gelu_erf.py:grads --arch 3-4-2
    # --activations gelu,identity --loss mse --cases 4 --seed 7 --report DIR`, its cases/c882f4e44fa8.json; and a
    # stack through Case.to_dict): 'gelu' meant the tanh approximation then, so it must load as gelu_tanh.
    result = json.loads((DATA / "case_v2_gelu_check_result.json").read_text())
    raw = result["case"]
    assert raw["spec_version"] == 2 and raw["arch"]["layers"][0] == ["dense", {"n": 4, "activation": "gelu"}]
    case = Case.from_dict(raw)
    assert case.arch == Arch((3, 4, 2), ("gelu_tanh", "identity"), "mse")
    _arrays_unchanged(case, raw)
    assert case.to_dict() == {**migrate(raw), "regime": case.regime} and case.to_dict()["spec_version"] == SPEC_VERSION
    stack_raw = json.loads((DATA / "case_v2_gelu_stack.json").read_text())
    stack = Case.from_dict(stack_raw)
    assert [c.get("activation", c.get("fn")) for _, c in stack.arch.layers] == ["gelu_tanh", None, "gelu_tanh", "identity"]
    _arrays_unchanged(stack, stack_raw)
    # the numbers are the tanh form's: the engine's loss on the migrated case is the tanh-form net's, written out here
    h = case.x @ case.params["W1"] + case.params["b1"]
    h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3)))
    want = np.mean((h @ case.params["W2"] + case.params["b2"] - case.y) ** 2)
    assert engine.loss(case.arch, case.params, case.x, case.y) == pytest.approx(want, rel=1e-14)
    assert engine.loss(Arch((3, 4, 2), ("gelu", "identity"), "mse"), case.params, case.x, case.y) != pytest.approx(want, rel=1e-6)


def test_a_spec_version_1_file_with_gelu_loads_as_gelu_tanh_and_a_new_file_keeps_gelu():
    from .test_no_false_alarms import GELU_SATURATED_CASES  # cases written by bpcheck's sweep in spec_version 1

    raw = next(iter(GELU_SATURATED_CASES.values()))
    assert raw["spec_version"] == 1 and "gelu" in raw["arch"]["activations"]
    case = Case.from_dict(raw)
    assert case.arch.activations == tuple("gelu_tanh" if a == "gelu" else a for a in raw["arch"]["activations"])
    _arrays_unchanged(case, raw)
    arch = Arch((3, 4, 2), ("gelu", "identity"), "mse")
    exact = Case(arch, init_params(arch, np.random.default_rng(0)), np.ones((2, 3)), np.zeros((2, 2)))
    assert Case.from_dict(json.loads(json.dumps(exact.to_dict()))).arch.activations == ("gelu", "identity")


def test_a_broken_spec_version_1_arch_still_names_its_value():
    raw = json.loads(V1_FILES[0].read_text())
    raw["arch"]["sizes"][1] = 0
    with pytest.raises(SpecError, match=r"sizes\[1\]=0"):
        Case.from_dict(raw)


def _labelled_case(dtype=np.float64, seed=3) -> Case:
    rng = np.random.default_rng(seed)
    arch = Arch.stack((3,), [("dense", {"n": 5}), ("activation", {"fn": "tanh"}), ("dense", {"n": 4, "activation": "softmax"})],
                      "cross_entropy", 0.1)
    params = {k: v + 0.2 * rng.standard_normal(v.shape) for k, v in init_params(arch, rng).items()}
    return Case(arch, params, rng.standard_normal((6, 3)), rng.integers(0, 4, size=6)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_spec_version_2_case_round_trips_bit_for_bit(dtype):
    for case in (_labelled_case(dtype), random_case(np.random.default_rng(11), dtype=dtype)):
        text = json.dumps(case.to_dict())
        back = Case.from_dict(json.loads(text))
        assert json.dumps(back.to_dict()) == text and back.arch == case.arch and back.dtype == case.dtype
        for k in case.params:
            assert back.params[k].tobytes() == case.params[k].tobytes()
        assert back.x.tobytes() == case.x.tobytes()
        assert back.y.dtype == case.y.dtype and back.y.tobytes() == case.y.tobytes()


def test_integer_labels_stay_integers_and_the_loss_reads_their_one_hot_rows():
    case = _labelled_case()
    assert case.y.dtype == np.int64 and case.y.shape == (6,) and case.labels
    assert case.targets.dtype == np.float64 and case.targets.shape == (6, 4)
    assert np.array_equal(case.targets.argmax(axis=1), case.y) and np.all(case.targets.sum(axis=1) == 1)
    assert case.astype(np.float32).y.dtype == np.int64 and case.astype(np.float32).targets.dtype == np.float32
    rows = Case(case.arch, case.params, case.x, case.targets)
    assert not rows.labels and rows.targets is rows.y
    _same_gradients(engine.gradients(case), engine.gradients(rows))
    assert engine.loss(case.arch, case.params, case.x, case.y) == engine.gradients(rows).loss


@pytest.mark.parametrize("y, words", [
    (np.array([0, 1, 4, 0, 1, 2]), ["labels", "[0, 3]", "4"]),
    (np.array([0, 1, -1, 0, 1, 2]), ["labels", "-1"]),
    (np.array([0.0, 1, 2, 0, 1, 2]), ["y has shape (6,)", "(batch, 4)", "integer class labels"]),
    (np.array([0, 1, 2]), ["6 rows", "3"]),
])
def test_bad_labels_are_one_data_error(y, words):
    case = _labelled_case()
    with pytest.raises(DataError) as info:
        Case(case.arch, case.params, case.x, y)
    for word in words:
        assert word in str(info.value)


def test_labels_are_for_cross_entropy_only():
    arch = Arch((3, 2), ("identity",), "mse")
    with pytest.raises(DataError, match=r"y has shape \(2,\).*\(batch, 2\)"):
        Case(arch, init_params(arch, np.random.default_rng(0)), np.zeros((2, 3)), np.array([0, 1]))


def _same_gradients(new, old):
    """Bit for bit: the loss, every param gradient, dL/dx and the MLP trace dz/da."""
    assert new.loss == old.loss
    assert list(new.grads) == list(old.grads)
    for k in old.grads:
        assert new.grads[k].dtype == old.grads[k].dtype and new.grads[k].tobytes() == old.grads[k].tobytes(), k
    for a, b in ((new.dx, old.dx), *zip(new.dz or (), old.dz or ()), *zip(new.da or (), old.da or ())):
        assert (a is None and b is None) or a.tobytes() == b.tobytes()
    assert len(new.dz or ()) == len(old.dz or ()) and len(new.da or ()) == len(old.da or ())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_generic_engine_is_the_mlp_engine_bit_for_bit(dtype):
    rng = np.random.default_rng(2026)
    for _ in range(150):
        case = random_case(rng, dtype=dtype)
        if rng.random() < 0.3:
            case = Case(case.arch.with_weight_decay(float(rng.random())), case.params, case.x, case.y)
        new, old = engine.gradients(case), engine_v1.gradients(case)
        _same_gradients(new, old)
        assert new.dout is not None and len(new.dout) == len(case.arch.layers)
        assert all(a is b for a, b in zip(new.dout, new.da))  # dout[l-1] is da[l-1] on the hidden layers
        fused = LOSS_RULES[case.arch.loss].from_logits
        assert (new.dout[-1] is None) == fused
        _, caches = engine.forward(case.arch, case.params, case.x)
        _, old_caches = engine_v1.forward(case.arch, case.params, case.x)
        assert all(c.a_prev.tobytes() == o.a_prev.tobytes() and c.z.tobytes() == o.z.tobytes()
                   and c.a.tobytes() == o.a.tobytes() for c, o in zip(caches, old_caches))
        assert engine.loss_of(case.arch, caches, case.y, case.params) == engine_v1.loss_of(case.arch, old_caches, case.y,
                                                                                            case.params)
        kw = dict(input_grad=False, loss_rule=LOSS_RULES["mse"] if not fused else None)
        _same_gradients(engine.backward(case.arch, case.params, caches, case.y, **kw),
                        engine_v1.backward(case.arch, case.params, old_caches, case.y, **kw))


def test_training_is_the_mlp_engine_bit_for_bit():
    case = random_case(np.random.default_rng(9), Arch((2, 3, 1), ("tanh", "sigmoid"), "bce", 0.01), batch=8)
    new = engine.train(case.arch, dict(case.params), case.x, case.y, lr=0.5, epochs=30)
    old = engine_v1.train(case.arch, dict(case.params), case.x, case.y, lr=0.5, epochs=30)
    assert new[1] == old[1]
    assert all(new[0][k].tobytes() == old[0][k].tobytes() for k in old[0])


def test_a_dense_and_activation_stack_computes_what_the_fused_mlp_computes():
    mlp = random_case(np.random.default_rng(4), Arch((3, 5, 2), ("tanh", "softmax"), "cross_entropy"), batch=7)
    arch = Arch.stack((3,), [("dense", {"n": 5}), ("activation", {"fn": "tanh"}), ("dense", {"n": 2, "activation": "softmax"})],
                      "cross_entropy")
    rename = {"W1": "W1", "b1": "b1", "W2": "W3", "b2": "b3"}
    stacked = Case(arch, {rename[k]: v for k, v in mlp.params.items()}, mlp.x, mlp.y)
    a, b = engine.gradients(mlp), engine.gradients(stacked)
    assert a.loss == b.loss and b.dz is None and b.da is None and len(b.dout) == 3
    for k, v in a.grads.items():
        np.testing.assert_allclose(b.grads[rename[k]], v, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(b.dx, a.dx, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(b.dout[1], a.da[0], rtol=1e-14, atol=1e-15)  # dL/d(tanh output) = dL/da_1


CNN = [("conv2d", {"out_channels": 3, "kernel": 3, "padding": 1}), ("activation", {"fn": "relu"}),
       ("maxpool2d", {"kernel": 2}), ("conv2d", {"out_channels": 2, "kernel": [2, 3], "stride": 1}),
       ("flatten", {}), ("dense", {"n": 4, "activation": "softmax"})]


@pytest.mark.parametrize("seed", range(5))
def test_the_engine_on_a_conv_maxpool_flatten_dense_stack_matches_torch_autograd(seed):
    torch = pytest.importorskip("torch", reason="torch is the independent judge here")
    F = torch.nn.functional
    arch = Arch.stack((2, 6, 7), CNN, "cross_entropy", weight_decay=0.05)
    assert arch.shapes == ((2, 6, 7), (3, 6, 7), (3, 6, 7), (3, 3, 3), (2, 2, 1), (4,), (4,))
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(v.shape) * 0.5 for k, v in init_params(arch, rng).items()}
    case = Case(arch, params, rng.standard_normal((5, 2, 6, 7)), rng.integers(0, 4, size=5))
    ours = engine.gradients(case)

    # The same net written directly in torch (nothing of bpcheck's layers), differentiated by autograd.
    t = {k: torch.tensor(v, requires_grad=True) for k, v in case.params.items()}
    x = torch.tensor(case.x, requires_grad=True)
    h = F.max_pool2d(torch.relu(F.conv2d(x, t["W1"], t["b1"], padding=1)), 2)
    h = F.conv2d(h, t["W4"], t["b4"]).flatten(1)
    loss = F.cross_entropy(h @ t["W6"] + t["b6"], torch.tensor(case.y))
    loss = loss + 0.05 / 2 * sum((t[k] ** 2).sum() for k in ("W1", "W4", "W6"))
    loss.backward()
    assert abs(ours.loss - loss.item()) <= 1e-12 * max(1.0, abs(loss.item()))
    assert list(ours.grads) == ["W1", "b1", "W4", "b4", "W6", "b6"] == list(arch.param_shapes())
    for k, v in t.items():
        np.testing.assert_allclose(ours.grads[k], v.grad.numpy(), rtol=1e-12, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(ours.dx, x.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert ours.dz is None and [d is None for d in ours.dout] == [False] * 5 + [True]  # the output is fused
    assert [d.shape[1:] for d in ours.dout[:-1]] == list(arch.shapes[1:-1])


def test_the_spec_modules_never_import_the_layers_they_validate_with():
    """vocab <- spec (arch, case) <- ops <- layers <- engine: the kinds import spec's errors and names, and the
    Arch reads the registry dict (vocab.LAYERS) that bpcheck.layers fills, so no import goes back up."""
    import ast

    import bpcheck

    root = Path(bpcheck.__file__).parent
    for name in ("vocab", "arch", "case", "spec"):
        tree = ast.parse((root / f"{name}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        assert imported <= {"vocab", "arch", "case", "numpy", "__future__", "math", "re", "difflib",
                            "collections.abc", "dataclasses", "typing"}, (name, imported)
    from bpcheck.layers import LAYERS
    from bpcheck.vocab import LAYERS as SPEC_LAYERS

    assert LAYERS is SPEC_LAYERS and {"dense", "activation", "conv2d", "maxpool2d", "flatten"} <= set(LAYERS)
