"""Users' code and the command line on layered stacks: the keys a user's function exchanges, --arch-json.

A dense MLP keeps exchanging W1, b1, ..., WL, bL; any other stack exchanges its own keys (local name +
layer position), checked against arch.param_shapes(). --arch-json takes a file or the JSON itself.
"""

from __future__ import annotations

import argparse
import json
import textwrap

import numpy as np
import pytest

from bpcheck import engine
from bpcheck.byo import check_gradients
from bpcheck.byo.calls import UserGrad
from bpcheck.byo.layouts import ROW
from bpcheck.cli import main
from bpcheck.commands.check import arch_from_args
from bpcheck.spec import Arch, Case, UsageError, UserFunctionError, init_params

STACK = Arch.stack((3,), [("dense", {"n": 5}), ("activation", {"fn": "tanh"}), ("dense", {"n": 4, "activation": "softmax"})],
                   "cross_entropy")
MLP_JSON = {"sizes": [2, 3, 1], "activations": ["tanh", "sigmoid"], "loss": "mse"}
MLP_STACK_JSON = {"in_shape": [2], "loss": "mse",
                  "layers": [["dense", {"n": 3, "activation": "tanh"}], ["dense", {"n": 1, "activation": "sigmoid"}]]}
USER = """
import numpy as np

def grads(params, x, y):
    a1 = np.tanh(x @ params["W1"] + params["b1"])
    a2 = 1 / (1 + np.exp(-(a1 @ params["W2"] + params["b2"])))
    dz2 = 2.0 / a2.size * (a2 - y) * a2 * (1 - a2)
    dz1 = (dz2 @ params["W2"].T) * (1 - a1 * a1)
    return {"W1": x.T @ dz1, "b1": dz1.sum(0), "W2": a1.T @ dz2, "b2": dz2.sum(0)}
"""


def _stack_case(seed: int = 0) -> Case:
    rng = np.random.default_rng(seed)
    params = {k: v + 0.2 * rng.standard_normal(v.shape) for k, v in init_params(STACK, rng).items()}
    return Case(STACK, params, rng.standard_normal((4, 3)), rng.integers(0, 4, size=4))


