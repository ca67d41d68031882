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
    upcasts     what comes back float64 from float32 inputs ("out", "dx", ...), as course code does with np.zeros(shape)
                or np.ones((N, D)) or rand() / p: everything else keeps the input's dtype
    style       "vectorised" or "loops"
    what        one line: how it is written, or what the bug is

SIDE_EFFECTS: backwards whose first answer is right but which write into what they were given (`mutates`: "dout" or
"cache"); a second call with the same cache is then wrong for the "cache" ones. Kept apart from BUGS, whose every
entry has a wrong gradient.

AUTOGRAD_CORRECT and AUTOGRAD_BUGS: torch.autograd.Function subclasses and jax.custom_vjp functions, as Autograd
entries (framework "torch" or "jax", `target` "module:attr" imported by load(), so this file needs neither).
A torch entry is called as `Fn.apply(*arrays)`, a jax one as `fn(*arrays)`, arrays in the order of `args`.

tests/test_layer_corpus.py checks every entry against torch autograd (never against bpcheck).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from . import bugs_conv as bc
from . import bugs_dense as bd
from . import bugs_norm as bn
from . import cases as c
from . import layers_loops as lp
from . import layers_vectorised as lv
from . import variants as va

KIND = {"affine": "dense", "relu": "activation", "conv2d": "conv2d", "maxpool2d": "maxpool2d",
        "batchnorm": "batchnorm", "layernorm": "layernorm", "dropout": "dropout", "softmax_loss": "softmax_loss",
        "tanh": "activation"}


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
    upcasts: tuple = ()
    mutates: tuple = ()

    @property
    def kind(self) -> str:
        return KIND[self.layer]

    @property
    def kind_config(self) -> dict:
        return {"fn": self.layer} if self.kind == "activation" else {}

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


def tiling_pool(shapes, config) -> bool:
    """Non-overlapping windows that tile x exactly: all the reshape trick handles."""
    _, _, H, W = shapes["x"]
    ph, pw, s = config["pool_height"], config["pool_width"], config["stride"]
    return ph == pw == s and H % ph == 0 and W % pw == 0


def ones(case):
    return replace(case, dout="ones")


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
         "one sample at a time, dw accumulated from outer products", style="loops", upcasts=("out",)),
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
         "four nested loops over (n, f, i, j); padding cropped with pad:pad + H", style="loops", upcasts=("out",)),
    Impl("conv_im2col", "conv2d", lv.conv_forward_im2col, lv.conv_backward_im2col, CONV,
         "im2col by fancy indexing, col2im with np.add.at"),
    Impl("conv_f32", "conv2d", va.conv_forward_f32, va.conv_backward_f32, CONV,
         "the im2col layer run in float32, the caller's dtype handed back", precision="float32"),
    Impl("maxpool_naive", "maxpool2d", lp.max_pool_forward_naive, lp.max_pool_backward_naive, POOL,
         "loops; the gradient to the window's first maximum (np.argmax), as torch", style="loops", upcasts=("out",)),
    Impl("maxpool_fast", "maxpool2d", lv.max_pool_forward_fast, lv.max_pool_backward_fast, POOL,
         "the reshape trick for non-overlapping tiling windows (first maximum), the naive loops otherwise", upcasts=("out",)),
    Impl("batchnorm_graph", "batchnorm", lv.batchnorm_forward, lv.batchnorm_backward, BATCHNORM,
         "the step-by-step computational-graph backward; forward writes running_mean/var into the config",
         fits=two_d, upcasts=("dx",)),
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
         "np.random.seed(seed); mask = (rand < p) / p kept in the cache; dx = dout * mask", upcasts=("dx",)),
    Impl("dropout_bool", "dropout", va.dropout_forward_bool, va.dropout_backward_bool, DROPOUT,
         "a boolean mask and p cached, dx = dout * keep / p"),
    Impl("softmax_loss", "softmax_loss", None, None, SOFTMAX, "max-shifted log-softmax, mean over the batch",
         fn=lv.softmax_loss),
    Impl("softmax_loss_loops", "softmax_loss", None, None, SOFTMAX, "one sample at a time", fn=lp.softmax_loss_loops,
         style="loops"),
    Impl("softmax_loss_unshifted", "softmax_loss", None, None, SOFTMAX,
         "no max subtraction (fine for moderate logits), one-hot matrix", fn=va.softmax_loss_unshifted),
]

