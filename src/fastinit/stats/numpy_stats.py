"""The statistics accumulator in NumPy: the mirror of csrc/common/stats_accumulator.h.

The compiled kernels and this module compute the same raw record per tensor, with the same
formulas in the same order of operations (the chunking differs, so the last bits of the moments
may differ; the counts, min, max and histogram never do):

- a chunk of values is summarised exactly by the corrected two-pass formula: shift = mean of its
  finite values, then ``mean = Σd/n`` (relative to the shift) and ``M2 = Σd² − (Σd)²/n`` with
  ``d = x − shift``;
- summaries merge by Chan's formula (:func:`merge`), in a fixed pairwise tree; the mean stays
  relative to the first summary's shift, so the difference of two means is computed exactly
  (shifts are close to the data) and the variance is exact to float64 rounding even with a large
  offset and a tiny spread. The mean of a record is ``SHIFT + MEAN``;
- the histogram bin of a value is numpy.histogram's: an estimate, then one correction step
  against numpy's edges ``linspace(lo, hi, bins + 1)``.

The raw record is ``HEAD`` float64 numbers, then ``bins`` counts::

    N (finite values), SHIFT, MEAN (relative to SHIFT), M2, MIN, MAX, SUM_ABS, SUM_SQ, ZEROS,
    NANS, INFS, HIST_LO, HIST_HI

>>> rec = reduce_array(np.array([1.0, 2.0, np.nan]), bins=2, lo_hi=None)
>>> rec[N], rec[SHIFT] + rec[MEAN], rec[M2], rec[NANS], rec[HEAD:]
(2.0, 1.5, 0.5, 1.0, array([1., 1.]))

:func:`merge` and :func:`bin_index` also run on torch tensors (pass ``xp=TORCH_OPS``), which is
how fastinit reduces tensors on a device without a compiled kernel, and merges deferred records
on the device.
"""
from __future__ import annotations

import builtins
import math
from typing import Any, Optional, Tuple

import numpy as np

HEAD = 13
(N, SHIFT, MEAN, M2, MIN, MAX, SUM_ABS, SUM_SQ, ZEROS, NANS, INFS, HIST_LO,
 HIST_HI) = builtins.range(HEAD)
CHUNK = 1 << 16  # values summarised at once (as a CPU work item)


class _NumpyOps:
    """The few array operations the shared formulas need, for NumPy."""

    @staticmethod
    def where(cond, a, b):
        return np.where(cond, a, b)

    @staticmethod
    def minimum(a, b):
        return np.minimum(a, b)

    @staticmethod
    def maximum(a, b):
        return np.maximum(a, b)

    @staticmethod
    def to_int(a):
        return np.asarray(a).astype(np.int64)

    @staticmethod
    def to_float(a):
        return np.asarray(a).astype(np.float64)


class _TorchOps:
    """The same operations for torch tensors (float64), on any device."""

    @staticmethod
    def _torch():
        import torch
        return torch

    @classmethod
    def _t(cls, a, like):
        torch = cls._torch()
        return a if isinstance(a, torch.Tensor) else torch.tensor(a, dtype=like.dtype, device=like.device)

    @classmethod
    def where(cls, cond, a, b):
        torch = cls._torch()
        like = cond
        if isinstance(a, torch.Tensor):
            like = a
        elif isinstance(b, torch.Tensor):
            like = b
        return torch.where(cond, cls._t(a, like), cls._t(b, like))

    @classmethod
    def minimum(cls, a, b):
        return cls._torch().minimum(a, cls._t(b, a))

    @classmethod
    def maximum(cls, a, b):
        return cls._torch().maximum(a, cls._t(b, a))

    @classmethod
    def to_int(cls, a):
        return a.to(cls._torch().int64)

    @classmethod
    def to_float(cls, a):
        return a.to(cls._torch().float64)


NUMPY_OPS = _NumpyOps()
TORCH_OPS = _TorchOps()


# ----------------------------------------------------------------------------- records

