"""The table of bad inputs: every one a one-line message naming the bad value and the fix.

Through the CLI (bpcheck.cli.main in process, capsys): exit 2, one line on stderr (a raising user
function adds its own last frame), no traceback. Through the API: a BpcheckError subclass with a
one-line message. A few rows run again as `python -m bpcheck ...` in a fresh process, to show that
no traceback reaches stderr from the real entry point either.

Each row: (id, how, value, fix). value and fix are substrings the message must contain: the bad
value as the user gave it, and the words that say what to do instead.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from bpcheck.byo import check_gradients
from bpcheck.check import check_case
from bpcheck.cli import main
from bpcheck.spec import Arch, BpcheckError, Case, DataError, SpecError, UsageError, init_params

from .hide_optional import hidden_env, run_bpcheck

ARCH = ["--arch", "2-2-1", "--activations", "sigmoid", "--loss", "mse"]
USER = """
import numpy as np

def grads(params, x, y):
    a1 = 1 / (1 + np.exp(-(x @ params["W1"] + params["b1"])))
    a2 = 1 / (1 + np.exp(-(a1 @ params["W2"] + params["b2"])))
    dz2 = 2.0 / a2.size * (a2 - y) * a2 * (1 - a2)
    dz1 = (dz2 @ params["W2"].T) * a1 * (1 - a1)
    return {"W1": x.T @ dz1, "b1": dz1.sum(0), "W2": a1.T @ dz2, "b2": dz2.sum(0)}

def raises(params, x, y):
    return scale(params)

def scale(params):
    return params["W1"] / missing_name

def a_list(params, x, y):
    return list(grads(params, x, y).values())

def no_b2(params, x, y):
    g = grads(params, x, y)
    del g["b2"]
    return g

def transposed(params, x, y):
    g = grads(params, x, y)
    g["W2"] = g["W2"].T
    return g

def as_int(params, x, y):
    return {k: v.astype(np.int64) for k, v in grads(params, x, y).items()}

def hangs(params, x, y):
    while True:
        pass
"""


class Row(NamedTuple):
    id: str
    how: Callable  # (user_file, tmp_path) -> argv for main, or a callable that raises (API rows)
    value: str
    fix: str
    api: bool = False


def _file(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def _case_json(tmp: Path, **change) -> str:
    arch = Arch((2, 2, 1), ("sigmoid", "sigmoid"), "mse")
    case = Case(arch, init_params(arch, np.random.default_rng(0)), np.ones((2, 2)), np.zeros((2, 1)))
    data = {**case.to_dict(), **change}
    return _file(tmp, "case.json", json.dumps({k: v for k, v in data.items() if v is not None}))


def _xor():
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return x, np.array([[0.0], [1.0], [1.0], [0.0]])


XOR_ARCH = Arch((2, 2, 1), ("sigmoid", "sigmoid"), "mse")


def _case(x=None, y=None, params=None, arch=XOR_ARCH):
    """A Case with one thing changed; the rest valid."""
    x0, y0 = _xor()
    if arch.sizes[-1] != 1:
        y0 = np.tile(y0, (1, arch.sizes[-1])) / arch.sizes[-1]
    p = init_params(arch, np.random.default_rng(0))
    p.update(params or {})
    return lambda u, t: Case(arch, p, x0 if x is None else x, y0 if y is None else y)


def _byo(x, y):
    """check_gradients on fixed data (x, y): the data is checked before the user's function runs."""
    def call(u, t):
        import importlib.util

        spec = importlib.util.spec_from_file_location("user_bad_inputs", u)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        check_gradients(module.grads, Arch((2, 2, 1), ("sigmoid", "sigmoid"), "mse"), cases=(x, y), references="fd")
    return call


X, Y = _xor()
NAN_X = X.copy()
NAN_X[1, 1] = np.nan
INF_Y = Y.copy()
INF_Y[2, 0] = np.inf
NAN_W = np.ones((2, 2))
NAN_W[0, 1] = np.nan
NOT_A_REPORT = '{"results": 1}'

