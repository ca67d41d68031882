"""Where a stack's disagreement starts, by layer key and kind, and which known bug of which layer it follows.

An MLP has a dz trace and its own derivative forms (diagnose.py). Any other stack is diagnosed layer by layer:

  the first layer from the output whose tensors disagree is named by its position, kind and first bad tensor
  ('layer 1 (conv2d) dW1'); with a dout trace from the producer (localised_by 'da') that is the buggy layer;
  with params only (a user's function) the bug lies in that layer or in a layer above it up to the next layer
  whose params agree (a max-pool or relu above has none), so each of those is a candidate.

For each candidate layer k, from the output down, each of its kind's bug shapes (bpcheck.layers.bugs: the
registry's, then the generic ones) is a hypothesis: the gradient of the stack with layer k's backward replaced
by that bug (engine.backward(swap=), on the layers' forward of the float64 case; under the loss a convention's
gradient follows when the reference is that gradient, Gradients.meta['loss_rule']). The producer must agree with
it on every tensor it gave under the comparison's tolerance (the rounding scales read as for the convention
models: relative to the reference's norm). The engine serves as a model of the bug here, never as the judge:
whether the gradient is wrong was decided by the references.
"""

from __future__ import annotations

import numpy as np

from .. import engine
from ..layers.bugs import applicable, candidates
from ..references.layered import is_mlp
from ..results import Diagnosis
from ..spec import split_key
from .metrics import compare_tensor, norm


def locate(arch, bad: list[str], first_bad: tuple[int | None, str]) -> tuple[int | None, str]:
    """(layer, key): the first layer from the output that disagrees, with its first wrong tensor ('W3', 'x')."""
    layer, _ = first_bad
    if layer is None:
        return (None, "x") if "x" in bad else (None, "")
    own = [n for n in bad if n != "x" and n != "loss" and _position(n) == layer]
    return layer, (own[0] if own else "")


def where(arch, layer: int | None, key: str) -> str:
    """'layer 3 (conv2d) dW3', 'layer 4 (maxpool2d)', or 'dx' (below every layer)."""
    if layer is None:
        return f"d{key}" if key else ""
    text = f"layer {layer} ({arch.layers[layer - 1][0]})"
    return f"{text} d{key}" if key else text


def _position(name: str) -> int | None:
    try:
        return split_key(name)[1]
    except Exception:  # 'x', 'loss': no layer
        return None


def _layers_with_params(arch) -> list[int]:
    return sorted({p for n in arch.param_shapes() if (p := _position(n)) is not None})


def candidate_layers(arch, bad: list[str], first_bad: tuple[int | None, str], traced: bool) -> list[int]:
    """The layers the bug can be in, from the output down (see the module docstring). traced: the producer gave
    its dout trace, which agrees above the first bad layer, so that layer alone holds the bug."""
    layer, how = first_bad
    if how == "da" or (traced and layer is not None):
        return [layer]
    low = 1 if layer is None else layer
    above = [p for p in _layers_with_params(arch) if layer is None or p > layer]
    return list(range(above[0] if above else len(arch.layers), low - 1, -1))


def stack_bug(ctx, mine, ref, ref_name: str, tol, bad: list[str], first_bad: tuple[int | None, str],
              kink) -> Diagnosis | None:
    """The first (from the output) layer bug shape the producer's gradients follow, or None."""
    case = ctx.case64
    arch = case.arch
    if is_mlp(arch) or not bad:
        return None
    out, caches = engine.forward(arch, case.params, case.x)
    y = case.targets
    rule = ref.meta.get("loss_rule")  # the loss a convention's gradient follows (byo's relocalise), else the declared
    ours, theirs = mine.tensors(), ref.tensors()
    names = [n for n in ours if n in theirs and n != "loss"]
    fits = []  # (layer, bug, is the kind's own shape), at most one per layer
    for k in candidate_layers(arch, bad, first_bad, mine.dout is not None):
        kind, config = arch.layers[k - 1]
        own = applicable(kind, config, arch.shapes[k - 1])
        for bug in candidates(kind, config, arch.shapes[k - 1]):
            try:
                hyp = engine.backward(arch, case.params, caches, y, output=out, swap={k: bug.backward},
                                      loss_rule=rule).tensors()
            except Exception:  # a shape that cannot run on this input (an empty crop) is not this bug
                continue
            if all(_fits(ctx, tol, n, ours[n], hyp.get(n), theirs[n], kink(n)) for n in names):
                fits.append((k, bug, bug in own))
                break
    # A kind's own bug shape names the bug better than a generic one elsewhere that gives the same gradients
    # (conv2d's upstream gradient ignored = flatten's above it, on the params).
    fits = [f for f in fits if f[2]] or fits
    if len(fits) > 1:
        return _ambiguous(arch, fits, bad, first_bad)
    if fits and mine.dout is None and len(bad) == 1 and bad[0] != "x" and fits[0][0] != first_bad[0]:
        return _ambiguous(arch, fits, bad, first_bad, own=True)  # one wrong tensor: its own layer's bug fits it too
    return _named(arch, fits[0][0], fits[0][1], bad, first_bad) if fits else None


