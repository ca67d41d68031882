"""The MLP finite differences on integer class labels (the sweep's dense-only stacks draw them)."""

import numpy as np

from bpcheck import engine
from bpcheck.references import fd
from bpcheck.spec import Arch, Case, init_params


def test_fd_of_an_mlp_with_integer_labels_matches_the_same_case_with_one_hot_rows():
    rng = np.random.default_rng(7)
    arch = Arch((3, 5, 4), ("tanh", "softmax"), "cross_entropy")
    params = init_params(arch, rng)
    x = rng.standard_normal((6, 3))
    labels = rng.integers(0, 4, size=6)
    with_labels = Case(arch, params, x, labels)
    one_hot = Case(arch, params, x, np.eye(4)[labels])
    fd_labels, fd_rows = fd.gradients(with_labels), fd.gradients(one_hot)
    exact = engine.gradients(one_hot)
    for key in arch.param_shapes():
        assert np.array_equal(fd_labels.grads[key], fd_rows.grads[key])
        assert np.allclose(fd_labels.grads[key], exact.grads[key], rtol=1e-7, atol=1e-9)