ROWS = [
    # --- the spec ---
    Row("unknown activation", lambda u, t: ["check", f"{u}:grads", "--arch", "2-2-1", "--activations", "sigmod",
                                            "--loss", "mse"], "'sigmod'", "did you mean 'sigmoid'"),
    Row("unknown loss", lambda u, t: ["check", f"{u}:grads", *ARCH[:4], "--loss", "mes"], "'mes'", "did you mean 'mse'"),
    Row("zero width", lambda u, t: ["check", f"{u}:grads", "--arch", "2-0-1", *ARCH[2:]], "sizes[1]=0",
        "integer >= 1"),
    Row("negative width", lambda u, t: ["check", f"{u}:grads", "--arch-json", _file(
        t, "a.json", '{"sizes": [2, -3, 1], "activations": ["sigmoid", "sigmoid"], "loss": "mse"}')],
        "sizes[1]=-3", "integer >= 1"),
    Row("wrong number of activations", lambda u, t: ["check", f"{u}:grads", "--arch", "2-2-1", "--activations",
                                                     "sigmoid,sigmoid,tanh", "--loss", "mse"],
        "has 3 name(s)", "give one activation per layer"),
    Row("loss does not fit the output", lambda u, t: ["check", f"{u}:grads", "--arch", "2-2-1", "--activations",
                                                      "sigmoid,identity", "--loss", "bce"],
        "output activation is 'identity'", "make the last activation 'sigmoid'"),
    Row("malformed --arch", lambda u, t: ["check", f"{u}:grads", "--arch", "2x8x1", *ARCH[2:]], "'2x8x1'",
        "write it like 2-8-1"),
    Row("broken spec JSON", lambda u, t: ["check", f"{u}:grads", "--arch-json", _file(t, "a.json", '{"sizes": [2,')],
        "is not JSON", 'write {"sizes"'),
    Row("spec JSON missing fields", lambda u, t: ["check", f"{u}:grads", "--arch-json", _file(
        t, "a.json", '{"sizes": [2, 2, 1], "activations": ["sigmoid", "sigmoid"]}')], "missing loss",
        "give sizes, activations and loss"),
    Row("spec JSON not an object", lambda u, t: ["check", f"{u}:grads", "--arch-json", _file(t, "a.json", "[2, 2, 1]")],
        "is list, not an object", "give {"),
    Row("case JSON of the wrong version", lambda u, t: ["replay", _case_json(t, spec_version=99)], "spec_version=99",
        "re-create the case"),
    Row("case JSON missing fields", lambda u, t: ["replay", _case_json(t, x=None)], "missing x",
        "give a file written by bpcheck"),
    Row("case JSON with a ragged array", lambda u, t: ["replay", _case_json(t, x=[[1.0, 2.0], [3.0]])],
        "ragged", "nested lists of numbers"),
    # --- the data (API: Case, and check_gradients with fixed data) ---
    Row("NaN in x", _case(x=NAN_X), "x has nan at (1, 1)", "every value must be finite", api=True),
    Row("Inf in y", _case(y=INF_Y), "y has inf at (2, 0)", "every value must be finite", api=True),
    Row("NaN in params", _case(params={"W1": NAN_W}), "params['W1'] has nan at (0, 1)",
        "every parameter must be finite", api=True),
    Row("x shape does not match the arch", _case(x=X[:, :1]), "x has shape (4, 1)", "needs (batch, 2)", api=True),
    Row("y rows do not match x", _case(y=Y[:3]), "y has 3", "one target row per input row", api=True),
    Row("param shape does not match the arch", _case(params={"W2": np.ones((1, 2))}), "shape (1, 2)",
        "needs (2, 1)", api=True),
    Row("cross-entropy target negative", _case(y=np.array([[0.5, 0.5], [1.5, -0.5], [0, 1], [1, 0]]),
                                               arch=Arch((2, 2, 2), ("tanh", "softmax"), "cross_entropy")),
        "y has -0.5", "give one-hot or probability rows", api=True),
    Row("bce target outside [0, 1]", _case(y=Y * 2, arch=Arch((2, 2, 1), ("tanh", "sigmoid"), "bce")),
        "y has 2.0", "rescale the targets, or use mse", api=True),
    Row("empty batch (Case)", _case(x=X[:0], y=Y[:0]), "empty batch (shape (0, 2))", "give at least one row", api=True),
    Row("empty batch (check_gradients)", _byo(X[:0], Y[:0]), "empty batch", "give at least one row", api=True),
    Row("NaN in x (check_gradients)", _byo(NAN_X, Y), "x has nan", "every value must be finite", api=True),
    Row("x of strings (check_gradients)", _byo(np.array([["a", "b"]] * 4), Y), "'a'", "numbers", api=True),
    # --- the user's function ---
    Row("file missing", lambda u, t: ["check", f"{t}/nowhere.py:grads", *ARCH], "nowhere.py", "does not exist"),
    Row("function missing", lambda u, t: ["check", f"{u}:grad", *ARCH], "no function 'grad'", "did you mean 'grads'"),
    Row("no :function part", lambda u, t: ["check", u, *ARCH], "does not name a function", "path/to/file.py:function"),
    Row("function raises", lambda u, t: ["check", f"{u}:raises", *ARCH], "raised NameError",
        "name 'missing_name' is not defined"),
    Row("returns a non-dict", lambda u, t: ["check", f"{u}:a_list", *ARCH], "returned list", "dict"),
    Row("wrong keys", lambda u, t: ["check", f"{u}:no_b2", *ARCH], "'b2'", "return"),
    Row("wrong shapes", lambda u, t: ["check", f"{u}:transposed", *ARCH], "(1, 2)", "(2, 1)"),
    Row("non-float dtype", lambda u, t: ["check", f"{u}:as_int", *ARCH], "int64", "float"),
    Row("hangs", lambda u, t: ["check", f"{u}:hangs", *ARCH, "--timeout", "0.5"], "--timeout 0.5", "within"),
    Row("negative timeout (API)", lambda u, t: check_gradients(lambda p, x, y: {}, Arch((2, 1), ("identity",), "mse"),
                                                               timeout=-1.0), "timeout=-1.0", "> 0", api=True),
    # --- the CLI ---
    Row("unknown flag", lambda u, t: ["report", "--casez", "3"], "--casez", "see --help"),
    Row("--cases 0", lambda u, t: ["report", "--cases", "0"], "0 is too small", "integer >= 1"),
    Row("negative --jobs", lambda u, t: ["report", "--jobs", "-2"], "-2 is too small", "integer >= 1"),
    Row("--seed not a number", lambda u, t: ["report", "--seed", "abc"], "'abc'", "integer >= 0"),
    Row("unwritable --out", lambda u, t: ["report", "--cases", "1", "--out", _file(t, "a_file", "") + "/sub"],
        "a_file/sub", "give a directory you can write to"),
    Row("unknown reference", lambda u, t: ["report", "--cases", "1", "--refs", "tf"], "'tf'", "did you mean 'fd'"),
    Row("unknown regime", lambda u, t: ["report", "--cases", "1", "--regimes", "tinny"], "'tinny'",
        "did you mean 'tiny'"),
    Row("unknown dtype", lambda u, t: ["report", "--cases", "1", "--dtypes", "float46"], "'float46'",
        "did you mean 'float64'"),
    Row("unknown --fail-on label", lambda u, t: ["report", "--cases", "1", "--fail-on", "ENGINE,REFERNCE"],
        "'REFERNCE'", "did you mean 'REFERENCE'"),
    Row("unknown fail_on label (API)", lambda u, t: check_case(_case()(u, t), "fd", fail_on=("ENGIN",)), "'ENGIN'",
        "did you mean 'ENGINE'", api=True),
    Row("unknown format", lambda u, t: ["report", "--cases", "1", "--formats", "pdf"], "'pdf'", "choose from"),
    Row("render a JSON that is not a report", lambda u, t: ["render", _file(t, "r.json", NOT_A_REPORT)],
        "is not a bpcheck report", "give the report.json written by `bpcheck report`"),
    Row("render a report of another version", lambda u, t: ["render", _file(
        t, "r.json", '{"format_version": 999, "meta": {}, "results": []}')], "format_version=999", "re-run"),
    Row("render a missing file", lambda u, t: ["render", f"{t}/none.json"], "none.json", "give the report.json"),
    Row("replay a report.json (not a case)", lambda u, t: ["replay", _file(
        t, "report.json", '{"format_version": 1, "meta": {}, "results": []}')], "report.json",
        "give cases/<id>.json"),
    Row("xor learning rate NaN", lambda u, t: ["xor", "--lr", "nan"], "nan", "finite number > 0"),
]
IDS = [r.id for r in ROWS]
SUBPROCESS = ["unknown activation", "malformed --arch", "function raises", "hangs", "unwritable --out",
              "render a JSON that is not a report", "unknown flag", "case JSON of the wrong version"]