def empty_records(count: int, bins: int) -> np.ndarray:
    """Records of nothing: n = 0, min = +inf, max = -inf, histogram range (0, 1)."""
    rec = np.zeros((count, HEAD + bins), dtype=np.float64)
    rec[:, MIN] = np.inf
    rec[:, MAX] = -np.inf
    rec[:, HIST_HI] = 1.0
    return rec


def shift_of(n: float, total: float, mn: float, mx: float) -> float:
    """stats_shift: the plain mean of a chunk's finite values (0 for none), or their midrange
    when the sum overflows."""
    if not n > 0:
        return 0.0
    mean = total / n
    return mean if math.isfinite(mean) else 0.5 * mn + 0.5 * mx


def corrected(n: float, c: float, q: float) -> Tuple[float, float]:
    """stats_corrected: (mean relative to the shift, M2) of a chunk from c = Σ(x − shift),
    q = Σ(x − shift)²."""
    if n > 0:
        m2 = q - c * (c / n)
        return c / n, 0.0 if m2 < 0.0 else m2  # (NaN stays NaN: squares that overflowed)
    return 0.0, 0.0


def chunk_record(v: np.ndarray) -> np.ndarray:
    """The head of the record of a chunk of float64 values (stats_of_chunk / tile_stats)."""
    with np.errstate(over="ignore", invalid="ignore"):  # sums of values near the largest double
        return _chunk_record(v)


def _chunk_record(v: np.ndarray) -> np.ndarray:
    rec = empty_records(1, 0)[0]
    finite = np.isfinite(v)
    fv = v if finite.all() else v[finite]
    n = float(fv.size)
    nans = float(np.count_nonzero(np.isnan(v)))
    rec[N] = n
    rec[ZEROS] = float(np.count_nonzero(v == 0.0))
    rec[NANS] = nans
    rec[INFS] = float(v.size) - n - nans
    if n > 0:
        rec[MIN] = float(fv.min())
        rec[MAX] = float(fv.max())
        shift = shift_of(n, float(fv.sum()), rec[MIN], rec[MAX])
        d = fv - shift
        rec[SHIFT] = shift
        rec[MEAN], rec[M2] = corrected(n, float(d.sum()), float(np.dot(d, d)))
        rec[SUM_ABS] = float(np.abs(fv).sum())
        rec[SUM_SQ] = float(np.dot(fv, fv))
    return rec


def merge(a: Any, b: Any, xp: Any = NUMPY_OPS) -> Any:
    """Records a merged with records b (stats_merge), row by row; histogram counts add, the
    range is a's. Works on NumPy arrays and, with ``xp=TORCH_OPS``, on float64 torch tensors."""
    na, nb = a[..., N], b[..., N]
    total = na + nb
    safe_total = xp.where(total == 0, 1.0, total)
    delta = ((b[..., SHIFT] - a[..., SHIFT]) + b[..., MEAN]) - a[..., MEAN]
    fb = nb / safe_total

    def pick(field, merged):  # b's when a is empty, a's when b is empty
        return xp.where(nb == 0, a[..., field], xp.where(na == 0, b[..., field], merged))

    mean = pick(MEAN, a[..., MEAN] + delta * fb)
    m2 = pick(M2, (a[..., M2] + b[..., M2]) + (delta * delta) * (na * fb))
    shift = pick(SHIFT, a[..., SHIFT])
    out = a + b  # the sums and counts (and the histogram)
    out[..., N] = total
    out[..., SHIFT] = shift
    out[..., MEAN] = mean
    out[..., M2] = m2
    out[..., MIN] = xp.minimum(a[..., MIN], b[..., MIN])
    out[..., MAX] = xp.maximum(a[..., MAX], b[..., MAX])
    out[..., HIST_LO] = a[..., HIST_LO]
    out[..., HIST_HI] = a[..., HIST_HI]
    return out


def merge_tree(records: np.ndarray) -> np.ndarray:
    """Merge the rows of `records` by the fixed pairwise tree of the C++ kernel's merge_tree."""
    if len(records) == 0:
        return empty_records(1, records.shape[1] - HEAD)[0]
    p = records
    while len(p) > 1:
        pairs = len(p) // 2
        merged = merge(p[0:2 * pairs:2], p[1:2 * pairs:2])
        p = np.concatenate([merged, p[2 * pairs:]]) if len(p) % 2 else merged
    return p[0].copy()


