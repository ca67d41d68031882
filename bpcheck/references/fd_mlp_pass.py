"""The perturbed forward passes of the MLP-aware FD reference (fd_mlp): a net's unperturbed float64 forward,
and the loss change of K perturbed copies of it at once.

Perturbing W_l[i, j] by s changes z_l = a_{l-1} @ W_l + b_l only in column j, by s * a_{l-1}[:, i]
(b_l[j]: by s). So the forward below layer l is reused, the change goes into one column, and for an
elementwise activation layer l+1 gets the rank-1 update z_{l+1} += (a_l'[:, j] - a_l[:, j]) W_{l+1}[j, :];
only the layers above run, on a leading axis of K perturbed copies, K chunked to CHUNK_BYTES.
Samples whose a_l[:, j] did not move at all (a dead relu unit) are left out of those layers.
Perturbing x[b, i] or z_l[b, j] changes sample b only; every loss in LOSS_RULES is the batch mean
of per-sample losses, L = mean_b l_b, so such a perturbation is evaluated on that one sample.
Loss changes are formed per sample, (l_b' - l_b), before summing over the batch.

The K copies are laid out unit-major, (n, K B') in memory: a chunk of one column j of W_l (the copies
share j) builds its rank-1 update as one outer product over K B' contiguous entries, and the layers above
run as (n_{m+1}, n_m) @ (n_m, K B') GEMMs, in place where the activation is a ufunc and in two buffers
reused by every chunk (on a 64-280-280-2 tanh net this made the W_1 family about 3x faster than the
per-copy layout it replaced, with bit-identical values).
"""

from __future__ import annotations

import numpy as np

from ..engine import forward
from ..ops import LOSS_RULES, rule
from ..spec import Case
from .loss_change import LossChange

# Activations whose output column j depends on other columns of z; all others act elementwise.
ROW_COUPLED = frozenset({"softmax"})
SPARSE_BELOW = 0.75  # evaluate only the moved samples when fewer than this fraction moved