BUGS: list[Impl] = [
    # ---- relu ----
    Impl("relu_ignores_dout", "relu", lv.relu_forward, bd.relu_backward_ignores_dout, (c.relu((4, 6)), c.relu((2, 3, 4, 4))),
         "returns the local derivative (x > 0) as if dout were all ones: upstream gradient ignored",
         wrong=("dx",), passes=(ones(c.relu((4, 6))),)),
    Impl("relu_ge_zero", "relu", lv.relu_forward, bd.relu_backward_ge, (c.relu((5, 7), inputs="zeros"),),
         "dout * (x >= 0): gradient 1 at exactly x == 0 where torch and the course give 0; a convention at the kink",
         wrong=("dx",), convention=True, passes=(c.relu((4, 6)),)),
    # ---- affine ----
    Impl("affine_row0", "affine", lp.affine_forward_loops, bd.affine_backward_row0, (c.affine(4, 5, 3), c.affine(3, (2, 3, 2), 4)),
         "loops: every sample's dx written into row 0 (dx_rows[0] += ... for every n); batch 1 is unaffected",
         style="loops", wrong=("dx",), passes=(c.affine(1, 3, 2),)),
    Impl("affine_dw_mean", "affine", lv.affine_forward, bd.affine_backward_dw_mean, (c.affine(4, 5, 3), c.affine(5, 4, 4)),
         "dw divided by N (the batch size) where it should not be: only wrong for batch >= 2",
         wrong=("dw",), passes=(c.affine(1, 3, 2),)),
    Impl("affine_dw_transposed", "affine", lv.affine_forward, bd.affine_backward_dw_transposed,
         (c.affine(4, 5, 5), c.affine(3, (2, 2), 4), c.affine(4, 5, 3)),
         "dw = dout.T @ x, the transpose: shape (M, D), which is the right shape when D == M (first two cases)",
         wrong=("dw",)),
    Impl("affine_dw_first_sample", "affine", lp.affine_forward_loops, bd.affine_backward_dw_first_sample,
         (c.affine(4, 5, 3), c.affine(3, (2, 3, 2), 4)),
         "loops: dw accumulates outer(x[0], dout[n]), x[0] for x[n]; only wrong for batch >= 2",
         style="loops", wrong=("dw",), passes=(c.affine(1, 3, 2),)),
    # ---- dropout ----
    Impl("dropout_no_inv_p", "dropout", bd.dropout_forward_keep, bd.dropout_backward_no_scale,
         (c.dropout((4, 6)), c.dropout((2, 3, 4, 4), p=0.5, seed=3)),
         "forward scales by 1/p, backward returns dout * keep: the 1/p missing", wrong=("dx",),
         passes=(c.dropout((4, 6), p=1.0),)),
    Impl("dropout_new_mask", "dropout", lv.dropout_forward, bd.dropout_backward_new_mask,
         (c.dropout((4, 6)), c.dropout((5, 5), p=0.9, seed=11)),
         "backward draws a fresh mask from the global RNG instead of the cached one (hidden state)", wrong=("dx",),
         passes=(c.dropout((4, 6), p=1.0),)),
    # ---- softmax_loss ----
    Impl("softmax_loss_dx_not_averaged", "softmax_loss", None, None, (c.softmax(5, 4), c.softmax(8, 10)),
         "loss is the batch mean, dx is not divided by N", fn=bd.softmax_loss_not_averaged, wrong=("dx",),
         passes=(c.softmax(1, 3),)),
    Impl("softmax_loss_label_columns", "softmax_loss", None, None, (c.softmax(5, 4), c.softmax(8, 10)),
         "dx[:, y] -= 1 for dx[arange(N), y] -= 1: each row loses 1 in every labelled column; batch 1 is unaffected",
         fn=bd.softmax_loss_label_columns, wrong=("dx",), passes=(c.softmax(1, 3),)),
    # ---- conv2d ----
    Impl("conv_kernel_flipped", "conv2d", lp.conv_forward_naive, bc.conv_backward_kernel_flipped,
         (c.conv(2, 3, 5, 5, 4, 3, 3, 1, 1), c.conv(2, 2, 7, 7, 3, 3, 3, 2, 1), c.conv(1, 1, 4, 5, 2, 2, 3, 1, 0)),
         "dw accumulated from the window flipped in both spatial axes (convolution vs the forward's correlation)",
         style="loops", wrong=("dw",), passes=(c.conv(2, 3, 4, 4, 2, 1, 1, 1, 0),)),
    Impl("conv_crop_top_left", "conv2d", lp.conv_forward_naive, bc.conv_backward_crop_top_left,
         (c.conv(2, 3, 5, 5, 4, 3, 3, 1, 1), c.conv(2, 2, 5, 4, 3, 3, 2, 1, 2)),
         "padding not removed correctly: dx_pad[:, :, :H, :W] for [pad:pad + H, pad:pad + W] (off by pad; pad 0 is fine)",
         style="loops", wrong=("dx",), passes=(c.conv(1, 1, 4, 5, 2, 2, 3, 1, 0),)),
    Impl("conv_crop_negative_pad", "conv2d", lp.conv_forward_naive, bc.conv_backward_crop_negative_pad,
         (c.conv(1, 1, 4, 5, 2, 2, 3, 1, 0), c.conv(3, 2, 6, 6, 2, 3, 3, 2, 0)),
         "dx_pad[:, :, pad:-pad, pad:-pad]: right for pad >= 1, an empty dx for pad 0 (only one config fails)",
         style="loops", wrong=("dx",), passes=(c.conv(2, 3, 5, 5, 4, 3, 3, 1, 1), c.conv(2, 2, 5, 4, 3, 3, 2, 1, 2))),
    Impl("conv_ignores_stride", "conv2d", lp.conv_forward_naive, bc.conv_backward_ignores_stride,
         (c.conv(2, 2, 7, 7, 3, 3, 3, 2, 1), c.conv(3, 2, 6, 6, 2, 3, 3, 2, 0)),
         "backward windows at (i, j), not (i * stride, j * stride): only stride 2 and up fail",
         style="loops", wrong=("dx", "dw"), passes=(c.conv(2, 3, 5, 5, 4, 3, 3, 1, 1), c.conv(1, 1, 4, 5, 2, 2, 3, 1, 0))),
    Impl("conv_db_wrong_axes", "conv2d", lv.conv_forward_im2col, bc.conv_backward_im2col_db_axes,
         (c.conv(2, 2, 5, 5, 5, 3, 3, 1, 1), c.conv(2, 3, 5, 5, 4, 3, 3, 1, 1)),
         "db summed over axes (0, 1, 2) for (0, 2, 3): shape (W_out,), the right shape when F == W_out (first case)",
         wrong=("db",)),
    Impl("conv_im2col_fancy_add", "conv2d", lv.conv_forward_im2col, bc.conv_backward_im2col_fancy_add,
         (c.conv(2, 3, 5, 5, 4, 3, 3, 1, 1), c.conv(2, 2, 7, 7, 3, 3, 3, 2, 1)),
         "col2im by dx_pad[:, k, i, j] += dcols: repeated indices keep one write, overlapping windows lose gradient",
         wrong=("dx",), passes=(c.conv(2, 2, 6, 6, 3, 2, 2, 2, 0), c.conv(2, 3, 4, 4, 2, 1, 1, 1, 0))),
    # ---- maxpool2d ----
    Impl("maxpool_all_ties", "maxpool2d", lp.max_pool_forward_naive, bc.max_pool_backward_all_ties,
         (c.pool(2, 3, 4, 4, 2, 2, 2, inputs="ties"), c.pool(2, 2, 5, 5, 3, 3, 1, inputs="ties")),
         "mask = (window == max): every tied maximum gets the whole gradient (x drawn from 5 integers for ties)",
         style="loops", wrong=("dx",), passes=(c.pool(2, 3, 4, 4, 2, 2, 2), c.pool(2, 2, 5, 5, 2, 2, 1))),
    Impl("maxpool_first_element", "maxpool2d", lp.max_pool_forward_naive, bc.max_pool_backward_first_element,
         (c.pool(2, 3, 4, 4, 2, 2, 2), c.pool(2, 2, 5, 5, 2, 2, 1)),
         "the gradient always to the window's top-left element, never to its maximum", style="loops", wrong=("dx",)),
    Impl("maxpool_pool_as_stride", "maxpool2d", lp.max_pool_forward_naive, bc.max_pool_backward_pool_as_stride,
         (c.pool(2, 2, 8, 8, 2, 2, 3), c.pool(2, 2, 7, 6, 3, 2, 2)),
         "backward steps windows by the pool size, not the stride: only configs with stride != pool size fail",
         style="loops", wrong=("dx",), passes=(c.pool(2, 3, 4, 4, 2, 2, 2), c.pool(1, 2, 6, 6, 3, 3, 3))),
    Impl("maxpool_overwrite", "maxpool2d", lp.max_pool_forward_naive, bc.max_pool_backward_overwrite,
         (c.pool(2, 2, 5, 5, 2, 2, 1), c.pool(2, 2, 5, 5, 3, 3, 1)),
         "dx[argmax] = dout, not +=: a maximum shared by overlapping windows keeps one window's gradient",
         style="loops", wrong=("dx",), passes=(c.pool(2, 3, 4, 4, 2, 2, 2), c.pool(1, 2, 6, 6, 3, 3, 3))),
    Impl("maxpool_split_ties", "maxpool2d", bc.max_pool_forward_reshape, bc.max_pool_backward_reshape_split_ties,
         (c.pool(2, 3, 4, 4, 2, 2, 2, inputs="ties"), c.pool(1, 2, 6, 6, 3, 3, 3, inputs="ties")),
         "the reshape trick with tied maxima sharing the gradient equally: a valid subgradient, torch's convention is "
         "the first maximum; differs only at ties", wrong=("dx",), convention=True, fits=tiling_pool,
         passes=(c.pool(2, 3, 4, 4, 2, 2, 2), c.pool(1, 2, 6, 6, 3, 3, 3))),
    # ---- batchnorm ----
    Impl("batchnorm_no_mean_term", "batchnorm", lv.batchnorm_forward, bn.batchnorm_backward_no_mean_term,
         (c.batchnorm((6, 4)), c.batchnorm((3, 5))), "compact formula without the - sum(dxhat) term (the mean's path)",
         wrong=("dx",), fits=two_d),
    Impl("batchnorm_unbiased_var", "batchnorm", lv.batchnorm_forward, bn.batchnorm_backward_unbiased_var,
         (c.batchnorm((6, 4)), c.batchnorm((3, 5))),
         "backward recomputes the variance unbiased (N - 1) while the forward used the biased one", wrong=("dx",),
         fits=two_d),
    Impl("batchnorm_dgamma_no_xhat", "batchnorm", lv.batchnorm_forward, bn.batchnorm_backward_dgamma_no_xhat,
         (c.batchnorm((6, 4)), c.batchnorm((3, 5))), "dgamma = sum(dout): the xhat factor missing",
         wrong=("dgamma",), fits=two_d),
    Impl("batchnorm_square_factor", "batchnorm", lv.batchnorm_forward, bn.batchnorm_backward_square_factor,
         (c.batchnorm((6, 4)), c.batchnorm((3, 5))),
         "step-by-step graph: the factor 2 of d(xmu**2) dropped", wrong=("dx",), fits=two_d),
    # ---- layernorm ----
    Impl("layernorm_ones_only", "layernorm", va.layernorm_forward_transposed, bn.layernorm_backward_transposed_reshape,
         (c.layernorm((4, 6)), c.layernorm((6, 3))),
         "dout.reshape(D, N) for dout.T: right for a ones (any constant) cotangent and for batch 1, wrong otherwise",
         wrong=("dx",), fits=two_d, passes=(ones(c.layernorm((3, 5))), ones(c.layernorm((4, 6))), c.layernorm((1, 5)))),
    Impl("layernorm_batch_axis", "layernorm", lv.layernorm_forward, bn.layernorm_backward_batch_axis,
         (c.layernorm((4, 6)), c.layernorm((6, 3))),
         "batchnorm's backward kept: the mean terms summed over axis 0 (the batch), not axis 1", wrong=("dx",),
         fits=two_d),
    Impl("layernorm_dgamma_first_row", "layernorm", lp.layernorm_forward_loops, bn.layernorm_backward_loops_first_row,
         (c.layernorm((4, 6)), c.layernorm((6, 3))),
         "loops: dgamma += dout[n] * xhat[0], xhat[0] for xhat[n]; only wrong for batch >= 2", style="loops",
         wrong=("dgamma",), fits=two_d, passes=(c.layernorm((1, 5)),)),
]


