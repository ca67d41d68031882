"""The leaky-relu slope is part of the arch ('leaky_relu:0.2'), through the engine, every reference, the kink
handling, the diagnosis and the case JSON; the default 0.01 stays, spelled 'leaky_relu' as before."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bpcheck import Arch, Case, check_case, engine, init_params
from bpcheck.byo import check_gradients
from bpcheck.draw import draw
from bpcheck.spec import SpecError
from bpcheck.strategies import DTYPE_NAMES, REGIMES, architectures, cases
from tests.test_diagnosis import per_sample_engine

LEAKY = ("leaky_relu:0.2", "leaky_relu:0.3", "leaky_relu:0", "tanh")


def test_the_slope_is_part_of_the_arch_and_round_trips():
    arch = Arch((2, 3, 3, 1), ("leaky_relu:0.2", "leaky_relu:0.01", "identity"), "mse")
    assert arch.activations == ("leaky_relu:0.2", "leaky_relu", "identity")  # the default keeps its old spelling
    assert Arch.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    rng = np.random.default_rng(0)
    case = Case(arch, init_params(arch, rng), rng.standard_normal((4, 2)), rng.standard_normal((4, 1)))
    assert Case.from_dict(json.loads(json.dumps(case.to_dict()))).arch == arch
    z = case.x @ case.params["W1"] + case.params["b1"]
    assert np.array_equal(engine.forward(arch, case.params, case.x)[1][0].a, np.where(z > 0, z, 0.2 * z))
    for bad in ("leaky_relu:abc", "leaky_relu:-1", "leaky_relu:nan", "tanh:0.2", "leaky:0.2"):
        with pytest.raises(SpecError):
            Arch((2, 1), (bad,), "mse")


def test_no_false_alarm_over_every_regime_with_other_slopes():
    """The engine against fd, torch and jax on nets drawn with slopes 0.2, 0.3 and 0, near kinks included."""
    archs = architectures(max_depth=3, max_width=4, activations=LEAKY)
    labels = []
    for i in range(40):
        regime, dt = REGIMES[i % len(REGIMES)], DTYPE_NAMES[(i // len(REGIMES)) % 2]
        case = draw(cases(archs=archs, regimes=(regime,), dtypes=(dt,)), (0, i))
        result = check_case(case)
        assert result.ok and result.label in ("AGREE", "KINK"), result.message()
        labels.append(result.label)
    assert "KINK" in labels  # the kinks of the other slopes are found and left out


def test_a_user_engine_with_slope_0_2_passes_and_its_dropped_slope_is_named():
    arch = Arch((3, 4, 2), ("leaky_relu:0.2", "identity"), "mse")
    import tests.test_diagnosis as td

    assert check_gradients(per_sample_engine(arch), arch, cases=6, seed=0).ok
    default = Arch((3, 4, 2), ("leaky_relu", "identity"), "mse")
    wrong_slope = check_gradients(per_sample_engine(arch), default, cases=4, dtype="float64", seed=0)
    assert not wrong_slope.ok  # a 0.2 engine checked against the default 0.01 differs
    dropped = check_gradients(per_sample_engine(arch, 1, td.PLANTED["leaky dropped"]), arch, cases=4, dtype="float64")
    assert dropped.diagnosis.startswith("layer 1 computes leaky_relu' as 1 where z > 0, else 0, relu's: the leaky "
                                        "slope dropped (should be 1 where z > 0, else 0.2)"), dropped.diagnosis


def test_cli_takes_the_slope_in_activations(tmp_path):
    src = tmp_path / "leaky.py"
    src.write_text(
        "import numpy as np\n"
        "def grads(params, x, y):\n"
        "    z1 = x @ params['W1'] + params['b1']; a1 = np.where(z1 > 0, z1, 0.2 * z1)\n"
        "    z2 = a1 @ params['W2'] + params['b2']\n"
        "    d2 = 2 * (z2 - y) / z2.size; d1 = (d2 @ params['W2'].T) * np.where(z1 > 0, 1.0, 0.2)\n"
        "    return {'W1': x.T @ d1, 'b1': d1.sum(0), 'W2': a1.T @ d2, 'b2': d2.sum(0)}\n")
    base = [sys.executable, "-m", "bpcheck", "check", f"{src}:grads", "--arch", "2-3-1", "--loss", "mse",
            "--cases", "5", "--refs", "fd"]
    ok = subprocess.run(base + ["--activations", "leaky_relu:0.2,identity"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run(base + ["--activations", "leaky_relu:x,identity"], capture_output=True, text=True)
    assert bad.returncode == 2 and "leaky_relu:x" in bad.stderr and "Traceback" not in bad.stderr