class Net:
    """The unperturbed float64 forward, and perturbed passes over a leading axis of K copies.

    rows picks the samples a pass evaluates: None for all B (arrays (K, B, n)), else an index array
    of shape (1, B') shared by every perturbation or (K, 1), one sample per perturbation.
    """

    def __init__(self, case: Case) -> None:
        self.arch, self.p, self.x, self.y = case.arch, case.params, case.x, case.targets
        # Unit-major like the perturbed outputs (_unit_outer), so the loss's y * log_softmax(z) streams in
        # order: the loss of a 100-90-10 net's W1 family ran ~20% faster, with bit-identical values.
        self.y = np.asfortranarray(self.y)
        self.L, self.B = case.arch.n_layers, case.batch
        self.acts = [rule(a) for a in case.arch.activations]
        self.rule = LOSS_RULES[case.arch.loss]
        _, caches = forward(self.arch, self.p, self.x)
        self.z = [c.z for c in caches]  # z[l-1] = z_l, (B, n_l)
        self.z_unit = [np.asfortranarray(z) for z in self.z]  # the same, unit-major for the rank-1 pass (3-6x faster add)
        self.z_t = [np.ascontiguousarray(z.T) for z in self.z]  # (n_l, B): one sample's column per copy, contiguous
        self.w_t = {m: np.ascontiguousarray(self.p[f"W{m}"].T) for m in range(2, self.L + 1)}
        self.a = [self.x] + [c.a for c in caches]  # a[l] = a_l, a[0] = x
        self.out = self.z[-1] if self.rule.from_logits else self.a[-1]
        self.sample_loss = self.per_sample(self.out[None], None)[0]  # (B,)
        self.loss = float(self.rule.forward(self.out, self.y))
        if not np.isclose(self.sample_loss.mean(), self.loss, rtol=1e-12, atol=0):
            raise RuntimeError(f"loss {case.arch.loss!r} is not the batch mean of per-sample losses, "
                               "which fd_mlp relies on: extend fd_mlp before adding such a loss")
        self.regions = [act.regions(z) if act.kink else None for act, z in zip(self.acts, self.z)]
        self.loss_regions = self.rule.regions(self.out, self.y) if self.rule.kink else None
        self.change = LossChange(case.arch.loss, self.out, self.y)
        self.yw = self.y @ self.p[f"W{self.L}"].T  # (B, n_{L-1}): y . W_L[j, :] per sample and unit j
        self._tiles: dict[int, np.ndarray] = {}  # layer m -> z_m tiled over copies (_tiled)
        self._buffers: dict[int, np.ndarray] = {}  # m % 2 -> the scratch of _unit_buffer

    @staticmethod
    def full(arr: np.ndarray, rows) -> np.ndarray:
        """arr (B, n) at the rows: (1 or K, B', n)."""
        return arr[None] if rows is None else arr[rows]

    @staticmethod
    def column(arr: np.ndarray, j: np.ndarray, rows) -> np.ndarray:
        """Column j[k] of arr (B, n) at the rows, for each k: (K, B')."""
        return arr[:, j].T if rows is None else arr[rows, j[:, None]]

    def per_sample(self, out: np.ndarray, rows) -> np.ndarray:
        """l_b for out (K, B', n_out): the loss rule on one-row batches, (K, B')."""
        if out.shape[0] > 1 and out.strides[-1] == out.itemsize:
            out = _unit_outer(out.shape, out)
        return self.rule.forward(out[..., None, :], self.full(self.y, rows)[..., None, :])

    def finish(self, out: np.ndarray | None, rows, crossed: np.ndarray, d: np.ndarray | None = None,
               bound: float | None = None, linear: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(L(perturbed) - L summed from per-sample changes, (K,); crossed, with the loss's kinks).

        d: out minus the unperturbed output, when the caller has it exactly (then out may be None);
        the change is formed from d in closed form where loss_change has one (d may be overwritten),
        with bound and linear as LossChange takes them.
        """
        if self.change.closed:
            if d is None:
                d = out - self.full(self.out, rows)
            if self.change.fits(d, bound):
                return self.change(d, rows, linear).sum(axis=-1) / self.B, crossed
        if out is None:
            out = self.full(self.out, rows) + d
        n = len(crossed)
        if self.rule.kink and n:
            head = _head(rows, n)
            crossed = crossed | _moved_region(self.rule.regions(out[:n], self.full(self.y, head)),
                                              self.full(self.loss_regions, head))
        base = self.sample_loss[None] if rows is None else self.sample_loss[rows]
        return (self.per_sample(out, rows) - base).sum(axis=-1) / self.B, crossed

    def climb(self, layer: int, z_new: np.ndarray, rows, crossed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """From a perturbed z_layer (K, B', n): act_layer, every layer above, the loss; see finish.

        crossed (n_kink,) gains True for perturbation k < n_kink when a kinked z_m (m >= layer) changed region.
        """
        n, m = len(crossed), layer
        while True:
            act = self.acts[m - 1]
            if act.kink and n:
                crossed = crossed | _moved_region(act.regions(z_new[:n]), self.full(self.regions[m - 1], _head(rows, n)))
            if m == self.L and self.rule.from_logits:
                return self.finish(z_new, rows, crossed)
            # z_new is this pass's own array: a ufunc activation (tanh) overwrites it instead of allocating.
            a_new = act.forward(z_new, out=z_new) if isinstance(act.forward, np.ufunc) else act.forward(z_new)
            if m == self.L:
                return self.finish(a_new, rows, crossed)
            m += 1
            w, b = self.p[f"W{m}"], self.p[f"b{m}"]
            flat = _unit_flat(a_new)
            if flat is not None:  # unit-major: one (n_m, n) @ (n, K B') GEMM, and z_m stays unit-major
                z_new = self._unit_buffer(m, (*a_new.shape[:2], w.shape[1]))
                out = _unit_flat(z_new)
                np.matmul(w.T, flat, out=out)
                out += b[:, None]
            elif a_new.shape[1] == 1:  # one sample per copy: one (K, n) @ W call beats K (1, n) @ W calls
                z_new = (a_new.reshape(len(a_new), -1) @ w)[:, None, :] + b
            else:
                z_new = a_new @ w + b

    def column_step(self, layer: int, j: np.ndarray, delta: np.ndarray, rows, n_kink: int):
        """Add delta (K, B') to column j (K,) of z_layer at the rows, then climb; see climb."""
        zl, al, act = self.z[layer - 1], self.a[layer], self.acts[layer - 1]
        z_col = self.column(zl, j, rows) + delta
        crossed = np.zeros(n_kink, dtype=bool)
        if act.kink and n_kink:
            home = self.column(self.regions[layer - 1], j[:n_kink], _head(rows, n_kink))
            crossed = (act.regions(z_col[:n_kink]) != home).any(axis=1)
        logits_out = layer == self.L and self.rule.from_logits
        if act.name in ROW_COUPLED or logits_out:
            z_full = _replace_column(self.full(zl, rows), j, z_col)
            return self.finish(z_full, rows, crossed) if logits_out else self.climb(layer, z_full, rows, crossed)
        a_col = act.forward(z_col)
        if layer == self.L:
            return self.finish(_replace_column(self.full(al, rows), j, a_col), rows, crossed)
        a_change = a_col - self.column(al, j, rows)
        if rows is None:  # leave out the samples no perturbation moved (exactly: their l_b cannot change)
            kept = np.flatnonzero((a_change != 0).any(axis=0))
            if len(kept) < SPARSE_BELOW * self.B:
                rows, a_change = kept[None], a_change[:, kept]
        z_next, w_rows = self._rank_one(layer + 1, j, a_change)
        if layer + 1 == self.L and self.rule.from_logits and self.change.closed:
            # The logits' change is exactly the rank-1 term d = c w: its bound and sum_k y_k d_k = c (y . w)
            # come from (K, B') arrays instead of passes over d.
            bound = float(np.abs(a_change).max(initial=0.0) * np.abs(w_rows).max(initial=0.0))
            linear = a_change * self.column(self.yw, j, rows)
            return self.finish(None, rows, crossed, d=z_next, bound=bound, linear=linear)
        flat = _unit_flat(z_next)
        if rows is None:  # every sample: add z_m tiled over the copies, in memory order
            flat += self._tiled(layer + 1, len(j))
        elif len(rows) == len(j) > 1:  # one sample per copy: its column of z_m, gathered contiguous
            flat += self.z_t[layer][:, rows[:, 0]]
        else:
            z_next += self.full(self.z_unit[layer], rows)
        return self.climb(layer + 1, z_next, rows, crossed)

    def _rank_one(self, m: int, j: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(c[k, b] W_m[j[k], :] as (K, B', n_m) in a unit-major buffer, the rows of W_m it used).

        Written so that every operand streams in order: when every copy shares j (a chunk of one column of
        W_{m-1}) one outer product over K B' contiguous entries; one sample per copy, columns of W_m^T times
        c. Each entry is the same single product in every layout, so the values are identical.
        """
        w = self.p[f"W{m}"]
        out = self._unit_buffer(m, (*c.shape, w.shape[1]))
        if c.shape[1] == 1:
            used = self.w_t[m][:, j]
            np.multiply(used, c.reshape(1, -1), out=_unit_flat(out))
        elif (j == j[0]).all():
            used = w[j[0]]  # einsum's outer product: the same single products as np.multiply's, a third faster
            np.einsum("i,j->ij", used, c.ravel(), out=_unit_flat(out))
        else:
            used = w[j]
            np.multiply(used.T[:, :, None], c[None], out=out.transpose(2, 0, 1))
        return out, used

    def _unit_buffer(self, m: int, shape: tuple[int, int, int]) -> np.ndarray:
        """A unit-major (K, B', n_m) array for z_m (as _unit_outer), in one of two buffers every pass reuses.

        Fresh arrays of a few MiB cost page faults and cold caches each chunk; the buffer of z_m alternates
        with m's parity, so the pass writing z_m never overwrites z_{m-1}, which it reads.
        """
        size = shape[0] * shape[1] * shape[2]
        buf = self._buffers.get(m % 2)
        if buf is None or buf.size < size:
            buf = self._buffers[m % 2] = np.empty(size)
        return buf[:size].reshape(shape[2], shape[0], shape[1]).transpose(1, 2, 0)

    def _tiled(self, m: int, k: int) -> np.ndarray:
        """z_m laid out as _unit_flat of (k, B, n_m) copies of it: (n_m, k B), a prefix of a cached tiling."""
        cached = self._tiles.get(m)
        if cached is None or cached.shape[1] < k * self.B:
            z_t = self.z[m - 1].T
            cached = np.ascontiguousarray(np.broadcast_to(z_t[:, None, :], (z_t.shape[0], k, self.B))).reshape(z_t.shape[0], -1)
            self._tiles[m] = cached
        return cached[:, :k * self.B]


def _head(rows, n: int):
    return rows if rows is None or rows.shape[0] == 1 else rows[:n]


def _moved_region(regions: np.ndarray, home: np.ndarray) -> np.ndarray:
    return (regions != home).reshape(len(regions), -1).any(axis=1)


def _unit_outer(shape: tuple[int, ...], values: np.ndarray | None = None) -> np.ndarray:
    """An array of shape (K, B', n) laid out unit-major in memory, optionally filled with values.

    The losses and softmax reduce the last axis; with it outermost in memory numpy reduces with
    whole-array vector operations instead of one short loop per row (2-3x faster for n ~ 10).
    """
    arr = np.empty((shape[-1], *shape[:-1])).transpose(*range(1, len(shape)), 0)
    if values is not None:
        arr[...] = values
    return arr


def _unit_flat(arr: np.ndarray) -> np.ndarray | None:
    """The (n, K B') view of a unit-major (K, B', n) array (see _unit_outer), or None if arr is not one."""
    if arr.ndim != 3:
        return None
    t = arr.transpose(2, 0, 1)
    return t.reshape(t.shape[0], -1) if t.flags.c_contiguous else None


def _replace_column(base: np.ndarray, j: np.ndarray, col: np.ndarray) -> np.ndarray:
    """(K, B', n) copies of base (1 or K, B', n) with column j[k] of copy k set to col[k]."""
    full = _unit_outer((len(j), *base.shape[1:]), base)
    full[np.arange(len(j)), :, j] = col
    return full
