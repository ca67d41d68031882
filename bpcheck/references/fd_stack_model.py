"""Finite differences for any layer stack: the model the FD evaluates, and how a perturbation climbs it.

The loss is evaluated only through each layer's `reference` forward (layers/base.py: an independent numpy
forward taking a leading axis of K copies), never the engine's `forward`, and through the declared loss
(ops.LOSS_RULES on the targets; weight decay is added in closed form by fd_stack): the judge shares no
code with the judged. fd_stack.py runs finite_diff.family_difference over every family on top of this.

Speed comes from carrying up only what a perturbation can move:
 - the unperturbed activations are cached, so the layers below a perturbed one never run again;
 - a dense or conv weight moves one column or channel of the layer's output by a known slice (fd_stack_perturb);
 - a change confined to one channel stays one channel through layers that act per channel (activations but
   softmax, pools, batchnorm) and through flatten (as a block of features); a dense or conv layer fed such a
   change moves by its reference applied to the change alone (affine: linear in it, bias left out); any
   other layer gets full copies, the channel scattered into the unperturbed values;
 - a change confined to one sample (an x coordinate) stays one sample through per-sample layers.
Kinks: a copy at +-h whose input to some layer gives another `pattern` (relu's sign, max-pool's argmax) than
the unperturbed point there, or whose output moves the loss to another region (huber), crossed a kink.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..layers import LAYERS
from ..ops import LOSS_RULES
from ..spec import LOSS_OUTPUT, SpecError
from .loss_change import LossChange

# Kinds whose output channel c depends only on input channel c (params sliced by channel where they have one).
CHANNEL_WISE = frozenset({"activation", "maxpool2d", "avgpool2d", "batchnorm"})
WINDOWED = frozenset({"maxpool2d", "avgpool2d"})  # pools whose reference reduces windows of the last two axes
LINEAR = frozenset({"dense", "conv2d"})  # affine in their input: a change in one channel moves the output linearly
ROW_COUPLED_FNS = frozenset({"softmax"})  # an activation that mixes the entries of a row
# Kinds whose reference depends on the batch's shape (dropout's mask is drawn for x.shape): never sliced.
SHAPE_DRAWN = frozenset({"dropout"})


@dataclass
class Moved:
    """K perturbed copies of one layer's input or output, holding only the part that can differ.

    values (K, B', C', ...): B' = B, or 1 when rows (K,) names the one sample copy k moved; C' = C, or 1
    when ch (K,) names the one channel (axis 2; the feature of a 1-D shape) copy k moved. split: the
    per-sample shape seen as (C, ...) for that cut, where it is not the natural one (a flattened image:
    (C, H*W), so channel c is the block of features c*H*W..(c+1)*H*W).
    """

    values: np.ndarray
    rows: np.ndarray | None = None
    ch: np.ndarray | None = None
    split: tuple[int, ...] | None = None


def logits_head(layers: list[tuple[str, dict]], loss: str) -> list[tuple[str, dict]]:
    """The layers whose output the loss reads: for a loss fused with its output activation (bce with sigmoid,
    cross_entropy with softmax), that activation is left to the loss, as the engine and torch do."""
    needed = LOSS_OUTPUT.get(loss)
    if not needed or not layers:
        return list(layers)
    kind, config = layers[-1]
    if kind == "dense" and config.get("activation") == needed:
        return [*layers[:-1], (kind, {**config, "activation": "identity"})]
    if kind == "activation" and config.get("fn") == needed:
        return list(layers[:-1])
    return list(layers)


class Stack:
    """The unperturbed float64 forward through the references, and climbs of K perturbed copies."""

    def __init__(self, layers, in_shape, params: dict[str, np.ndarray], x: np.ndarray, targets: np.ndarray,
                 loss: str) -> None:
        self.configs = [dict(config) for _, config in logits_head(list(layers), loss)]
        self.kinds = [kind for kind, _ in logits_head(list(layers), loss)]
        self.layers = [LAYERS[kind] for kind in self.kinds]
        self.n = len(self.layers)
        self.shapes = [tuple(in_shape)]  # per sample: shapes[i] is layer i's input, shapes[n] the output
        self.p, self.keys = [], []  # local params per layer, and their global keys 'W1', 'gamma3', ...
        for i, (layer, config) in enumerate(zip(self.layers, self.configs)):
            local = layer.param_shapes(config, self.shapes[i])
            self.keys.append({name: f"{name}{i + 1}" for name in local})
            self.p.append({name: np.asarray(params[key], dtype=np.float64) for name, key in self.keys[-1].items()})
            self.shapes.append(tuple(layer.out_shape(config, self.shapes[i])))
        self.x = np.asarray(x, dtype=np.float64)
        self.B = len(self.x)
        self.acts = [self.x]
        for i in range(self.n):
            self.acts.append(self.reference(i, self.shared(i, 1), self.acts[i][None])[0])
        self.out = self.acts[-1]
        if self.out.ndim != 2:
            raise SpecError(f"the stack's output has per-sample shape {self.shapes[-1]}, but loss {loss!r} needs "
                            "a vector per sample: end the stack with flatten and dense")
        self.y = np.asfortranarray(np.asarray(targets, dtype=np.float64))
        self.rule = LOSS_RULES[loss]
        self.sample_loss = self.per_sample(self.out[None], None)[0]
        self.loss = float(self.rule.forward(self.out, self.y))
        if not np.isclose(self.sample_loss.mean(), self.loss, rtol=1e-12, atol=0):
            raise RuntimeError(f"loss {loss!r} is not the batch mean of per-sample losses, which fd_stack relies on")
        self.loss_regions = self.rule.regions(self.out, self.y) if self.rule.kink else None
        self.change = LossChange(loss, self.out, self.y)
        self._home: dict[int, np.ndarray | None] = {}
        self._cache: dict[tuple, np.ndarray] = {}

    # -- evaluating one layer ---------------------------------------------------------------------------------
    def shared(self, i: int, k: int, ch: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Layer i's params for k copies: broadcast views (shared by every copy), sliced by channel if ch."""
        if ch is None:
            return {name: np.broadcast_to(v, (k, *v.shape)) for name, v in self.p[i].items()}
        return {name: v[ch][:, None] for name, v in self.p[i].items()}  # (C,) -> (K, 1): a per-channel param

    def reference(self, i: int, params: dict, x: np.ndarray) -> np.ndarray:
        if self.kinds[i] in WINDOWED and x.ndim > 3 and x.size > 4096:
            # Same values and shape, the two image axes outermost in memory: numpy then reduces each window
            # across the long copy/sample/channel axes at once. sliding_window_view(...).max over a
            # (32, 8, 32, 11, 11) input took 67 ns an entry in C order and 2.3 ns laid out this way.
            x = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, (-2, -1), (0, 1))), (0, 1), (-2, -1))
        return np.asarray(self.layers[i].reference(self.configs[i], params, x), dtype=np.float64)

    def reference_as(self, i: int, change: dict) -> np.ndarray:
        """Layer i at the unperturbed point with its config changed (a dense layer's z: activation 'identity')."""
        config = {**self.configs[i], **change}
        return np.asarray(self.layers[i].reference(config, self.shared(i, 1), self.acts[i][None]), dtype=np.float64)

    def pattern(self, i: int, params: dict, x: np.ndarray) -> np.ndarray | None:
        fn = self.layers[i].pattern
        found = None if fn is None else fn(self.configs[i], params, x)
        return None if found is None else np.asarray(found)

    def home_pattern(self, i: int) -> np.ndarray | None:
        """Layer i's pattern at the unperturbed point, (1, ...)."""
        if i not in self._home:
            self._home[i] = self.pattern(i, self.shared(i, 1), self.acts[i][None])
        return self._home[i]

    def home_cut(self, i: int, mv: Moved, params: dict) -> np.ndarray | None:
        """Layer i's pattern at the unperturbed point, cut like mv (its input). A pattern laid out like its input
        on the leading (copy, sample, channel) axes (relu's signs, max-pool's argmax per window) is cut from the
        full one; any other is computed on the cut input."""
        home = self.home_pattern(i)
        if mv.rows is None and mv.ch is None or home is None:
            return home
        if mv.split is None and home.shape[:3] == (1, *self.acts[i].shape[:2]):
            return self.gather(home[0], mv)
        return self.pattern(i, params, self.gather(self.acts[i], mv))

    def channel_wise(self, i: int, split: bool = False) -> bool:
        """Does layer i map channel c to channel c alone? With split (a flattened image's blocks), only an
        elementwise layer does."""
        fn = self.configs[i].get("fn")
        kinds = ("activation",) if split else CHANNEL_WISE
        return self.kinds[i] in kinds and fn not in ROW_COUPLED_FNS

    def sample_wise(self, i: int) -> bool:
        return self.layers[i].per_sample and self.kinds[i] not in SHAPE_DRAWN

    # -- moving between sliced and full copies ----------------------------------------------------------------
    def gather(self, arr: np.ndarray, mv: Moved) -> np.ndarray:
        """The unperturbed arr (B, ...) cut like mv: (1 or K, B', C', ...), in mv's split."""
        if mv.ch is not None and mv.split is not None:
            arr = arr.reshape(len(arr), *mv.split)
        if mv.rows is None:
            return arr[None] if mv.ch is None else np.moveaxis(arr[:, mv.ch], 1, 0)[:, :, None]
        return arr[mv.rows][:, None] if mv.ch is None else arr[mv.rows, mv.ch][:, None, None]

    def widen(self, arr: np.ndarray, mv: Moved, channels: bool, rows: bool) -> Moved:
        """mv as full copies of arr (the unperturbed value at that point) along channels and/or rows."""
        k = len(mv.values)
        if channels and mv.ch is not None:
            base = self.gather(arr, Moved(mv.values, mv.rows))
            full = np.array(np.broadcast_to(base, (k, *base.shape[1:])))
            full[np.arange(k), :, mv.ch] = mv.values[:, :, 0]
            mv = Moved(full.reshape(k, full.shape[1], *arr.shape[1:]), mv.rows)
        if rows and mv.rows is not None:
            base = arr[None] if mv.ch is None else self.gather(arr, Moved(arr, None, mv.ch, mv.split))
            full = np.array(np.broadcast_to(base, (k, self.B, *mv.values.shape[2:])))
            full[np.arange(k), mv.rows] = mv.values[:, 0]
            mv = Moved(full, None, mv.ch, mv.split)
        return mv

    # -- climbing ---------------------------------------------------------------------------------------------
    def step(self, i: int, mv: Moved, crossed: np.ndarray) -> Moved:
        """Layer i on mv (its input), kinks of the first len(crossed) copies or'ed into crossed."""
        mv = self.widen(self.acts[i], mv, channels=False, rows=not self.sample_wise(i))
        if mv.ch is not None and self.kinds[i] in LINEAR:
            return self._linear_step(i, mv, crossed)
        if mv.ch is not None and self.kinds[i] == "flatten" and mv.split is None:
            # channel c of (C, H, W) is the block c of the flattened features: the cut survives flatten
            flat = self.reference(i, {}, mv.values)
            return Moved(flat[:, :, None, :], mv.rows, mv.ch, (self.shapes[i][0], flat.shape[-1]))
        mv = self.widen(self.acts[i], mv, channels=not self.channel_wise(i, mv.split is not None), rows=False)
        params = self.shared(i, len(mv.values), mv.ch)
        n = len(crossed)
        if n and self.layers[i].pattern is not None:
            new = self.pattern(i, {k: v[:n] for k, v in params.items()}, mv.values[:n])
            crossed |= differs(new, self.home_cut(i, _head(mv, n), {k: v[:n] for k, v in params.items()}))
        return Moved(self.reference(i, params, mv.values), mv.rows, mv.ch, mv.split)

    def _linear_step(self, i: int, mv: Moved, crossed: np.ndarray) -> Moved:
        """A dense or conv layer whose input moved in one channel (block of features): its affine part is
        linear, so the output moves by the layer's reference applied to that change alone, with the weights
        that channel meets and no bias; a dense layer's activation then runs on the moved z (the activation
        kind's reference and pattern)."""
        k = len(mv.values)
        change = mv.values - self.gather(self.acts[i], mv)
        w = self.p[i]["W"]
        if self.kinds[i] == "dense":
            config = {**self.configs[i], "activation": "identity"}
            blocks = w.reshape(*(mv.split or (w.shape[0], 1)), w.shape[1])[mv.ch]  # (K, block, n)
            moved = self.layers[i].reference(config, {"W": blocks, "b": np.zeros((k, w.shape[1]))},
                                             change.reshape(k, change.shape[1], -1))
            z_base = self.cached(("z", i), lambda: self.reference_as(i, {"activation": "identity"}))[0]
            home = self.gather(z_base, Moved(None, mv.rows))
            return Moved(self.activate(self.configs[i]["activation"], home + moved, home, crossed), mv.rows)
        weights = np.moveaxis(w[:, mv.ch], 1, 0)[:, :, None]  # (K, F, 1, kh, kw)
        moved = self.layers[i].reference(self.configs[i], {"W": weights, "b": np.zeros((k, w.shape[0]))}, change)
        return Moved(self.gather(self.acts[i + 1], Moved(None, mv.rows)) + moved, mv.rows)

    def activate(self, fn: str, z: np.ndarray, home_z: np.ndarray, crossed: np.ndarray) -> np.ndarray:
        """act(z) by the activation kind's reference; kinks: its pattern on the first len(crossed) copies."""
        if fn == "identity":
            return z
        act, config = LAYERS["activation"], {"fn": fn}
        n = len(crossed)
        if n and act.pattern is not None:
            crossed |= differs(act.pattern(config, {}, z[:n]), act.pattern(config, {}, home_z[:n]))
        return np.asarray(act.reference(config, {}, z), dtype=np.float64)

    def climb(self, start: int, mv: Moved, crossed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """mv is the input of layer start: run it and every layer above, then the loss. Returns
        (L(copy) - L, (K,); crossed (n_kink,))."""
        for i in range(start, self.n):
            mv = self.step(i, mv, crossed)
        return self.finish(mv, crossed)

    def per_sample(self, out: np.ndarray, rows) -> np.ndarray:
        """l_b for out (K, B', n): the loss rule on one-row batches, (K, B')."""
        y = self.y[None] if rows is None else self.y[rows]
        return self.rule.forward(out[..., None, :], y[..., None, :])

    def finish(self, mv: Moved, crossed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sum of per-sample loss changes / B, (K,); crossed or'ed with the loss's region changes)."""
        mv = self.widen(self.out, mv, channels=True, rows=False)
        rows = None if mv.rows is None else mv.rows[:, None]
        out = mv.values
        base_out = self.out[None] if rows is None else self.out[rows]
        d = out - base_out
        if self.change.fits(d):
            return self.change(d, rows).sum(axis=-1) / self.B, crossed
        n = len(crossed)
        if self.rule.kink and n:
            y = self.y[None] if rows is None else self.y[rows[:n]]
            home = self.loss_regions[None] if rows is None else self.loss_regions[rows[:n]]
            crossed |= differs(self.rule.regions(out[:n], y), home)
        base = self.sample_loss[None] if rows is None else self.sample_loss[rows]
        return (self.per_sample(out, rows) - base).sum(axis=-1) / self.B, crossed

    def cached(self, key: tuple, make) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    # -- sizes, for chunking ----------------------------------------------------------------------------------
    def per_copy(self, start: int, rows: bool, ch: bool) -> int:
        """Entries of the largest array one copy needs when a change cut by (rows, ch) enters layer start."""
        parts, split, biggest = (self.shapes[start][0] if ch else 1), False, 0
        for i in range(start, self.n):
            rows = rows and self.sample_wise(i)
            size_in = math.prod(self.shapes[i]) // parts
            if ch and self.kinds[i] in LINEAR:
                ch, parts = False, 1
            elif ch and self.kinds[i] == "flatten" and not split:
                split = True
            elif ch and not self.channel_wise(i, split):
                ch, parts, size_in = False, 1, math.prod(self.shapes[i])
            size_out = math.prod(self.shapes[i + 1]) // parts
            biggest = max(biggest, max(size_in, size_out) * (1 if rows else self.B))
        return max(biggest, math.prod(self.shapes[self.n]) * self.B)


def _head(mv: Moved, n: int) -> Moved:
    return Moved(mv.values[:n], None if mv.rows is None else mv.rows[:n], None if mv.ch is None else mv.ch[:n], mv.split)


def differs(new: np.ndarray | None, home: np.ndarray | None) -> np.ndarray | bool:
    """Per copy: does the pattern differ from home anywhere? (new (n, ...), home (1 or n, ...))."""
    if new is None or home is None:
        return False
    return (new != home).reshape(len(new), -1).any(axis=1)