SIDE_EFFECTS: list[Impl] = [
    Impl("relu_inplace", "relu", lv.relu_forward, bd.relu_backward_inplace, (c.relu((4, 6)), c.relu((2, 3, 4, 4))),
         "dx = dout; dx[x <= 0] = 0: the right gradient, written into the caller's dout", mutates=("dout",)),
    Impl("dropout_into_mask", "dropout", lv.dropout_forward, bd.dropout_backward_into_mask,
         (c.dropout((4, 6)), c.dropout((2, 3, 4, 4), p=0.5, seed=3)),
         "mask *= dout; return mask: right once, then the cached mask is gone (a second call returns dout**2 * mask)",
         mutates=("cache",)),
    Impl("layernorm_scales_dout", "layernorm", lv.layernorm_forward, bn.layernorm_backward_scales_dout,
         (c.layernorm((4, 6)), c.layernorm((6, 3))), "dout *= gamma in place: the right gradient, the caller's dout changed",
         fits=two_d, mutates=("dout",)),
]


@dataclass(frozen=True)
class Autograd:
    name: str
    framework: str
    target: str
    layer: str
    cases: tuple
    what: str
    wrong: tuple = ()
    passes: tuple = ()

    kind = Impl.kind
    kind_config = Impl.kind_config
    args = Impl.args
    grads = Impl.grads

    def load(self):
        module, attr = self.target.split(":")
        return getattr(importlib.import_module(module), attr)