def test_a_users_function_on_a_stack_receives_and_returns_the_stack_keys():
    seen = []

    def grads(params, x, y):  # written by hand here, not by bpcheck: tanh between two dense layers
        seen.append((sorted(params), x.shape, y.shape))
        z1 = x @ params["W1"] + params["b1"]
        a = np.tanh(z1)
        z3 = a @ params["W3"] + params["b3"]
        p = np.exp(z3 - z3.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        dz3 = (p - y) / len(x)
        dz1 = (dz3 @ params["W3"].T) * (1 - a * a)
        return {"W1": x.T @ dz1, "b1": dz1.sum(0), "W3": a.T @ dz3, "b3": dz3.sum(0)}

    case = _stack_case()
    call = UserGrad(grads, ROW).call(case)
    assert seen == [(["W1", "W3", "b1", "b3"], (4, 3), (4, 4))]  # one-hot rows by default
    ours = engine.gradients(case).grads
    assert list(call.grads) == list(ours) == ["W1", "b1", "W3", "b3"]
    for k in ours:
        np.testing.assert_allclose(call.grads[k], ours[k], rtol=1e-12, atol=1e-15)
    handed = []
    UserGrad(lambda p, x, y: handed.append(y) or grads(p, x, np.eye(4)[y]), ROW, labels=True).call(case)
    assert handed[0].dtype == np.int64 and np.array_equal(handed[0], case.y)  # --targets labels: the case's own labels


def test_a_stack_gradient_with_the_mlp_keys_is_named_against_the_stack_keys():
    case = _stack_case()
    good = engine.gradients(case).grads
    user = UserGrad(lambda p, x, y: None, ROW, name="grads")
    as_mlp = {"W1": good["W1"], "b1": good["b1"], "W2": good["W3"], "b2": good["b3"]}
    with pytest.raises(UserFunctionError, match=r"no 'W3', 'b3'.*unexpected 'W2'.*did you mean 'W3'.*W1, b1, W3, b3"):
        user.validate(STACK, as_mlp)
    with pytest.raises(UserFunctionError, match=r"'W3' of shape \(5, 3\), but W3 is \(5, 4\)"):
        user.validate(STACK, {**good, "W3": good["W3"][:, :3]})


def test_the_column_layout_refuses_a_stack_before_the_users_function_runs():
    calls = []
    with pytest.raises(UsageError, match="column layout.*row layout"):
        check_gradients(lambda p, x, y: calls.append(1), STACK, cases=[_stack_case()], layout="column", references="fd",
                        in_process=True)
    assert calls == []


@pytest.fixture
def user(tmp_path):
    path = tmp_path / "user_stack.py"
    path.write_text(textwrap.dedent(USER))
    return str(path)


@pytest.mark.parametrize("given", [MLP_JSON, MLP_STACK_JSON], ids=["v1 form", "stack form"])
def test_arch_json_inline_checks_an_mlp_end_to_end(user, capsys, given):
    code = main(["check", f"{user}:grads", "--arch-json", json.dumps(given), "--cases", "2", "--refs", "fd", "--in-process"])
    out = capsys.readouterr().out
    assert code == 0 and "references fd" in out and "2-3-1 tanh,sigmoid mse" in out


def test_arch_json_reads_any_stack_from_a_file_or_inline(tmp_path):
    text = json.dumps(STACK.to_dict())
    (tmp_path / "stack.json").write_text(text)
    for value in (text, str(tmp_path / "stack.json"), "  " + text):
        args = argparse.Namespace(arch_json=value, arch=None, activations=None, loss=None, losses=None)
        assert arch_from_args(args) == STACK


@pytest.mark.parametrize("value, words", [
    ('{"in_shape": [3], "layers": [["dense", {"n": 0}]], "loss": "mse"}', ["layer 1 (dense)", "n=0"]),
    ('{"in_shape": [3], "layers": [["dens", {"n": 2}]], "loss": "mse"}', ["'dens'", "did you mean 'dense'"]),
    ('{"in_shape": [3], "layers": [["dense", {"n": 2}]]}', ["missing loss", "in_shape, layers and loss"]),
    ('{"in_shape": [3], "layers": [["dense", {"n": 2}]], "loss": "mse", "extra": 1}', ["unknown key 'extra'"]),
    ('{"in_shape": [3], "layers": [', ["is not JSON", '{"in_shape"']),
    ("no/such/arch.json", ["cannot read --arch-json 'no/such/arch.json'", "existing file"]),
])
def test_a_bad_arch_json_is_one_line_and_exit_2(user, capsys, value, words):
    code = main(["check", f"{user}:grads", "--arch-json", value, "--in-process"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    for word in words:
        assert word in err, err


def test_replay_of_a_spec_version_1_file_written_before_layers(capsys):
    from pathlib import Path

    path = Path(__file__).parent / "data" / "case_v1_bce_f64.json"
    code = main(["replay", str(path), "--refs", "fd"])
    out = capsys.readouterr().out
    assert code == 0 and "verdict: ok AGREE" in out and "2-3-1 tanh,sigmoid bce" in out


def test_replay_of_a_spec_version_2_report_case_whose_gelu_was_the_tanh_form(capsys):
    from pathlib import Path

    path = Path(__file__).parent / "data" / "case_v2_gelu_check_result.json"
    code = main(["replay", str(path), "--refs", "fd,torch,jax"])
    out = capsys.readouterr().out
    # the engine replays the old file as it was meant, tanh form, and agrees with the references' gelu_tanh
    assert code == 0 and "3-4-2 gelu_tanh,identity mse" in out and "ok AGREE" in out, out
