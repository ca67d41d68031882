"""Every command works without torch, without jax, and without both: the missing references show as
SKIPPED with the line that installs them, and the exit code is the one the full install gives.

The packages are hidden, not uninstalled and not mocked: tests/hide_optional.py puts a sitecustomize
on PYTHONPATH whose finder wrapper makes `import torch` / `import jax` fail and find_spec return None,
exactly as on a machine without them (spawned sweep workers inherit it). Each command runs in a fresh
`python -m bpcheck` process; the same command with nothing hidden gives the expected exit code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bpcheck.check import check_case
from bpcheck.spec import Arch, Case, init_params

from .hide_optional import hidden_env, run_bpcheck

ROOT = Path(__file__).resolve().parent.parent
FIXED = str(ROOT / "examples" / "seed_xor_fixed.py") + ":grads"
BUGGY = str(ROOT / "examples" / "seed_xor.py") + ":grads"
XOR = ["--arch", "2-2-1", "--activations", "sigmoid,sigmoid", "--loss", "mse"]
INSTALL = {"torch": "pip install torch", "jax": "pip install jax"}


def _saved_result(tmp: Path) -> str:
    """A CheckResult file recorded with the full install (references fd, torch, jax where present), as a
    report saves it in cases/<id>.json: replay re-runs those references, and the hidden ones must SKIP."""
    arch = Arch((3, 4, 2), ("relu", "softmax"), "cross_entropy")
    rng = np.random.default_rng(5)
    y = rng.random((3, 2))
    case = Case(arch, init_params(arch, rng), rng.standard_normal((3, 3)), y / y.sum(1, keepdims=True))
    path = tmp / "saved_case.json"
    path.write_text(json.dumps(check_case(case).to_dict()))
    return str(path)


def _commands(tmp: Path) -> dict[str, list[str]]:
    """name -> argv, run in this order (render reads the report written by report)."""
    return {
        "report": ["report", "--cases", "5", "--out", str(tmp / "rep")],
        "report --jobs 2": ["report", "--cases", "4", "--jobs", "2", "--no-shrink", "--out", str(tmp / "rep2")],
        "check (correct)": ["check", FIXED, *XOR, "--cases", "3"],
        "check (the essay's bugs)": ["check", BUGGY, *XOR, "--cases", "3"],
        "render": ["render", str(tmp / "rep" / "report.json"), "--out", str(tmp / "rendered")],
        "replay": ["replay", _saved_result(tmp)],
        "xor": ["xor", "--epochs", "3000"],
    }


@pytest.fixture(scope="module")
def with_everything(tmp_path_factory):
    """The exit code of each command with nothing hidden."""
    tmp = tmp_path_factory.mktemp("full")
    return {name: run_bpcheck(argv).returncode for name, argv in _commands(tmp).items()}


@pytest.mark.parametrize("hide", ["torch", "jax", "torch,jax"])
def test_every_command_works_without_the_optional_packages(hide, with_everything, tmp_path):
    env = hidden_env(tmp_path, hide)
    hidden = hide.split(",")
    probe = run_bpcheck(["report", "--help"], env=env)
    assert probe.returncode == 0
    for name, argv in _commands(tmp_path).items():
        done = run_bpcheck(argv, env=env)
        both = done.stdout + done.stderr
        assert "Traceback" not in both, f"{name}: {both}"
        assert done.returncode == with_everything[name], f"{name} exits {done.returncode} without {hide}: {both}"
        assert done.returncode in (0, 1), f"{name}: {both}"
        if name.startswith("report") or name == "replay":
            for package in hidden:
                assert "skipped" in both.lower() and INSTALL[package] in both, f"{name} hides how to get {package}: {both}"
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    for package in hidden:
        assert INSTALL[package] in report["meta"]["skipped"][package]
        assert report["meta"]["references"][package]["available"] is False
        assert all(v["label"] == "SKIPPED" for r in report["results"] for v in r["verdicts"] if v["reference"] == package)
    assert report["meta"]["references"]["fd"]["available"] is True
    assert (tmp_path / "rendered" / "report.md").exists()


def test_the_hiding_is_real(tmp_path):
    """The subprocess really cannot import the hidden packages (so the test above proves something)."""
    import subprocess
    import sys

    code = ("import importlib.util\n"
            "for n in ('torch', 'jax'):\n"
            "    try:\n"
            "        __import__(n)\n"
            "        print(n, 'imported')\n"
            "    except ImportError:\n"
            "        print(n, 'missing', importlib.util.find_spec(n))\n"
            "import bpcheck.references as r\n"
            "print(r.available())")
    done = subprocess.run([sys.executable, "-c", code], env=hidden_env(tmp_path, "torch,jax"), capture_output=True,
                          text=True, check=True)
    assert done.stdout.split("\n")[:3] == ["torch missing None", "jax missing None", "['fd']"], done.stdout


def test_the_default_report_passes_without_torch_and_jax(tmp_path):
    """One case in four of the default sweep is a layered stack; a float32 stack's rounding is sampled by a torch
    float32 re-run, so without torch and jax it takes probe.py's norm-wise bound from FD's gradient instead (with no
    bound at all, 29 of these 200 cases were false ENGINE)."""
    done = run_bpcheck(["report", "--no-shrink", "--formats", "json", "--out", str(tmp_path / "rep")],
                       env=hidden_env(tmp_path, "torch,jax"))
    assert done.returncode == 0 and "PASS" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    stacks = [r for r in report["results"] if r["dtype"] == "float32" and "(" in r["arch"]]  # a stack's layers have configs
    assert stacks and all(v["label"] in ("AGREE", "KINK") for r in stacks for v in r["verdicts"] if v["reference"] == "fd")