# ---------------------------------------------------------------------------- histogram

def default_range(n: Any, mn: Any, mx: Any, xp: Any = NUMPY_OPS) -> Tuple[Any, Any]:
    """stats_default_range: (min, max) of the finite values, (0, 1) without any, ±0.5 when
    they are equal (numpy's rule)."""
    lo = xp.where(n > 0, mn, 0.0)
    hi = xp.where(n > 0, mx, 1.0)
    same = lo == hi
    return xp.where(same, lo - 0.5, lo), xp.where(same, hi + 0.5, hi)


def bin_index(v: Any, lo: Any, hi: Any, bins: int, xp: Any = NUMPY_OPS) -> Any:
    """hist_bin for float64 values v: the numpy.histogram bin, -1 outside [lo, hi] and for NaN.
    (make_hist_grid + hist_bin: an estimate, then one correction step against numpy's edges.)"""
    width = hi - lo
    step = width / bins
    scale = bins / width
    big = scale > np.finfo(np.float64).max  # a subnormal width: exact power-of-two rescaling
    prescale = xp.where(big, 2.0 ** 600, 1.0)
    scale = xp.where(big, bins / (width * 2.0 ** 600), scale)
    inside = (v >= lo) & (v <= hi)
    offset = xp.where(inside, v - lo, 0.0)
    f = (offset * prescale) * scale
    i = xp.to_int(xp.minimum(f, float(bins)))
    i = xp.minimum(i, bins - 1)
    fi = xp.to_float(i)
    lower = fi * step + lo
    upper = (fi + 1.0) * step + lo
    i = xp.where(v < lower, i - 1, xp.where((i + 1 < bins) & (v >= upper), i + 1, i))
    return xp.where(inside, i, -1)


def hist_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """numpy.histogram's edges: numpy.linspace(lo, hi, bins + 1) (i * step + lo, last = hi)."""
    return np.linspace(lo, hi, bins + 1)


def check_range(lo: float, hi: float, bins: int) -> Tuple[float, float]:
    """A supplied range, checked and widened as numpy.histogram does; raises ValueError."""
    lo, hi = float(lo), float(hi)
    if lo > hi:
        raise ValueError("max must be larger than min in range parameter.")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"supplied range of [{lo}, {hi}] is not finite")
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    if not np.isfinite(hi - lo):
        raise ValueError(f"range [{lo}, {hi}] is too wide: its width overflows float64")
    edges = hist_edges(lo, hi, bins)
    if np.any(edges[:-1] >= edges[1:]):
        raise ValueError(f"Too many bins for data range. Cannot create {bins} finite-sized bins.")
    return lo, hi


# ------------------------------------------------------------------------------ reduction

def _chunks(flat: np.ndarray):
    for start in builtins.range(0, flat.size, CHUNK):
        yield np.asarray(flat[start:start + CHUNK], dtype=np.float64)


def reduce_array(a: np.ndarray, bins: int, lo_hi: Optional[Tuple[float, float]]) -> np.ndarray:
    """The raw record of a float array of any layout (HEAD + bins float64 numbers). lo_hi: a
    checked range, or None for numpy's default range (a second pass, as in the kernels)."""
    flat = a.ravel(order="K")  # statistics ignore the order: memory order avoids a copy
    parts = [chunk_record(v) for v in _chunks(flat)]
    head = merge_tree(np.stack(parts)) if parts else empty_records(1, 0)[0]
    rec = empty_records(1, bins)[0]
    rec[:HEAD] = head
    if bins == 0:
        return rec
    if lo_hi is None:
        lo, hi = default_range(head[N], head[MIN], head[MAX])
        lo, hi = float(lo), float(hi)
    else:
        lo, hi = lo_hi
    counts = np.zeros(bins, dtype=np.int64)
    for v in _chunks(flat):
        idx = bin_index(v, lo, hi, bins)
        counts += np.bincount(idx[idx >= 0], minlength=bins)
    rec[HIST_LO], rec[HIST_HI] = lo, hi
    rec[HEAD:] = counts
    return rec
