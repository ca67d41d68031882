"""Course-style single layers written by hand for check-layer (issue 16), independent of bpcheck's code.

    manifest.py          CORRECT, BUGS (numpy, cache style) and AUTOGRAD_CORRECT, AUTOGRAD_BUGS (torch.autograd.Function,
                         jax.custom_vjp) as plain data: what each is, which gradient a bug gets wrong, where it shows
    layers_vectorised.py, layers_loops.py, variants.py    the correct layers (variants: benign other ways to write them)
    bugs_dense.py, bugs_conv.py, bugs_norm.py             the planted bugs, each a correct layer with one `# BUG` edit
    torch_functions.py, jax_vjp.py                        the framework ones (import torch / jax at module level)
    cases.py             the shapes, configs and input regimes (ties, exact zeros, ones cotangent) entries run on
    truth.py             ground truth from torch autograd in float64
    cs231n_gradcheck.py  CS231n's eval_numerical_gradient_array and rel_error, for the side-by-side benchmark

    python -m tests.layer_corpus      every entry against torch, one line each
"""
