"""A corpus of backprop written by "other people": independent engines in many styles, and planted bugs.

Every module under tests/corpus/ is written from the maths and bpcheck's user contract only (README,
"Checking your own backprop"), never from bpcheck's engine, ops, mutants or conventions, so that
bpcheck is tested on code it did not write. Each engine module declares, as plain data next to its
code, an ENGINE dict:

    style            how it is written
    grads, loss      the names of its gradient function and of its own loss_fn (or None)
    layout           "row" or "column" (bpcheck's --layout)
    takes_arch       True for grads(arch, params, x, y)
    activations      the activations it implements; losses: the losses it implements
    targets          for bce / cross_entropy: the target rows it expects ("onehot", "probs"), else None
    archs            fixed architectures to check: (sizes, activations, loss) strings for Arch.parse
    random_archs     for takes_arch: limits of the random architectures (max_depth, max_width), else None
    dtypes           None (float64 and float32) or the dtypes it computes in
    weight_decay     lambda of an L2 term lambda/2 * sum(W**2) in its loss and gradient, else None
    loss_convention  "declared" when its loss is the declared (torch-default) loss, else what it is
    regimes          (optional) the regimes it is numerically sound in; all when absent
    returns_dx       (optional) True when its result also holds dL/dx under "x"

bugs.py holds the planted bugs: each a copy of one engine's function with one realistic bug, and
where the report must place it.
"""

ENGINES: tuple[str, ...] = (
    "nielsen_quadratic", "nielsen_mse", "nielsen_cross_entropy", "cs231n_layers", "cs231n_twolayer_l2",
    "ng_course", "half_sse", "summed_ce", "l2_course", "float32_net", "relu_prime_one", "softmax_ce_textbook",
    "clipped_bce", "any_arch", "any_arch_column", "keras_style", "gelu_erf", "softmax_mse", "tape_autodiff",
    "returns_dx", "leaky_slope_02", "deep_tanh", "multilabel_bce", "gelu_tanh_gpt2",
)
