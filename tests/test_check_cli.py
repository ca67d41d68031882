"""`bpcheck check file.py:function`: exit 0 / 1 / 2, and every bad input as one line (plus, for a raising
function, its last frame), never a traceback of bpcheck's."""

from __future__ import annotations

import json
import textwrap

import pytest

from bpcheck.cli import main

ARCH = ["--arch", "2-3-1", "--activations", "tanh,sigmoid", "--loss", "mse"]
GOOD = """
import numpy as np

def grads(params, x, y):
    a1 = np.tanh(x @ params["W1"] + params["b1"])
    a2 = 1 / (1 + np.exp(-(a1 @ params["W2"] + params["b2"])))
    dz2 = 2.0 / a2.size * (a2 - y) * a2 * (1 - a2)
    dz1 = (dz2 @ params["W2"].T) * (1 - a1 * a1)
    return {"W1": x.T @ dz1, "b1": dz1.sum(0), "W2": a1.T @ dz2, "b2": dz2.sum(0)}

def summed(params, x, y):
    return {k: v * y.size for k, v in grads(params, x, y).items()}

def sum_loss(params, x, y):
    a1 = np.tanh(x @ params["W1"] + params["b1"])
    a2 = 1 / (1 + np.exp(-(a1 @ params["W2"] + params["b2"])))
    return float(np.sum((a2 - y) ** 2))

def with_nan(params, x, y):
    g = grads(params, x, y)
    g["W1"] = g["W1"] * np.nan
    return g

def raises(params, x, y):
    return {"W1": helper(params)}

def helper(params):
    return params["W1"] / undefined_thing

def not_a_dict(params, x, y):
    return list(grads(params, x, y).values())

def wrong_keys(params, x, y):
    g = grads(params, x, y)
    del g["W2"]
    return g

def wrong_shapes(params, x, y):
    g = grads(params, x, y)
    g["b1"] = g["b1"].reshape(1, -1)
    return g

def integers(params, x, y):
    return {k: v.astype(int) for k, v in grads(params, x, y).items()}

def hangs(params, x, y):
    while True:
        pass
"""


@pytest.fixture
def user(tmp_path):
    path = tmp_path / "user_net.py"
    path.write_text(textwrap.dedent(GOOD))
    return str(path)


def run(capsys, *argv):
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_correct_function_exits_0(user, capsys):
    code, out, err = run(capsys, f"{user}:grads", *ARCH, "--cases", "5")
    assert code == 0, out + err
    assert "ok: 5 AGREE" in out and "checks passed" in out


def test_disagreement_exits_1_with_the_diagnosis(user, capsys):
    code, out, _ = run(capsys, f"{user}:summed", *ARCH, "--cases", "3", "--dtype", "float64")
    assert code == 1
    assert "FAIL" in out and "sum of squared errors" in out


def test_users_own_loss_makes_it_a_convention_exit_0(user, capsys):
    code, out, _ = run(capsys, f"{user}:summed", *ARCH, "--cases", "3", "--loss-fn", f"{user}:sum_loss")
    assert code == 0
    assert "CONVENTION" in out and "sum of squared errors" in out


def test_nan_is_a_failed_check_exit_1(user, capsys):
    code, out, _ = run(capsys, f"{user}:with_nan", *ARCH, "--cases", "2")
    assert code == 1 and "finite values" in out and "dW1 with nan at (0, 0)" in out


def test_arch_json(user, tmp_path, capsys):
    spec = tmp_path / "arch.json"
    spec.write_text(json.dumps({"sizes": [2, 3, 1], "activations": ["tanh", "sigmoid"], "loss": "mse"}))
    code, out, _ = run(capsys, f"{user}:grads", "--arch-json", str(spec), "--cases", "2", "--refs", "fd")
    assert code == 0 and "references fd" in out


BAD = [
    ("missing file", lambda u, t: ["nowhere/none.py:grads", *ARCH], "does not exist"),
    ("missing function", lambda u, t: [f"{u}:grad", *ARCH], "has no function 'grad' (did you mean 'grads'?)"),
    ("non-dict", lambda u, t: [f"{u}:not_a_dict", *ARCH], "returned list, not a dict"),
    ("wrong keys", lambda u, t: [f"{u}:wrong_keys", *ARCH], "returned no 'W2'"),
    ("wrong shapes", lambda u, t: [f"{u}:wrong_shapes", *ARCH], "'b1' of shape (1, 3), but b1 is (3,)"),
    ("non-float", lambda u, t: [f"{u}:integers", *ARCH], "dtype int64"),
    ("hangs", lambda u, t: [f"{u}:hangs", *ARCH, "--timeout", "0.5"], "did not return within --timeout 0.5 s"),
    ("malformed arch", lambda u, t: [f"{u}:grads", "--arch", "2-x-1", "--activations", "tanh", "--loss", "mse"],
     "is not sizes joined by '-'"),
    ("half an arch", lambda u, t: [f"{u}:grads", "--arch", "2-3-1"], "--activations and --loss missing"),
    ("unknown loss", lambda u, t: [f"{u}:grads", "--arch", "2-3-1", "--activations", "tanh", "--loss", "mes"],
     "did you mean 'mse'"),
    ("broken arch json", lambda u, t: [f"{u}:grads", "--arch-json", _write(t, "{sizes: [2"), ], "is not JSON"),
    ("arch json missing keys", lambda u, t: [f"{u}:grads", "--arch-json", _write(t, '{"sizes": [2, 1]}')],
     "missing activations, loss"),
    ("no arch for a 3-argument function", lambda u, t: [f"{u}:grads"], "arch is missing"),
]


def _write(tmp_path, text):
    path = tmp_path / "arch.json"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("label, argv, expected", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_exit_2(user, tmp_path, capsys, label, argv, expected):
    code, out, err = run(capsys, *argv(user, tmp_path), "--cases", "2")
    assert code == 2, out + err
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("bpcheck check: error: ") and expected in err, err


def test_raising_function_shows_its_last_frame_only(user, capsys):
    code, out, err = run(capsys, f"{user}:raises", *ARCH, "--cases", "2")
    assert code == 2 and "Traceback" not in err + out
    first, frame = err.strip().splitlines()
    assert first == "bpcheck check: error: raises raised NameError: name 'undefined_thing' is not defined"
    assert "user_net.py" in frame and "in helper" in frame and "undefined_thing" in frame


def test_report_writes_the_report_commands_files(user, tmp_path, capsys):
    out_dir = tmp_path / "rep"
    code, out, err = run(capsys, f"{user}:summed", *ARCH, "--cases", "2", "--report", str(out_dir))
    assert code == 1, err
    assert "report written to" in out
    for name in ("report.md", "report.json", "junit.xml"):
        assert (out_dir / name).exists(), name
    report = json.loads((out_dir / "report.json").read_text())
    assert report["meta"]["producer"] == "summed"
    assert "sum of squared errors" in report["meta"]["diagnosis"]
    assert "ENGINE" in (out_dir / "report.md").read_text()
