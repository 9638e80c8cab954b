"""What a watch keeps: the recorded places (sites), and per recorded step the raw statistics
accumulators of each kind, deferred on their device until read (:class:`History`)."""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..stats import numpy_stats as ns
from ..stats.deferred import DeferredStats
from ..stats.record import Stats

KINDS = ("activations", "gradients", "weights")
GRAD_LOG = "gradients_log10"  # internal kind: log10|g| records (the gradient histograms)
CENTERED = "activations_centered"  # internal kind: outputs minus their mean over the batch
_KIND_ALIASES = {"activations": "activations", "activation": "activations", "act": "activations",
                 "gradients": "gradients", "gradient": "gradients", "grad": "gradients",
                 "weights": "weights", "weight": "weights", "params": "weights",
                 "centered": "activations_centered",
                 "activations_centered": "activations_centered"}

Range = Optional[Tuple[float, float]]
StepArg = Union[None, int, str]


def kind_name(kind: str) -> str:
    """The canonical kind of an alias ("act" -> "activations"), or a ValueError."""
    k = _KIND_ALIASES.get(kind)
    if k is None:
        raise ValueError(f"fastinit.watch: kind must be one of {KINDS} (or \"centered\": the "
                         f"activations minus their batch mean, with batch_stats=True), got {kind!r}")
    return k


class Site:
    """A recorded place: a module output (per module, or per call with per_call=True) or a
    parameter. ``name`` is what tables show (``act#1`` for a second call), ``module_name`` the
    module's own dotted name, ``cls`` its type, ``module`` the module itself."""

    __slots__ = ("index", "name", "type_name", "has_params", "has_weight", "eager", "cls",
                 "module", "module_name")

    def __init__(self, index: int, name: str, type_name: str, has_params: bool,
                 module: Any = None, module_name: Optional[str] = None,
                 has_weight: bool = False) -> None:
        self.index = index
        self.name = name
        self.type_name = type_name
        self.has_params = has_params
        self.has_weight = has_weight  # holds a parameter of >= 2 dims (a weight layer)
        self.module = module
        self.cls = type(module) if module is not None else object
        self.module_name = name if module_name is None else module_name
        self.eager = False  # reduce at the forward hook (an out-of-module in-place write was seen)


class StepRecord:
    """What one recorded step produced: per kind, chunks of (site indices, records) where the
    records are a DeferredStats until read, then a NumPy array (one row per site index)."""

    __slots__ = ("step", "chunks")

    def __init__(self, step: int) -> None:
        self.step = step
        self.chunks: Dict[str, List[List[Any]]] = {}

    def add(self, kind: str, sites: List[int], records: Any) -> None:
        self.chunks.setdefault(kind, []).append([sites, records])


def _host_records(deferred: Sequence[DeferredStats]) -> List[np.ndarray]:
    """The raw records of many DeferredStats, with one device-to-host copy per device in all
    (``DeferredStats.raw_many``)."""
    return DeferredStats.raw_many(list(deferred))


def _rebin(counts: np.ndarray, edges: np.ndarray, new_edges: np.ndarray) -> np.ndarray:
    """Counts over ``edges`` redistributed onto ``new_edges`` by overlap (uniform within a bin)."""
    counts = np.asarray(counts, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(counts)])
    at = np.interp(new_edges, edges, cum, left=0.0, right=cum[-1])
    return np.diff(at)


def merge_rows(rows: np.ndarray) -> np.ndarray:
    """Merge raw records (several calls of one module in a step, or several steps) into one.
    Histograms over one range add up exactly; over different ranges they are redistributed
    onto the union range (an approximation that assumes values uniform within a bin)."""
    if len(rows) == 1:
        return rows[0].copy()
    bins = rows.shape[1] - ns.HEAD
    acc = rows[0].copy()
    for r in rows[1:]:
        if bins and (r[ns.HIST_LO] != acc[ns.HIST_LO] or r[ns.HIST_HI] != acc[ns.HIST_HI]):
            lo = min(acc[ns.HIST_LO], r[ns.HIST_LO])
            hi = max(acc[ns.HIST_HI], r[ns.HIST_HI])
            edges = ns.hist_edges(lo, hi, bins)
            a = acc.copy()
            b = r.copy()
            a[ns.HEAD:] = _rebin(acc[ns.HEAD:], ns.hist_edges(acc[ns.HIST_LO], acc[ns.HIST_HI], bins), edges)
            b[ns.HEAD:] = _rebin(r[ns.HEAD:], ns.hist_edges(r[ns.HIST_LO], r[ns.HIST_HI], bins), edges)
            a[ns.HIST_LO], a[ns.HIST_HI] = lo, hi
            acc = ns.merge(a, b)
        else:
            acc = ns.merge(acc, r)
    return acc


