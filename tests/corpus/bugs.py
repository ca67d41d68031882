"""The planted bugs: one realistic bug in a copy of one corpus engine, and where the report must place it.

None is in bpcheck's mutant catalog (`python -m bpcheck mutants --list`). `layer` is the first layer,
from the output down, whose gradient the bug makes wrong, and `tensors` the tensor(s) of that layer the
report may lead with (W and b when the bug is in dL/dz, only one when it touches one tensor), both
under the engine's own convention: a bug in layer 1 of a half-SSE engine is in layer 1.
`modes`: "declared" checks without a loss_fn, "loss_fn" with the engine's own loss.

    python -m tests.corpus.run --bugs            # every bug: caught in how many cases, named where
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from . import bugs_loops as lp
from . import bugs_vectorised as vc

BOTH = ("declared", "loss_fn")


@dataclass(frozen=True)
class Bug:
    name: str
    engine: str            # the corpus engine it is a copy of (its layout, loss_fn and targets)
    fn: object
    arch: tuple[str, str, str]
    layer: int
    tensors: tuple[str, ...]
    what: str
    modes: tuple[str, ...] = BOTH
    loss: object = None    # a loss_fn of its own, when the engine's cannot run this arch
    correct: str = ""      # the correct engine to diff against, when not `engine` (which cannot run this arch)


BUGS: tuple[Bug, ...] = (
    Bug("nielsen_sp_of_next_layer", "nielsen_quadratic", lp.nielsen_sp_of_next_layer,
        ("3-3-3-1", "sigmoid,sigmoid,sigmoid", "mse"), 2, ("W2", "b2"),
        "sigma'(z) of the layer above: zs[-layer + 1] for zs[-layer] (half-SSE engine)"),
    Bug("nielsen_bias_not_accumulated", "nielsen_quadratic", lp.nielsen_bias_not_accumulated,
        ("3-4-2", "sigmoid,sigmoid", "mse"), 2, ("b2",),
        "nabla_b = delta_nabla_b: each sample overwrites the bias sum, only the last one counts"),
    Bug("nielsen_mse_last_sample_dropped", "nielsen_mse", lp.nielsen_mse_last_sample_dropped,
        ("3-4-2", "tanh,sigmoid", "mse"), 2, ("W2", "b2"),
        "for k in range(len(x) - 1): the last sample never backpropagated"),
    Bug("nielsen_ce_quadratic_delta", "nielsen_cross_entropy", lp.nielsen_ce_quadratic_delta,
        ("3-4-2", "sigmoid,sigmoid", "bce"), 2, ("W2", "b2"),
        "the quadratic cost's delta (a - y) sigma'(z) kept with the cross-entropy cost"),
    Bug("cs231n_relu_mask_from_input", "cs231n_layers", lp.cs231n_relu_mask_from_input,
        ("4-4-4-3", "relu,relu,softmax", "cross_entropy"), 2, ("W2", "b2"),
        "relu_backward given the affine layer's input (fc[0]) for its own cache"),
    Bug("keras_shared_activation", "keras_style", lp.keras_shared_activation,
        ("3-4-4-2", "elu,elu,identity", "huber"), 1, ("W1", "b1"),
        "one ELU object shared by both hidden layers: the first layer's backward reads the second's input",
        loss=lp.keras_shared_activation_loss, correct="any_arch"),
    Bug("twolayer_reg_not_doubled", "cs231n_twolayer_l2", vc.twolayer_reg_not_doubled,
        ("5-6-3", "relu,softmax", "cross_entropy"), 2, ("W2",),
        "d/dW of reg * sum(W**2) written reg * W (the 2 forgotten), in every W"),
    Bug("twolayer_reg_on_b2", "cs231n_twolayer_l2", vc.twolayer_reg_on_b2,
        ("5-6-3", "relu,softmax", "cross_entropy"), 2, ("b2",),
        "the output bias decayed in the gradient (2 reg b2) but not in the loss"),
    Bug("ng_m_from_rows", "ng_course", vc.ng_m_from_rows,
        ("3-9-1", "relu,sigmoid", "bce"), 2, ("W2", "b2"),
        "linear_backward: m = A_prev.shape[0] (features) where the batch is shape[1]"),
    Bug("ng_sigmoid_backward_of_dA", "ng_course", vc.ng_sigmoid_backward_of_dA,
        ("3-4-1", "relu,sigmoid", "bce"), 2, ("W2", "b2"),
        "sigmoid_backward computes s from dA where the cached Z was meant"),
    Bug("half_sse_tanh_prime_of_input", "half_sse", vc.half_sse_tanh_prime_of_input,
        ("3-3-3-1", "tanh,tanh,identity", "mse"), 2, ("W2", "b2"),
        "tanh' from the layer's input h[i] instead of its output h[i + 1] (half-SSE engine)"),
    Bug("summed_ce_sigma_prime_of_input", "summed_ce", vc.summed_ce_sigma_prime_of_input,
        ("3-3-3", "sigmoid,softmax", "cross_entropy"), 1, ("W1", "b1"),
        "sigma' of layer 1 from outs[i - 2] (the input x) instead of outs[i - 1] (summed-CE engine)"),
    Bug("l2_half_lambda", "l2_course", vc.l2_half_lambda,
        ("3-5-2", "sigmoid,identity", "mse"), 2, ("W2",),
        "d/dW of lambda/2 sum(W**2) taken as lambda/2 W, in every W"),
    Bug("float32_divides_by_batch", "float32_net", vc.float32_divides_by_batch,
        ("4-6-2", "tanh,sigmoid", "mse"), 2, ("W2", "b2"),
        "the MSE gradient divided by the batch only, not by batch * n_out"),
    Bug("relu_prime_from_activation", "relu_prime_one", vc.relu_prime_from_activation,
        ("3-5-2", "relu,identity", "mse"), 1, ("W1", "b1"),
        "relu'(z) = (z >= 0) applied to the activation a = relu(z) >= 0: always 1"),
    Bug("textbook_softmax_over_batch", "softmax_ce_textbook", vc.textbook_softmax_over_batch,
        ("4-8-3", "tanh,softmax", "cross_entropy"), 2, ("W2", "b2"),
        "softmax in the backward normalised over axis 0 (the batch) instead of the classes"),
    Bug("clipped_bce_mask_of_own_z", "clipped_bce", vc.clipped_bce_mask_of_own_z,
        ("3-4-4-1", "leaky_relu,leaky_relu,sigmoid", "bce"), 2, ("W2", "b2"),
        "leaky_relu' mask from zs[l - 1] (the layer above's z, broadcast) for zs[l - 2]"),
    Bug("any_arch_next_activation", "any_arch", vc.any_arch_next_activation,
        ("3-4-4-2", "tanh,sigmoid,identity", "mse"), 2, ("W2", "b2"),
        "activation derivative looked up as activations[l - 1]: the layer above's kind"),
    Bug("any_arch_huber_abs", "any_arch", vc.any_arch_huber_abs,
        ("3-4-2", "elu,softplus", "huber"), 2, ("W2", "b2"),
        "huber' written min(|r|, delta): the sign of negative residuals lost"),
    Bug("column_sigmoid_prime_of_z", "any_arch_column", vc.column_sigmoid_prime_of_z,
        ("3-4-2", "sigmoid,identity", "mse"), 1, ("W1", "b1"),
        "sigmoid' written Z * (1 - Z) with the pre-activation where A was meant (column layout)"),
    Bug("gelu_phi_without_z", "gelu_erf", vc.gelu_phi_without_z,
        ("3-4-2", "gelu,identity", "mse"), 1, ("W1", "b1"),
        "GELU' written Phi(z) + phi(z): the z of z * phi(z) dropped"),
    Bug("gelu_phi_only", "gelu_erf", vc.gelu_phi_only,
        ("3-5-2", "gelu,identity", "mse"), 1, ("W1", "b1"),
        "GELU' written Phi(z): the product rule's z * phi(z) term dropped"),
    Bug("softmax_mse_jacobian_plus", "softmax_mse", vc.softmax_mse_jacobian_plus,
        ("3-4-3", "sigmoid,softmax", "mse"), 2, ("W2", "b2"),
        "softmax Jacobian diag(p) + p p^T: the sign of the outer product flipped"),
    Bug("tape_forward_order", "tape_autodiff", vc.tape_forward_order,
        ("3-4-2", "tanh,identity", "mse"), 2, ("W2", "b2"),
        "the tape's topological order walked forwards, not reversed: every gradient stays 0"),
    Bug("tape_tanh_prime_of_input", "tape_autodiff", vc.tape_tanh_prime_of_input,
        ("3-4-2", "tanh,identity", "mse"), 1, ("W1", "b1"),
        "tanh' written 1 - z**2 from the node's input instead of 1 - y**2 from its output"),
)

CASES_PER_BUG = 30
# A tensor differs when ||bug - correct|| > PLACE * max(||bug||, ||correct||) (in float64: where the bug
# is); a float64 case must reveal the bug when some tensor differs by more than REVEAL. (float32 cases
# are not held to it: a saturated layer's gradient can sit below float32 rounding.)
PLACE = 1e-9
REVEAL = {"float64": 1e-6, "float32": float("inf")}
# Below VISIBLE (~100 float32 eps) a float32 case's gradient cannot show the bug over its own rounding: such a
# case, ENGINE for its convention alone (half SSE without its loss_fn), is not held to name the bug's layer.
VISIBLE = {"float64": 0.0, "float32": 1e-5}


def bug(name: str) -> Bug:
    return next(b for b in BUGS if b.name == name)


def check(b: Bug, mode: str, cases: int = CASES_PER_BUG, seed: int = 0):
    """check_gradients on the bug, as its engine is checked (layout, dtypes, regimes, targets)."""
    import bpcheck
    from bpcheck import Arch

    from .run import IN_PROCESS, Plan, _cases_in, accepts, engine

    mod = engine(b.engine)
    info = mod.ENGINE
    kwargs: dict = dict(layout=info["layout"], seed=seed, **IN_PROCESS)
    if mode == "loss_fn":
        kwargs["loss_fn"] = b.loss or getattr(mod, info["loss"])
    if info["dtypes"]:
        kwargs["dtype"] = info["dtypes"]
    if info["weight_decay"] is not None and accepts("weight_decay"):
        kwargs["weight_decay"] = info["weight_decay"]
    if info["targets"] == ("onehot",) and accepts("targets"):
        kwargs["targets"] = "onehot"
    arch = Arch.parse(*b.arch)
    regimes = info.get("regimes")
    drawn = cases if regimes is None else _cases_in(arch, Plan(b.engine, mode, "", seed, cases), regimes, info)
    return bpcheck.check_gradients(b.fn, arch, cases=drawn, **kwargs)


def truth(b: Bug, case) -> tuple[int | None, tuple[str, ...], float]:
    """Where the bug shows on this case, found without bpcheck: the bug and its correct engine on the case
    in float64, diffed tensor by tensor. (first differing layer from the output, its differing tensors,
    the largest relative difference); (None, (), 0.0) when they agree."""
    import numpy as np

    from bpcheck.byo import resolve_layout

    from .run import engine

    info = engine(b.engine).ENGINE
    ref_mod = engine(b.correct or b.engine)
    ref_info = ref_mod.ENGINE
    c = case.astype("float64")
    lay = resolve_layout(info["layout"])

    def call(fn, takes_arch):
        p, x, y = lay.to_user(c.arch, c.params, c.x, c.y)
        out = fn(*((c.arch,) if takes_arch else ()), p, x, y)
        return {k: np.asarray(v, dtype=np.float64) for k, v in lay.from_user(c.arch, out).items()}

    got = call(b.fn, info["takes_arch"])
    want = call(getattr(ref_mod, ref_info["grads"]), ref_info["takes_arch"])
    rel = {}
    for k, w in want.items():
        scale = max(np.linalg.norm(w), np.linalg.norm(got[k]))
        rel[k] = float(np.linalg.norm(got[k] - w) / scale) if scale > 0 else 0.0
    for layer in range(c.arch.n_layers, 0, -1):
        bad = tuple(k for k in (f"W{layer}", f"b{layer}") if rel[k] > PLACE)
        if bad:
            return layer, bad, max(rel.values())
    return None, (), 0.0


def judge(b: Bug, result) -> dict:
    """Per case: what bpcheck said against where the bug is. caught: ENGINE cases; misplaced: ENGINE verdicts
    that name another layer or lead with a tensor that does not differ (a verdict that names no layer, as
    fd:loss_fn's when its noise hides the bug's layer, is not counted unless no verdict of the case names one;
    a float32 case whose gradient the bug changes by less than VISIBLE is not judged); missed: float64 cases
    revealing the bug (REVEAL) not labelled ENGINE."""
    from bpcheck import Case

    out = {"cases": len(result.outcomes), "revealed": 0, "caught": 0, "misplaced": [], "missed": [], "as_listed": 0}
    for o in result.outcomes:
        if o.result is None:
            out["missed"].append(f"{o.describe}: {o.label} {o.explanation}")
            continue
        case = Case.from_dict(o.result.case)
        layer, tensors, rel = truth(b, case)
        out["as_listed"] += layer == b.layer and bool(set(tensors) & set(b.tensors))
        revealed = rel > REVEAL[case.x.dtype.name]
        out["revealed"] += revealed
        if o.label != "ENGINE":
            if revealed:
                out["missed"].append(f"{o.describe}: {o.label} (rel diff {rel:.1e})")
            continue
        out["caught"] += 1
        if rel <= VISIBLE[case.x.dtype.name]:
            continue  # ENGINE for another reason (the engine's convention): the bug does not show at this precision
        named = [v for v in o.result.verdicts if v.label == "ENGINE" and v.first_bad_layer is not None]
        if not named:
            out["misplaced"].append(f"{o.describe}: no ENGINE verdict names a layer, the bug shows in layer {layer} "
                                    f"{'/'.join(tensors)}")
        for v in named:
            worst = v.worst_tensor()
            if v.first_bad_layer != layer or worst is None or worst.name not in tensors:
                out["misplaced"].append(f"{o.describe}: {v.reference} names layer {v.first_bad_layer} "
                                        f"{worst.name if worst else None}, the bug shows in layer {layer} {'/'.join(tensors)}")
    return out


def placements(result) -> Counter:
    """(first bad layer, leading tensor) of every ENGINE verdict of every ENGINE case -> count."""
    seen: Counter = Counter()
    for o in result.outcomes:
        if o.label != "ENGINE" or o.result is None:
            continue
        for v in o.result.verdicts:
            if v.label == "ENGINE":
                worst = v.worst_tensor()
                seen[(v.reference, v.first_bad_layer, worst.name if worst else None)] += 1
    return seen


def survey_bugs(names: list[str]) -> None:
    for b in BUGS:
        if names and b.name not in names:
            continue
        for mode in b.modes:
            result = check(b, mode)
            j = judge(b, result)
            found = ", ".join(sorted({f.check for f in result.findings}))
            print(f"{b.name:34s} {mode:8s} layer {b.layer} {'/'.join(b.tensors):6s} caught {j['caught']:2d} of "
                  f"{j['cases']} (revealed in {j['revealed']}), misplaced verdicts {len(j['misplaced'])}, "
                  f"missed {len(j['missed'])}{'; findings: ' + found if found else ''}")
            for line in (j["misplaced"][:3] + j["missed"][:3]):
                print(f"      {line}")