def _ambiguous(arch, fits, bad: list[str], first_bad, own: bool = False) -> Diagnosis:
    first, key = locate(arch, bad, first_bad)
    each = [f"layer {k} ({arch.layers[k - 1][0]}): {bug.says}" for k, bug, _ in fits]
    if own:
        each.append(f"a bug in {where(arch, first, key)} itself (the only tensor that disagrees)")
    name = " or ".join(each)
    sentence = (f"{name}: this case cannot tell them apart (the first tensor from the output that disagrees is "
                f"{where(arch, first, key)})")
    layers = [k for k, _, _ in fits] + ([first] if own and first is not None else [])
    params = (("layer", fits[0][0]), ("layers", ",".join(map(str, layers))),
              ("kind", arch.layers[fits[0][0] - 1][0]), ("shape", fits[0][1].code), ("key", key))
    return Diagnosis("layer_bug_ambiguous", name, sentence, params)


def _fits(ctx, tol, name: str, e, h, r, kink) -> bool:
    if h is None or np.shape(e) != np.shape(h):
        return False
    d = norm(r)
    ratio = norm(h) / d if d > 0 else 1.0
    scale = max(ratio, 1.0) * ctx.scales.get(name, 0.0)
    return compare_tensor(name, np.asarray(e), np.asarray(h), tol, scale, kink=kink).ok


def _named(arch, k: int, bug, bad: list[str], first_bad) -> Diagnosis:
    kind = arch.layers[k - 1][0]
    first, key = locate(arch, bad, first_bad)
    at = where(arch, k, key if first == k else "")
    sentence = f"{at}: {bug.says}"
    if first != k:
        sentence += f"; the first tensor from the output that disagrees is {where(arch, first, key)}"
    params = (("layer", k), ("kind", kind), ("shape", bug.code), ("key", key))
    return Diagnosis("layer_bug", f"layer {k} ({kind}): {bug.says}", sentence, params)


def located(arch, found: Diagnosis | None, bad: list[str], first_bad, traced: bool) -> Diagnosis | None:
    """A stack's diagnosis that names no layer (a factor, zeros, unexplained) prefixed with where it starts and,
    without the producer's trace, the layers the bug can be in (a layer's dL/d(input) shows only below it)."""
    if found is None or is_mlp(arch) or found.get("kind") is not None:
        return found
    layer, key = locate(arch, bad, first_bad)
    at = where(arch, layer, key)
    if not at:
        return found
    kind = arch.layers[layer - 1][0] if layer is not None else ""
    sentence = f"{at} is the first {'tensor from the output that' if key else 'whose dL/d(input)'} disagrees"
    span = candidate_layers(arch, bad, first_bad, traced)
    if len(span) > 1:
        kinds = ", ".join(arch.layers[k - 1][0] for k in reversed(span))
        sentence += f" (the bug is in one of layers {span[-1]}-{span[0]}: {kinds})"
    return Diagnosis(found.code, found.name, f"{sentence}; {found.sentence}", found.params + (
        ("layer", layer), ("kind", kind), ("key", key), ("layers", ",".join(map(str, span)))))