def stats_of(row: np.ndarray) -> Stats:
    """The :class:`Stats` of a raw row (fractional histogram counts, from a merge over
    different ranges, kept as floats)."""
    bins = len(row) - ns.HEAD
    rec = Stats.from_raw(row, bins)
    if bins and rec.hist is not None:
        frac = row[ns.HEAD:]
        if np.any(frac != np.round(frac)):
            object.__setattr__(rec, "hist", frac.copy())
    return rec


def histogram_of(row: np.ndarray, bins: int) -> Tuple[np.ndarray, np.ndarray]:
    """(counts, edges) of a raw row with a histogram."""
    return row[ns.HEAD:].copy(), ns.hist_edges(row[ns.HIST_LO], row[ns.HIST_HI], bins)


def check_range(name: str, r: Any) -> Range:
    if r is None:
        return None
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError):
        raise TypeError(f"fastinit.watch: {name} must be a pair of numbers (lo, hi), got {r!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"fastinit.watch: {name} must be finite with lo < hi, got ({lo}, {hi})")
    return (lo, hi)


class History:
    """The recorded steps, oldest first, at most ``limit`` of them (None: all)."""

    def __init__(self, limit: Optional[int], every: int) -> None:
        self.limit = limit
        self.every = every
        self.steps: "OrderedDict[int, StepRecord]" = OrderedDict()

    def record(self, step: int) -> StepRecord:
        """The record of ``step``, made (and the oldest dropped beyond the limit) if new."""
        rec = self.steps.get(step)
        if rec is None:
            rec = self.steps[step] = StepRecord(step)
            if self.limit is not None:
                while len(self.steps) > self.limit:
                    self.steps.popitem(last=False)
        return rec

    def to_host(self) -> None:
        """Bring every deferred record to the host (one synchronisation per device)."""
        todo = [c for rec in self.steps.values() for chunks in rec.chunks.values()
                for c in chunks if isinstance(c[1], DeferredStats)]
        if todo:
            for c, host in zip(todo, _host_records([c[1] for c in todo])):
                c[1] = host

    def rows(self, kind: str, step: int) -> Dict[int, np.ndarray]:
        """site index -> merged raw record, for one kind at one step (on the host)."""
        rec = self.steps.get(step)
        if rec is None:
            return {}
        per: Dict[int, List[np.ndarray]] = {}
        for sites, host in rec.chunks.get(kind, []):
            for si, row in zip(sites, host):
                per.setdefault(si, []).append(row)
        return {si: merge_rows(np.stack(rows)) for si, rows in per.items()}

    def merged(self, kind: str, steps: Sequence[int]) -> Dict[int, np.ndarray]:
        """site index -> the raw record of one kind merged over ``steps``."""
        per: Dict[int, List[np.ndarray]] = {}
        for s in steps:
            for si, row in self.rows(kind, s).items():
                per.setdefault(si, []).append(row)
        return {si: merge_rows(np.stack(rows)) for si, rows in per.items()}

    def resolve(self, step: StepArg, kind: str) -> List[int]:
        """The steps a ``step`` argument names: None (the last with this kind), an int (negative:
        from the end of the history) or "all"."""
        if not self.steps:
            raise RuntimeError("fastinit.watch: nothing recorded yet: run the model (a step is "
                               "one call of model(...)) inside the watch")
        if step is None:
            having = [s for s, r in self.steps.items() if r.chunks.get(kind)]
            return [having[-1]] if having else [next(reversed(self.steps))]
        if step == "all":
            return list(self.steps)
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"fastinit.watch: step must be None, an int or 'all', got {step!r}")
        step = int(step)
        if step < 0:
            keys = list(self.steps)
            if -step > len(keys):
                raise IndexError(f"fastinit.watch: step {step}: only {len(keys)} recorded steps")
            return [keys[step]]
        if step not in self.steps:
            raise KeyError(f"fastinit.watch: step {step} is not recorded (recorded: every "
                           f"{self.every} steps; in history: {self.describe()})")
        return [step]

    def last_complete(self, kinds: Sequence[str]) -> Optional[int]:
        """The latest step that has every kind in ``kinds``, or None."""
        for s in reversed(self.steps):
            if all(self.steps[s].chunks.get(k) for k in kinds):
                return s
        return None

    def describe(self) -> str:
        keys = list(self.steps)
        if len(keys) <= 6:
            return str(keys)
        return f"[{keys[0]}, {keys[1]}, ..., {keys[-1]}] ({len(keys)} steps)"

    def clear(self) -> None:
        self.steps.clear()
