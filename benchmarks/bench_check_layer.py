"""check-layer side by side with how course users check a layer today, on the independent layer corpus.

    python -m benchmarks.bench_check_layer [--cases 20] [--seed 0] [--refs fd,torch]

For every entry of tests/layer_corpus (the correct layers, the planted bugs, and the torch.autograd.Function
entries), three ways to check it, each timed whole:

  bpcheck      bpcheck.check_layer(forward, backward, layer=..., cases=N): its own drawn cases; a bug counts as
               caught when the result is not ok (CONVENTION, the two convention-only entries, is a pass)
  cs231n       the assignments' eval_numerical_gradient_array (eval_numerical_gradient for the loss) for every
               argument on each of the entry's corpus cases (the notebooks' fixed shapes), rel_error against the
               analytic backward; flagged when rel_error > 1e-7, where the notebooks call a gradient correct
  gradcheck    torch.autograd.gradcheck (float64, its default tolerances) on each corpus case, of the course
               forward/backward wrapped in a torch.autograd.Function (of the Function itself for torch entries);
               an error it raises (a gradient of the wrong shape) counts as a catch

Printed: a table of caught / false alarms / time per method, then one line per bug a method missed and per correct
layer it flagged.
"""

from __future__ import annotations

import argparse
import copy
import io
import time
import warnings
from contextlib import redirect_stdout

import numpy as np

from tests.layer_corpus import cases as corpus_cases
from tests.layer_corpus import manifest as m
from tests.layer_corpus.cs231n_gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error

CS231N_CORRECT = 1e-7


def _layer(impl) -> str:
    return "spatial_batchnorm" if impl.layer == "batchnorm" and impl.fits is m.four_d else impl.layer


def bpcheck_flags(impl, cases: int, seed: int, refs: str) -> bool:
    from bpcheck.layercheck import check_layer

    if isinstance(impl, m.Autograd):
        return not check_layer(impl.load(), layer=impl.layer, cases=cases, seed=seed, references=refs, shrink=False).ok
    config = {"pool_height": 2, "pool_width": 2, "stride": 2} if impl.fits is m.tiling_pool else None
    if impl.fn is not None:
        result = check_layer(impl.fn, layer=_layer(impl), cases=cases, seed=seed, references=refs, shrink=False)
    else:
        result = check_layer(impl.forward, impl.backward, layer=_layer(impl), config=config, cases=cases, seed=seed,
                             references=refs, precision=impl.precision, shrink=False)
    return not result.ok


def cs231n_flags(impl, seed: int) -> bool:
    """True when some argument's rel_error exceeds the notebooks' bound on some corpus case (or the code raises)."""
    for case in impl.cases:
        try:
            if _cs231n_case(impl, case, corpus_cases.draw(case, seed), seed):
                return True
        except Exception:  # the student sees a traceback: caught
            return True
    return False


def _cs231n_case(impl, case, arrays: dict, seed: int) -> bool:
    if impl.fn is not None:
        x, y = arrays["x"], arrays["y"]
        _, dx = impl.fn(x.copy(), y)
        with redirect_stdout(io.StringIO()):
            num = eval_numerical_gradient(lambda xx: impl.fn(xx, y)[0], x.copy(), verbose=False)
        return rel_error(num, dx) > CS231N_CORRECT
    names, config = corpus_cases.ARGS[impl.layer], case.config

    def forward(*arrs):
        return impl.forward(*arrs, *([copy.deepcopy(config)] if config is not None else []))

    out, cache = forward(*[arrays[a].copy() for a in names])
    dout = corpus_cases.cotangent(case, np.shape(out), seed)
    grads = impl.backward(dout.copy(), cache)
    grads = list(grads) if isinstance(grads, (tuple, list)) else [grads]
    for i, name in enumerate(names):
        others = {a: arrays[a].copy() for a in names}

        def f(v, name=name, others=others):
            return forward(*[v if a == name else others[a] for a in names])[0]

        num = eval_numerical_gradient_array(f, arrays[name].copy(), dout)
        if i >= len(grads) or np.shape(grads[i]) != num.shape or rel_error(num, grads[i]) > CS231N_CORRECT:
            return True
    return False