LINEAR = (c.affine(4, 5, 3), c.affine(6, 3, 3), c.affine(2, 4, 6))
TANH = (c.tanh((4, 6)), c.tanh((2, 3, 4, 4)))
_T, _J = "tests.layer_corpus.torch_functions:", "tests.layer_corpus.jax_vjp:"

AUTOGRAD_CORRECT: list[Autograd] = [
    Autograd("torch_linear", "torch", _T + "Linear", "affine", LINEAR, "ctx.save_for_backward(x, w), x @ w + b"),
    Autograd("torch_tanh", "torch", _T + "Tanh", "tanh", TANH, "setup_context style, 1 - y**2 from the saved output"),
    Autograd("jax_affine", "jax", _J + "affine", "affine", LINEAR, "custom_vjp, residuals (x, w)"),
    Autograd("jax_tanh", "jax", _J + "tanh", "tanh", TANH, "custom_vjp, residual y = tanh(x)"),
]

AUTOGRAD_BUGS: list[Autograd] = [
    Autograd("torch_linear_bias_mean", "torch", _T + "LinearBiasMean", "affine", LINEAR,
             "grad of b is grad_out.mean(0), not .sum(0): only wrong for batch >= 2", wrong=("db",),
             passes=(c.affine(1, 4, 3),)),
    Autograd("torch_tanh_from_input", "torch", _T + "TanhFromInput", "tanh", TANH,
             "backward 1 - x**2 where 1 - tanh(x)**2 was meant", wrong=("dx",)),
    Autograd("jax_affine_dw_mean", "jax", _J + "affine_dw_mean", "affine", LINEAR,
             "dw = x.T @ g / N: only wrong for batch >= 2", wrong=("dw",), passes=(c.affine(1, 4, 3),)),
    Autograd("jax_tanh_ignores_g", "jax", _J + "tanh_ignores_g", "tanh", TANH,
             "the rule returns 1 - y**2 and never uses the cotangent g", wrong=("dx",),
             passes=(ones(c.tanh((4, 6))),)),
]


def by_name(name: str):
    for impl in CORRECT + BUGS + SIDE_EFFECTS + AUTOGRAD_CORRECT + AUTOGRAD_BUGS:
        if impl.name == name:
            return impl
    raise KeyError(name)
