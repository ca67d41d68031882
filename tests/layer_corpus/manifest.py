"""The layer corpus as plain data: CORRECT (every one right) and BUGS (every one wrong, with the argument it gets wrong).

Each entry is an Impl:
    name        unique
    layer       the contract's name: affine, relu, conv2d, maxpool2d, batchnorm, layernorm, dropout, softmax_loss
    kind        the registry kind it maps to (affine -> "dense", relu -> "activation" with kind_config {"fn": "relu"})
    forward, backward   `out, cache = forward(*arrays[, config])`, `grads = backward(dout, cache)`; None for a loss layer
    fn          a loss layer's `loss, dx = fn(x, y)`; None otherwise
    config      a config the forward takes (None when it takes none); the cases carry their own
    grads       the gradients backward returns, in order ("dx", "dw", "db")
    cases       Cases (cases.py) on which the entry is checked: a correct entry agrees with torch on every one, a
                bug differs from torch in each `wrong` gradient on every one
    passes      (bugs) cases on which the bug agrees with torch: it is invisible there (batch 1, stride 1, no ties, ...)
    wrong       (bugs) the returned gradient(s) that are wrong, e.g. ("dw",)
    convention  (bugs) True when the difference is a convention at a kink (relu at exactly 0, split ties), not an error
    fits        None, or a predicate (shapes, config) -> bool: the only inputs the code handles (e.g. 2-D x only)
    precision   "float32" for a layer that computes in float32 inside (compare with float32 tolerances)
    style       "vectorised" or "loops"
    what        one line: how it is written, or what the bug is

tests/test_layer_corpus.py checks every entry against torch autograd (never against bpcheck).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import cases as c
from . import layers_loops as lp
from . import layers_vectorised as lv
from . import variants as va

KIND = {"affine": "dense", "relu": "activation", "conv2d": "conv2d", "maxpool2d": "maxpool2d",
        "batchnorm": "batchnorm", "layernorm": "layernorm", "dropout": "dropout", "softmax_loss": "softmax_loss"}


@dataclass(frozen=True)
class Impl:
    name: str
    layer: str
    forward: Callable | None
    backward: Callable | None
    cases: tuple
    what: str
    fn: Callable | None = None
    style: str = "vectorised"
    precision: str = "float64"
    fits: Callable | None = None
    wrong: tuple = ()
    convention: bool = False
    passes: tuple = ()

    @property
    def kind(self) -> str:
        return KIND[self.layer]

    @property
    def kind_config(self) -> dict:
        return {"fn": "relu"} if self.layer == "relu" else {}

    @property
    def args(self) -> tuple:
        return c.ARGS[self.layer]

    @property
    def grads(self) -> tuple:
        return tuple("d" + a for a in self.args)

    @property
    def config(self) -> dict | None:
        return self.cases[0].config


def two_d(shapes, config) -> bool:
    return len(shapes["x"]) == 2


def four_d(shapes, config) -> bool:
    return len(shapes["x"]) == 4


# ---- the shapes and configs every correct entry of a layer is checked on ----
AFFINE = (c.affine(4, 5, 3), c.affine(1, 3, 2), c.affine(3, (2, 3, 2), 4), c.affine(5, 4, 4))
RELU = (c.relu((4, 6)), c.relu((2, 3, 4, 4)), c.relu((5, 7), inputs="zeros"))
CONV = (c.conv(2, 3, 5, 5, 4, 3, 3, 1, 1), c.conv(2, 2, 7, 7, 3, 3, 3, 2, 1), c.conv(1, 1, 4, 5, 2, 2, 3, 1, 0),
        c.conv(3, 2, 6, 6, 2, 3, 3, 2, 0), c.conv(2, 2, 5, 4, 3, 3, 2, 1, 2))
POOL = (c.pool(2, 3, 4, 4, 2, 2, 2), c.pool(2, 2, 5, 5, 2, 2, 1), c.pool(1, 2, 6, 6, 3, 3, 3),
        c.pool(2, 2, 7, 6, 3, 2, 2), c.pool(2, 3, 4, 4, 2, 2, 2, inputs="ties"), c.pool(2, 2, 5, 5, 3, 3, 1, inputs="ties"))
BATCHNORM = (c.batchnorm((6, 4)), c.batchnorm((3, 5)), c.batchnorm((8, 3), eps=1e-3), c.batchnorm((5, 4), dout="ones"))
SPATIAL_BN = (c.batchnorm((2, 3, 4, 4)), c.batchnorm((3, 2, 3, 5)))
LAYERNORM = (c.layernorm((4, 6)), c.layernorm((1, 5)), c.layernorm((6, 3), eps=1e-3), c.layernorm((3, 5), dout="ones"))
LAYERNORM_ANY = LAYERNORM + (c.layernorm((2, 3, 4, 4)), c.layernorm((3, 2, 5)))
DROPOUT = (c.dropout((4, 6)), c.dropout((2, 3, 4, 4), p=0.5, seed=3), c.dropout((5, 5), p=0.9, seed=11))
SOFTMAX = (c.softmax(5, 4), c.softmax(1, 3), c.softmax(8, 10))

CORRECT: list[Impl] = [
    Impl("affine", "affine", lv.affine_forward, lv.affine_backward, AFFINE,
         "x reshaped to (N, D) in forward and backward, x kept unflattened in the cache"),
    Impl("affine_loops", "affine", lp.affine_forward_loops, lp.affine_backward_loops, AFFINE,
         "one sample at a time, dw accumulated from outer products", style="loops"),
    Impl("affine_flat_cache", "affine", va.affine_forward_flat, va.affine_backward_flat, AFFINE,
         "the cache keeps the flattened x and x.shape"),
    Impl("affine_f32", "affine", va.affine_forward_f32, va.affine_backward_f32, AFFINE,
         "computes in float32 inside, returns the caller's dtype", precision="float32"),
    Impl("relu", "relu", lv.relu_forward, lv.relu_backward, RELU, "dout * (x > 0) from the cached x"),
    Impl("relu_from_out", "relu", va.relu_forward_out, va.relu_backward_from_out, RELU,
         "dout * (out > 0) from the cached output"),
    Impl("relu_mask", "relu", va.relu_forward_inplace_mask, va.relu_backward_mask, RELU,
         "a boolean mask cached, dout copied and zeroed where the mask is off"),
    Impl("conv_naive", "conv2d", lp.conv_forward_naive, lp.conv_backward_naive, CONV,
         "four nested loops over (n, f, i, j); padding cropped with pad:pad + H", style="loops"),
    Impl("conv_im2col", "conv2d", lv.conv_forward_im2col, lv.conv_backward_im2col, CONV,
         "im2col by fancy indexing, col2im with np.add.at"),
    Impl("conv_f32", "conv2d", va.conv_forward_f32, va.conv_backward_f32, CONV,
         "the im2col layer run in float32, the caller's dtype handed back", precision="float32"),
    Impl("maxpool_naive", "maxpool2d", lp.max_pool_forward_naive, lp.max_pool_backward_naive, POOL,
         "loops; the gradient to the window's first maximum (np.argmax), as torch", style="loops"),
    Impl("maxpool_fast", "maxpool2d", lv.max_pool_forward_fast, lv.max_pool_backward_fast, POOL,
         "the reshape trick for non-overlapping tiling windows (first maximum), the naive loops otherwise"),
    Impl("batchnorm_graph", "batchnorm", lv.batchnorm_forward, lv.batchnorm_backward, BATCHNORM,
         "the step-by-step computational-graph backward; forward writes running_mean/var into the config",
         fits=two_d),
    Impl("batchnorm_compact", "batchnorm", lv.batchnorm_forward, lv.batchnorm_backward_alt, BATCHNORM,
         "the one-line simplified formula; same forward", fits=two_d),
    Impl("spatial_batchnorm", "batchnorm", va.spatial_batchnorm_forward, va.spatial_batchnorm_backward, SPATIAL_BN,
         "(N, C, H, W) through the (N, D) batchnorm on (N*H*W, C)", fits=four_d),
    Impl("layernorm", "layernorm", lv.layernorm_forward, lv.layernorm_backward, LAYERNORM,
         "vectorised over axis 1, compact formula", fits=two_d),
    Impl("layernorm_loops", "layernorm", lp.layernorm_forward_loops, lp.layernorm_backward_loops, LAYERNORM,
         "one sample at a time", style="loops", fits=two_d),
    Impl("layernorm_transposed", "layernorm", va.layernorm_forward_transposed, va.layernorm_backward_transposed,
         LAYERNORM, "batchnorm's formula applied to x.T (the course hint)", fits=two_d),
    Impl("layernorm_any", "layernorm", va.layernorm_forward_any, va.layernorm_backward_any, LAYERNORM_ANY,
         "normalises over every per-sample axis; gamma and beta of the per-sample shape"),
    Impl("dropout", "dropout", lv.dropout_forward, lv.dropout_backward, DROPOUT,
         "np.random.seed(seed); mask = (rand < p) / p kept in the cache; dx = dout * mask"),
    Impl("dropout_bool", "dropout", va.dropout_forward_bool, va.dropout_backward_bool, DROPOUT,
         "a boolean mask and p cached, dx = dout * keep / p"),
    Impl("softmax_loss", "softmax_loss", None, None, SOFTMAX, "max-shifted log-softmax, mean over the batch",
         fn=lv.softmax_loss),
    Impl("softmax_loss_loops", "softmax_loss", None, None, SOFTMAX, "one sample at a time", fn=lp.softmax_loss_loops,
         style="loops"),
    Impl("softmax_loss_unshifted", "softmax_loss", None, None, SOFTMAX,
         "no max subtraction (fine for moderate logits), one-hot matrix", fn=va.softmax_loss_unshifted),
]

BUGS: list[Impl] = []


def by_name(name: str) -> Impl:
    for impl in CORRECT + BUGS:
        if impl.name == name:
            return impl
    raise KeyError(name)