def _wrapped(impl, config, y):
    import torch

    class Wrapped(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            arrays = [t.detach().numpy().copy() for t in tensors]
            if impl.fn is not None:
                loss, dx = impl.fn(arrays[0], y)
                ctx.cache = dx
                return torch.tensor(float(loss), dtype=torch.float64)
            out, cache = impl.forward(*arrays, *([copy.deepcopy(config)] if config is not None else []))
            ctx.cache = cache
            return torch.from_numpy(np.array(out, dtype=np.float64))

        @staticmethod
        def backward(ctx, dout):
            if impl.fn is not None:
                return torch.from_numpy(np.array(ctx.cache, dtype=np.float64)) * dout
            grads = impl.backward(dout.detach().numpy().copy(), ctx.cache)
            grads = grads if isinstance(grads, (tuple, list)) else (grads,)
            return tuple(torch.from_numpy(np.array(g, dtype=np.float64)) for g in grads)

    return Wrapped


def gradcheck_flags(impl, seed: int) -> bool | None:
    import torch

    if isinstance(impl, m.Autograd) and impl.framework != "torch":
        return None
    for case in impl.cases:
        arrays = corpus_cases.draw(case, seed)
        names = corpus_cases.ARGS[impl.layer] if impl.layer in corpus_cases.ARGS else impl.args
        fn = impl.load() if isinstance(impl, m.Autograd) else _wrapped(impl, case.config, arrays.get("y"))
        inputs = tuple(torch.tensor(arrays[a], dtype=torch.float64, requires_grad=True) for a in names)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if not torch.autograd.gradcheck(fn.apply, inputs, raise_exception=False):
                    return True
        except Exception:  # a wrong-shaped gradient: torch raises, the user sees it
            return True
    return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refs", default="fd,torch")
    args = parser.parse_args(argv)
    import torch  # noqa: F401  (imported once, before the clocks start)

    methods = {
        "bpcheck check-layer": lambda impl: bpcheck_flags(impl, args.cases, args.seed, args.refs),
        "cs231n eval_numerical_gradient_array": lambda impl: None if isinstance(impl, m.Autograd)
        else cs231n_flags(impl, args.seed),
        "torch.autograd.gradcheck (wrapped)": lambda impl: gradcheck_flags(impl, args.seed),
    }
    entries = [("correct", i) for i in m.CORRECT + m.AUTOGRAD_CORRECT] + \
        [("convention", i) for i in m.BUGS if i.convention] + \
        [("bug", i) for i in m.BUGS + m.AUTOGRAD_BUGS if not getattr(i, "convention", False)]
    rows, missed = [], []
    for method, flags in methods.items():
        counts = {"correct": [0, 0], "convention": [0, 0], "bug": [0, 0]}
        start = time.perf_counter()
        for group, impl in entries:
            flagged = flags(impl)
            if flagged is None:
                continue
            counts[group][1] += 1
            counts[group][0] += bool(flagged)
            if group == "bug" and not flagged:
                missed.append(f"{method} misses {impl.name}: {impl.what}")
            if group == "correct" and flagged:
                missed.append(f"{method} false alarm on {impl.name}: {impl.what}")
        seconds = time.perf_counter() - start
        rows.append((method, counts, seconds))
    print(f"check-layer side by side ({args.cases} drawn cases per entry for bpcheck, refs {args.refs}; the corpus's "
          f"fixed cases for the others; seed {args.seed})")
    print("| method | planted bugs caught | false alarms on correct layers | convention-only flagged | time (s) |")
    print("|---|---|---|---|---|")
    for method, counts, seconds in rows:
        (bug, nbug), (fa, ncor), (conv, nconv) = counts["bug"], counts["correct"], counts["convention"]
        print(f"| {method} | {bug} / {nbug} | {fa} / {ncor} | {conv} / {nconv} | {seconds:.1f} |")
    for line in missed:
        print(line)


if __name__ == "__main__":
    main()