@pytest.fixture
def user(tmp_path):
    return _file(tmp_path, "user_net.py", textwrap.dedent(USER))


def _assert_one_line(message: str, row: Row, *, extra_lines: int = 0) -> None:
    lines = message.strip().splitlines()
    assert "Traceback" not in message, message
    assert len(lines) == 1 + extra_lines, message
    assert row.value in lines[0], f"the message does not name the value {row.value!r}: {lines[0]}"
    assert row.fix in lines[0], f"the message does not say the fix {row.fix!r}: {lines[0]}"


def test_the_table_has_at_least_25_rows():
    assert len(ROWS) >= 25 and len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_bad_input_is_one_line_naming_value_and_fix(row, user, tmp_path, capsys):
    if row.api:
        with pytest.raises(BpcheckError) as info:
            row.how(user, tmp_path)
        assert isinstance(info.value, (SpecError, DataError, UsageError)), type(info.value)
        _assert_one_line(str(info.value), row)
        return
    code = main(row.how(user, tmp_path))
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in out
    assert err.startswith("bpcheck"), err
    # A raising user function shows its own last frame under the one line, and nothing else.
    _assert_one_line(err, row, extra_lines=1 if row.id == "function raises" else 0)
    if row.id == "function raises":
        frame = err.strip().splitlines()[1]
        assert "user_net.py" in frame and "in scale" in frame and "missing_name" in frame


@pytest.mark.parametrize("row", [r for r in ROWS if r.id in SUBPROCESS], ids=SUBPROCESS)
def test_bad_input_through_python_m_bpcheck(row, user, tmp_path):
    done = run_bpcheck(row.how(user, tmp_path), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    _assert_one_line(done.stderr, row, extra_lines=1 if row.id == "function raises" else 0)


def test_refs_naming_a_reference_that_is_not_installed(tmp_path):
    """torch hidden (not uninstalled): the registry says so, and --refs torch is a one-line exit 2 saying
    how to install it, before any work; --refs all would list it as SKIPPED instead (test_without_optional)."""
    done = run_bpcheck(["report", "--cases", "1", "--refs", "fd,torch", "--out", str(tmp_path / "out")],
                       env=hidden_env(tmp_path, "torch"), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    line, = done.stderr.strip().splitlines()
    assert "'torch'" in line and "pip install torch" in line, line
    assert not (tmp_path / "out" / "report.json").exists()
