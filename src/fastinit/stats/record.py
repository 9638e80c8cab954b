"""The statistics of one tensor, as a record (:class:`Stats`), made from a raw accumulator row."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np

from . import numpy_stats as ns


@dataclass(frozen=True, eq=False)
class Stats:
    """The statistics of one tensor (see the module docstring for the exact semantics).

    >>> s = fastinit.stats(np.array([0.0, 1.0, 2.0, np.nan]), bins=2)
    >>> s.count, s.finite, s.mean, s.var, s.zeros, s.nans, s.hist, s.edges
    (4, 3, 1.0, 0.6666666666666666, 1, 1, array([1, 2]), array([0., 1., 2.]))
    """

    count: int       # elements, NaN and ±Inf included
    mean: float      # of the finite values, like every float field below (NaN when none)
    var: float       # population variance (ddof=0)
    std: float
    min: float
    max: float
    abs_mean: float  # Σ|x| / finite
    rms: float       # sqrt(Σx² / finite)
    norm: float      # sqrt(Σx²); 0.0 when there is no finite value
    zeros: int       # exact zeros (+0 and -0)
    nans: int
    infs: int        # +Inf and -Inf
    hist: Optional[np.ndarray] = None   # int64 counts, bins of them; None when bins=0
    edges: Optional[np.ndarray] = None  # float64, bins + 1 of them; None when bins=0

    @property
    def finite(self) -> int:
        """The number of finite values, over which the moments are taken."""
        return self.count - self.nans - self.infs

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a plain dict (hist and edges as lists, or None)."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["hist"] = None if self.hist is None else self.hist.tolist()
        d["edges"] = None if self.edges is None else self.edges.tolist()
        return d

    @classmethod
    def from_raw(cls, row: np.ndarray, bins: int) -> "Stats":
        """The record of one raw accumulator row (fastinit/stats/numpy_stats.py: HEAD + bins floats)."""
        n = float(row[ns.N])
        nans, infs = int(row[ns.NANS]), int(row[ns.INFS])
        nan = math.nan
        if n > 0:
            var = float(row[ns.M2]) / n
            mean = float(row[ns.SHIFT]) + float(row[ns.MEAN])
            mn, mx = float(row[ns.MIN]), float(row[ns.MAX])
            abs_mean = float(row[ns.SUM_ABS]) / n
            rms = math.sqrt(float(row[ns.SUM_SQ]) / n)
        else:
            var = mean = mn = mx = abs_mean = rms = nan
        hist = edges = None
        if bins:
            hist = row[ns.HEAD:ns.HEAD + bins].astype(np.int64)
            edges = ns.hist_edges(float(row[ns.HIST_LO]), float(row[ns.HIST_HI]), bins)
        return cls(count=int(n) + nans + infs, mean=mean, var=var, std=math.sqrt(var), min=mn,
                   max=mx, abs_mean=abs_mean, rms=rms, norm=math.sqrt(float(row[ns.SUM_SQ])),
                   zeros=int(row[ns.ZEROS]), nans=nans, infs=infs, hist=hist, edges=edges)

    def __repr__(self) -> str:
        text = (f"Stats(count={self.count}, mean={self.mean:.6g}, std={self.std:.6g}, "
                f"min={self.min:.6g}, max={self.max:.6g}, abs_mean={self.abs_mean:.6g}, "
                f"rms={self.rms:.6g}, norm={self.norm:.6g}, zeros={self.zeros}, "
                f"nans={self.nans}, infs={self.infs}")
        if self.hist is not None:
            text += f", bins={len(self.hist)} over [{self.edges[0]:.6g}, {self.edges[-1]:.6g}]"
        return text + ")"
