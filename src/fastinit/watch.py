"""Per-layer statistics of a model while it runs: activations, gradients and weights.

``fastinit.watch(model)`` hooks the model's leaf modules (or the modules a filter selects) and
records, at every ``every``-th forward, the statistics (:class:`fastinit.Stats`: count, mean, std,
min, max, norms, zeros, NaN/Inf counts, optional histogram) of

- the **activations**: each module's output, as its forward hook sees it;
- the **gradients** flowing back through those outputs (dL/d output), by a tensor hook on the
  output;
- the **weights**: each watched module's own parameters, at the start of the step.

Statistics stay where the tensors are: on a GPU they are reduced by fastinit's fused kernel into
small float64 accumulator tensors on the device, with no ``.item()`` and no host synchronisation;
the host waits once, when you read (:meth:`Watch.table`, :meth:`Watch.report`, exports, plots).

>>> import torch, fastinit
>>> model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))
>>> with fastinit.watch(model, every=10) as w:
...     for step in range(100):
...         loss = model(torch.randn(32, 64)).square().mean()
...         loss.backward()
>>> print(w.report())                      # per-layer table of the last recorded step + verdicts
>>> rows = w.table()                       # the same as a list of dicts
>>> w.to_csv("stats.csv"); w.plot("watch.png")

How it works (see docs/watch.md):

- A **step** is one call of ``model(...)`` (a forward pre-hook on the model counts them). Steps
  ``0, every, 2 * every, ...`` are recorded; the others cost one Python check per module.
- **Batched reduction.** A forward hook keeps a reference to the output and its version counter;
  the outputs of a step are reduced together, in one :func:`fastinit.stats_async` call (one
  launch per device), when the model's forward returns. Gradients are kept the same way and
  reduced together when the backward pass ends. At most ``buffer_bytes`` of tensors are held
  before an early reduction, so memory stays bounded.
- **In-place operations.** An output modified in place after its forward hook (``nn.ReLU(
  inplace=True)`` applied to a ``Linear``'s output) would be read too late. Before any module with
  ``inplace=True`` runs, the pending outputs it could modify are reduced first, so each record is
  the value the module returned. Other in-place writes (``x.relu_()`` in a ``forward``) are caught
  by the tensor's version counter: that step's record of the layer is dropped with a warning, and
  from then on the layer is reduced eagerly in its forward hook (correct, one launch per call).
- **Gradient hooks** are tensor hooks registered on each output in the forward hook. They give the
  gradient with respect to the value the module returned, even when a later in-place operation
  rewrote that tensor (full backward hooks refuse in-place outputs).
- Only the small accumulators are stored: ``HEAD + bins`` float64 numbers per layer per recorded
  step, for the last ``history`` recorded steps.

Histograms (``bins > 0``): activations are binned by value over ``act_range`` (default: each
layer's own (min, max) at that step, found on the device without synchronising); gradients are
binned by **log10 |g|** over ``grad_range`` (default: each layer's own range of log10 |g|), since
back-propagated gradients span many decades; exact zeros are not in the log histogram (see the
``zeros`` count). Pass fixed ranges to make histograms of different steps add up exactly.

Verdicts (:func:`verdict`): the ratio of the std at the end of the propagation to the std at its
start (activations: last layer / first; gradients: first layer / last, the direction they flow)
is ``vanishing`` below ``1e-2``, ``exploding`` above ``1e2`` or when a std is NaN/Inf, else
``healthy``.
"""
from __future__ import annotations

import builtins
import csv
import fnmatch
import io
import json
import math
import sys
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _numpy_stats as ns
from .tensor_stats import DeferredStats, Stats, stats_async

__all__ = ["watch", "Watch", "verdict", "Verdict", "VANISHING_RATIO", "EXPLODING_RATIO"]

#: verdict thresholds: end-to-start std ratio below this is "vanishing", above the other "exploding".
VANISHING_RATIO = 1e-2
EXPLODING_RATIO = 1e2

KINDS = ("activations", "gradients", "weights")
_GRAD_LOG = "gradients_log10"  # internal kind: log10|g| records (the gradient histograms)
_KIND_ALIASES = {"activations": "activations", "activation": "activations", "act": "activations",
                 "gradients": "gradients", "gradient": "gradients", "grad": "gradients",
                 "weights": "weights", "weight": "weights", "params": "weights"}

ModuleFilter = Union[None, Callable[[str, Any], bool], Sequence[Union[str, type]]]
Range = Optional[Tuple[float, float]]
StepArg = Union[None, int, str]


# ------------------------------------------------------------------------------------- verdicts

@dataclass(frozen=True)
class Verdict:
    """The verdict on a per-layer std profile, in the direction of propagation.

    label: ``"vanishing"``, ``"exploding"``, ``"healthy"`` or ``"n/a"`` (fewer than two layers,
    or a start std of 0); ratio: end std / start std; start, end: those stds; layers: how many.
    """

    label: str
    ratio: float
    start: float
    end: float
    layers: int

    def __str__(self) -> str:
        if self.label == "n/a":
            return "n/a"
        return f"{self.label} (x{self.ratio:.2g} over {self.layers} layers)"


def verdict(stds: Iterable[float], *, vanishing: float = VANISHING_RATIO,
            exploding: float = EXPLODING_RATIO) -> Verdict:
    """Classify a per-layer std profile given **in the direction of propagation** (activations:
    input to output; gradients: output to input).

    ``ratio = std[-1] / std[0]``: below ``vanishing`` (1e-2) → ``"vanishing"``; above
    ``exploding`` (1e2), or any std NaN/Inf → ``"exploding"``; otherwise ``"healthy"``. With
    fewer than two values, or a first std of 0, the label is ``"n/a"``.

    >>> fastinit.verdict([1.0, 0.3, 0.02, 1e-4]).label
    'vanishing'
    >>> fastinit.verdict([0.5, 0.6, 0.55]).label
    'healthy'
    """
    if not (0 < vanishing < exploding):
        raise ValueError(f"verdict: need 0 < vanishing < exploding, got {vanishing} and {exploding}")
    s = [float(v) for v in stds]
    n = len(s)
    if n < 2:
        return Verdict("n/a", math.nan, s[0] if s else math.nan, s[-1] if s else math.nan, n)
    if any(not math.isfinite(v) for v in s):
        return Verdict("exploding", math.inf, s[0], s[-1], n)
    if s[0] == 0.0:
        return Verdict("n/a", math.nan, s[0], s[-1], n)
    ratio = s[-1] / s[0]
    label = "vanishing" if ratio < vanishing else "exploding" if ratio > exploding else "healthy"
    return Verdict(label, ratio, s[0], s[-1], n)


# ------------------------------------------------------------------------------------ internals

class _Site:
    """A recorded place: a module output (per module, or per call with per_call=True) or a
    parameter."""

    __slots__ = ("index", "name", "type_name", "has_params", "eager")

    def __init__(self, index: int, name: str, type_name: str, has_params: bool) -> None:
        self.index = index
        self.name = name
        self.type_name = type_name
        self.has_params = has_params
        self.eager = False  # reduce at the forward hook (an out-of-module in-place write was seen)


class _Step:
    """What one recorded step produced: per kind, chunks of (site indices, records) where the
    records are a DeferredStats until read, then a NumPy array (one row per site index)."""

    __slots__ = ("step", "chunks")

    def __init__(self, step: int) -> None:
        self.step = step
        self.chunks: Dict[str, List[List[Any]]] = {}

    def add(self, kind: str, sites: List[int], records: Any) -> None:
        self.chunks.setdefault(kind, []).append([sites, records])


def _float_tensors(obj: Any, out: List[Any], depth: int = 0) -> List[Any]:
    """The floating-point tensors in a module's output (tensors, tuples, lists, dicts)."""
    torch = sys.modules["torch"]
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and obj.layout == torch.strided and obj.device.type != "meta":
            out.append(obj)
    elif depth < 4 and isinstance(obj, (tuple, list)):
        for o in obj:
            _float_tensors(o, out, depth + 1)
    elif depth < 4 and isinstance(obj, dict):
        for o in obj.values():
            _float_tensors(o, out, depth + 1)
    return out


def _version(t: Any) -> Optional[int]:
    """The tensor's version counter (None for inference tensors, which have none)."""
    try:
        return t._version
    except (RuntimeError, AttributeError):
        return None


def _storage_key(t: Any) -> Tuple[str, int]:
    try:
        return (str(t.device), t.untyped_storage().data_ptr())
    except (RuntimeError, AttributeError, NotImplementedError):
        return (str(t.device), t.data_ptr())


def _host_records(deferred: Sequence[DeferredStats]) -> List[np.ndarray]:
    """The raw records of many DeferredStats, with one device-to-host copy per device in all
    (``DeferredStats.raw_many``)."""
    raw_many = getattr(DeferredStats, "raw_many", None)
    if raw_many is None:  # an older tensor_stats: one copy per object
        return [d.raw() for d in deferred]
    return raw_many(list(deferred))


def _rebin(counts: np.ndarray, edges: np.ndarray, new_edges: np.ndarray) -> np.ndarray:
    """Counts over ``edges`` redistributed onto ``new_edges`` by overlap (uniform within a bin)."""
    counts = np.asarray(counts, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(counts)])
    at = np.interp(new_edges, edges, cum, left=0.0, right=cum[-1])
    return np.diff(at)


def _merge_rows(rows: np.ndarray) -> np.ndarray:
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


def _stats_of(row: np.ndarray) -> Stats:
    bins = len(row) - ns.HEAD
    rec = Stats.from_raw(row, bins)
    if bins and rec.hist is not None:
        # redistributed histograms hold fractional counts: keep them as floats
        frac = row[ns.HEAD:]
        if np.any(frac != np.round(frac)):
            object.__setattr__(rec, "hist", frac.copy())
    return rec


def _check_range(name: str, r: Any) -> Range:
    if r is None:
        return None
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError):
        raise TypeError(f"fastinit.watch: {name} must be a pair of numbers (lo, hi), got {r!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"fastinit.watch: {name} must be finite with lo < hi, got ({lo}, {hi})")
    return (lo, hi)


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


# ----------------------------------------------------------------------------------------- Watch

class Watch:
    """Hooks on a model that record per-layer statistics; made by :func:`watch` (see there and
    the module docstring). A context manager: leaving the ``with`` block removes the hooks and
    keeps the records for reading.

    Reading (each read waits for the device once and caches the host records):

    - :attr:`steps`, :attr:`layers`: the recorded steps (in history) and the layer names, in the
      order they first ran;
    - :meth:`records`: ``{layer: Stats}`` for one kind at one step (or merged over steps);
    - :meth:`series`: one statistic per (step, layer) as an array, for plots over training;
    - :meth:`table`, :meth:`report`, :meth:`verdicts`: per-layer rows, a printable table, verdicts;
    - :meth:`to_json`, :meth:`to_csv`: every recorded step; :meth:`plot`: a PNG (matplotlib).
    """

    def __init__(self, model: Any, *, activations: bool = True, gradients: bool = True,
                 weights: bool = True, modules: ModuleFilter = None, every: int = 1,
                 bins: int = 0, act_range: Range = None, grad_range: Range = None,
                 per_call: bool = False, history: Optional[int] = 1000,
                 buffer_bytes: int = 256 << 20) -> None:
        torch = sys.modules.get("torch")
        if torch is None or not isinstance(model, torch.nn.Module):
            raise TypeError("fastinit.watch: expected a torch.nn.Module, got "
                            f"{type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"fastinit.watch: every must be an int >= 1, got {every!r}")
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 0:
            raise ValueError(f"fastinit.watch: bins must be an int >= 0, got {bins!r}")
        if history is not None and (isinstance(history, bool) or not isinstance(history, int)
                                    or history < 1):
            raise ValueError(f"fastinit.watch: history must be None or an int >= 1, got {history!r}")
        if isinstance(buffer_bytes, bool) or not isinstance(buffer_bytes, int) or buffer_bytes < 0:
            raise ValueError(f"fastinit.watch: buffer_bytes must be an int >= 0, got {buffer_bytes!r}")
        if not (activations or gradients or weights):
            raise ValueError("fastinit.watch: nothing to record: activations, gradients and "
                             "weights are all False")
        self.model = model
        self.activations = bool(activations)
        self.gradients = bool(gradients)
        self.weights = bool(weights)
        self.every = every
        self.bins = bins
        self.act_range = _check_range("act_range", act_range)
        self.grad_range = _check_range("grad_range", grad_range)
        if (self.act_range or self.grad_range) and not bins:
            raise ValueError("fastinit.watch: act_range / grad_range are histogram ranges and "
                             "need bins > 0")
        self.per_call = bool(per_call)
        self.history = history
        self.buffer_bytes = buffer_bytes

        self._modules: List[Tuple[str, Any]] = self._select(model, modules)
        if not self._modules:
            raise ValueError("fastinit.watch: the module filter selected no module of the model")
        self._sites: List[_Site] = []
        self._site_of: Dict[Tuple[int, int], int] = {}   # (module index, call) -> site
        self._param_sites: List[_Site] = []
        self._params: List[Any] = []
        for name, m in self._modules:
            for pname, p in m.named_parameters(recurse=False):
                full = f"{name}.{pname}" if name else pname
                self._param_sites.append(_Site(len(self._param_sites), full, type(m).__name__, True))
                self._params.append(p)
        self._steps: "OrderedDict[int, _Step]" = OrderedDict()
        self._step = -1
        self._active = False
        self._calls: Dict[int, int] = {}
        self._pending: Dict[str, List[Tuple[int, Any, Optional[int], int]]] = {
            "activations": [], "gradients": []}
        self._pending_bytes = {"activations": 0, "gradients": 0}
        self._pending_storage: Dict[Tuple[str, int], int] = {}
        self._callback_queued = False
        self._warned: set = set()
        self._handles: List[Any] = []
        self._closed = False
        self._tensor_type = torch.Tensor
        self._strided = torch.strided
        self._grad_enabled = torch.is_grad_enabled
        self._attach()

    # ---------------------------------------------------------------------------------- setup

    @staticmethod
    def _select(model: Any, modules: ModuleFilter) -> List[Tuple[str, Any]]:
        named = list(model.named_modules())
        if modules is None:
            return [(n, m) for n, m in named if next(iter(m.children()), None) is None]
        if callable(modules) and not isinstance(modules, type):
            return [(n, m) for n, m in named if modules(n, m)]
        if isinstance(modules, (str, type)):
            modules = [modules]
        try:
            wanted = list(modules)
        except TypeError:
            raise TypeError("fastinit.watch: modules must be None, a callable (name, module) -> "
                            f"bool, or a list of module types and names, got {modules!r}") from None
        types = tuple(w for w in wanted if isinstance(w, type))
        names = [w for w in wanted if isinstance(w, str)]
        bad = [w for w in wanted if not isinstance(w, (str, type))]
        if bad:
            raise TypeError("fastinit.watch: modules must list module types or names "
                            f"(glob patterns allowed), got {bad[0]!r}")
        known = {n for n, _ in named}
        for pat in names:
            if not any(fnmatch.fnmatchcase(n, pat) for n in known):
                raise ValueError(f"fastinit.watch: no module of the model is named {pat!r} "
                                 f"(names look like {sorted(known - {''})[:5]})")
        return [(n, m) for n, m in named
                if (types and isinstance(m, types))
                or any(fnmatch.fnmatchcase(n, p) for p in names)]

    def _attach(self) -> None:
        model = self.model
        self._handles.append(model.register_forward_pre_hook(self._on_step_start))
        self._handles.append(model.register_forward_hook(self._on_step_end))
        if self.activations or self.gradients:
            for mi, (_, m) in enumerate(self._modules):
                self._handles.append(m.register_forward_hook(partial(self._on_output, mi)))
        self._track_storage = False  # are there in-place modules that could rewrite outputs?
        if self.activations:
            for m in model.modules():
                if getattr(m, "inplace", False) is True:
                    self._track_storage = True
                    self._handles.append(m.register_forward_pre_hook(self._before_inplace))

    def remove(self) -> None:
        """Remove the hooks (the records stay readable). Called on leaving the ``with`` block."""
        if self._closed:
            return
        self._flush("activations")
        self._flush("gradients")
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._closed = True

    close = remove

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "removed" if self._closed else "active"
        return (f"<fastinit.Watch {state}: {len(self._modules)} modules, {len(self._params)} "
                f"parameters, every={self.every}, {len(self._steps)} recorded steps>")

    # ---------------------------------------------------------------------------------- hooks

    def _site(self, mi: int) -> _Site:
        call = 0
        if self.per_call:
            call = self._calls.get(mi, 0)
            self._calls[mi] = call + 1
        key = (mi, call)
        si = self._site_of.get(key)
        if si is None:
            name, m = self._modules[mi]
            label = name or type(m).__name__
            if call:
                label = f"{label}#{call}"
            si = len(self._sites)
            self._sites.append(_Site(si, label, type(m).__name__,
                                     next(iter(m.parameters(recurse=False)), None) is not None))
            self._site_of[key] = si
            if call:  # a later call of a shared module: placed after its earlier calls
                pass
        return self._sites[si]

    def _on_step_start(self, module: Any, inputs: Any) -> None:
        self._flush("activations")
        self._flush("gradients")
        self._step += 1
        self._active = self._step % self.every == 0
        self._calls.clear()
        if not self._active:
            return
        rec = self._record(self._step)
        if self.weights and self._params:
            rec.add("weights", list(builtins.range(len(self._params))), stats_async(self._params))

    def _on_step_end(self, module: Any, inputs: Any, output: Any) -> None:
        self._flush("activations")

    def _on_output(self, mi: int, module: Any, inputs: Any, output: Any) -> None:
        if not self._active:
            return
        if type(output) is self._tensor_type:  # the common case, without the recursion
            if not (output.is_floating_point() and output.layout is self._strided
                    and output.device.type != "meta"):
                return
            tensors = [output]
        else:
            tensors = _float_tensors(output, [])
        if not tensors:
            return
        site = self._site(mi)
        step = self._step
        if self.activations:
            for t in tensors:
                version = _version(t)
                if site.eager or version is None:
                    self._reduce("activations", [(site.index, t, version, step)])
                else:
                    self._hold("activations", (site.index, t, version, step))
        if self.gradients and self._grad_enabled():
            for t in tensors:
                if t.requires_grad:
                    t.register_hook(partial(self._on_grad, site.index, step))

    def _on_grad(self, si: int, step: int, grad: Any) -> None:
        if grad is None:
            return
        if not self._callback_queued:
            self._callback_queued = True
            try:
                from torch.autograd import Variable
                Variable._execution_engine.queue_callback(self._on_backward_end)
            except Exception:  # no engine callback: reduced at the next step or read
                pass
        version = _version(grad)
        if self._sites[si].eager or version is None:
            self._reduce("gradients", [(si, grad, version, step)])
        else:
            self._hold("gradients", (si, grad, version, step))

    def _on_backward_end(self) -> None:
        self._callback_queued = False
        self._flush("gradients")

    def _before_inplace(self, module: Any, inputs: Any) -> None:
        if not self._pending_storage:
            return
        import torch
        for t in inputs:
            if isinstance(t, torch.Tensor) and _storage_key(t) in self._pending_storage:
                self._flush("activations")
                return

    # ------------------------------------------------------------------------------ reducing

    def _hold(self, kind: str, item: Tuple[int, Any, Optional[int], int]) -> None:
        t = item[1]
        self._pending[kind].append(item)
        if kind == "activations" and self._track_storage:
            key = _storage_key(t)
            self._pending_storage[key] = self._pending_storage.get(key, 0) + 1
        self._pending_bytes[kind] += t.numel() * t.element_size()
        if self._pending_bytes[kind] > self.buffer_bytes:
            self._flush(kind)

    def _flush(self, kind: str) -> None:
        items = self._pending[kind]
        if not items:
            return
        self._pending[kind] = []
        self._pending_bytes[kind] = 0
        if kind == "activations":
            self._pending_storage.clear()
        fresh = []
        for item in items:
            si, t, version, _ = item
            if _version(t) != version:
                self._stale(kind, si)
            else:
                fresh.append(item)
        if fresh:
            self._reduce(kind, fresh)

    def _stale(self, kind: str, si: int) -> None:
        site = self._sites[si]
        site.eager = True
        if (kind, si) not in self._warned:
            self._warned.add((kind, si))
            what = "output" if kind == "activations" else "output gradient"
            warnings.warn(
                f"fastinit.watch: the {what} of layer {site.name!r} was modified in place after "
                "its hook (by an in-place operation outside a module with inplace=True); this "
                "step's record of it is dropped, and from now on it is reduced at its hook",
                RuntimeWarning, stacklevel=3)

    def _reduce(self, kind: str, items: List[Tuple[int, Any, Optional[int], int]]) -> None:
        by_step: Dict[int, List[Tuple[int, Any]]] = {}
        for si, t, _, step in items:
            by_step.setdefault(step, []).append((si, t))
        for step, group in by_step.items():
            sites = [si for si, _ in group]
            tensors = [t for _, t in group]
            rec = self._record(step)
            if kind == "activations":
                rec.add(kind, sites, stats_async(tensors, bins=self.bins, range=self.act_range))
            else:
                rec.add(kind, sites, stats_async(tensors))
                if self.bins:
                    import torch
                    with torch.no_grad():
                        logs = [t.detach().abs().log10_() for t in tensors]
                    rec.add(_GRAD_LOG, sites, stats_async(logs, bins=self.bins, range=self.grad_range))

    def _record(self, step: int) -> _Step:
        rec = self._steps.get(step)
        if rec is None:
            rec = self._steps[step] = _Step(step)
            if self.history is not None:
                while len(self._steps) > self.history:
                    self._steps.popitem(last=False)
        return rec

    # -------------------------------------------------------------------------------- reading

    def _materialize(self) -> None:
        """Flush the pending tensors and bring every record to the host (one sync per device)."""
        self._flush("activations")
        self._flush("gradients")
        todo = [c for rec in self._steps.values() for chunks in rec.chunks.values()
                for c in chunks if isinstance(c[1], DeferredStats)]
        if todo:
            for c, host in zip(todo, _host_records([c[1] for c in todo])):
                c[1] = host

    def _rows(self, kind: str, step: int) -> Dict[int, np.ndarray]:
        """site index -> merged raw record, for one kind at one (materialized) step."""
        rec = self._steps.get(step)
        if rec is None:
            return {}
        per: Dict[int, List[np.ndarray]] = {}
        for sites, host in rec.chunks.get(kind, []):
            for si, row in zip(sites, host):
                per.setdefault(si, []).append(row)
        return {si: _merge_rows(np.stack(rows)) for si, rows in per.items()}

    def _resolve_steps(self, step: StepArg, kind: str) -> List[int]:
        if not self._steps:
            raise RuntimeError("fastinit.watch: nothing recorded yet: run the model (a step is "
                               "one call of model(...)) inside the watch")
        if step is None:
            having = [s for s, r in self._steps.items() if r.chunks.get(kind)]
            return [having[-1]] if having else [next(reversed(self._steps))]
        if step == "all":
            return list(self._steps)
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"fastinit.watch: step must be None, an int or 'all', got {step!r}")
        step = int(step)
        if step < 0:
            keys = list(self._steps)
            if -step > len(keys):
                raise IndexError(f"fastinit.watch: step {step}: only {len(keys)} recorded steps")
            return [keys[step]]
        if step not in self._steps:
            raise KeyError(f"fastinit.watch: step {step} is not recorded (recorded: every "
                           f"{self.every} steps; in history: {self._describe_steps()})")
        return [step]

    def _default_step(self) -> StepArg:
        """The last complete recorded step: the latest with activations and (when watched)
        gradients; else the latest recorded step."""
        self._materialize()
        want = [k for k in ("activations", "gradients") if getattr(self, k)]
        for s in reversed(self._steps):
            if all(self._steps[s].chunks.get(k) for k in want):
                return s
        return None

    def _describe_steps(self) -> str:
        keys = list(self._steps)
        if len(keys) <= 6:
            return str(keys)
        return f"[{keys[0]}, {keys[1]}, ..., {keys[-1]}] ({len(keys)} steps)"

    @staticmethod
    def _kind(kind: str) -> str:
        k = _KIND_ALIASES.get(kind)
        if k is None:
            raise ValueError(f"fastinit.watch: kind must be one of {KINDS}, got {kind!r}")
        return k

    def _raw(self, kind: str, step: StepArg) -> Dict[int, np.ndarray]:
        self._materialize()
        steps = self._resolve_steps(step, kind)
        per: Dict[int, List[np.ndarray]] = {}
        for s in steps:
            for si, row in self._rows(kind, s).items():
                per.setdefault(si, []).append(row)
        return {si: _merge_rows(np.stack(rows)) for si, rows in per.items()}

    def _sites_of(self, kind: str) -> List[_Site]:
        return self._param_sites if kind == "weights" else self._sites

    @property
    def steps(self) -> List[int]:
        """The recorded steps still in the history (0, every, 2 * every, ...)."""
        return list(self._steps)

    @property
    def step(self) -> int:
        """The current step: the number of forward calls of the model so far, minus one."""
        return self._step

    @property
    def layers(self) -> List[str]:
        """The names of the watched outputs that have run, in the order they first ran."""
        return [s.name for s in self._sites]

    @property
    def parameters(self) -> List[str]:
        """The names of the watched parameters (``layer.weight``, ``layer.bias``, ...)."""
        return [s.name for s in self._param_sites]

    def records(self, kind: str = "activations", step: StepArg = None) -> Dict[str, Stats]:
        """``{name: Stats}`` of one kind (``"activations"``, ``"gradients"``, ``"weights"``),
        names in execution order (parameters: in module order).

        step: None (default) for the last recorded step that has this kind; an int for that
        step (negative: counted from the end of the history); ``"all"`` for the statistics over
        every recorded step in the history together (Chan's merge).

        >>> acts = w.records("activations")
        >>> [s.std for s in acts.values()]
        >>> w.records("gradients", step="all")["fc1"].rms
        """
        kind = self._kind(kind)
        raw = self._raw(kind, step)
        sites = self._sites_of(kind)
        return {sites[si].name: _stats_of(raw[si]) for si in sorted(raw)}

    def histograms(self, kind: str = "activations",
                   step: StepArg = None) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
        """``{layer: (counts, edges)}``: activation histograms over values, gradient histograms
        over **log10 |g|** (exact zeros left out). Needs ``bins > 0``.

        >>> counts, edges = w.histograms("gradients")["fc1"]   # edges in decades
        """
        kind = self._kind(kind)
        if kind == "weights":
            raise ValueError("fastinit.watch: weights have no histograms (activations and "
                             "gradients do, with bins > 0)")
        if not self.bins:
            raise ValueError("fastinit.watch: no histograms were recorded: pass bins=64 (say) "
                             "to fastinit.watch")
        raw = self._raw(_GRAD_LOG if kind == "gradients" else kind, step)
        out = {}
        for si in sorted(raw):
            row = raw[si]
            out[self._sites[si].name] = (row[ns.HEAD:].copy(),
                                         ns.hist_edges(row[ns.HIST_LO], row[ns.HIST_HI], self.bins))
        return out

    def series(self, kind: str = "activations",
               field: str = "std") -> Tuple[np.ndarray, List[str], np.ndarray]:
        """One statistic over training: ``(steps, names, values)`` with ``values[i, j]`` the
        ``field`` of layer ``names[j]`` at ``steps[i]`` (NaN where not recorded).

        >>> steps, names, std = w.series("gradients", "std")
        """
        kind = self._kind(kind)
        if field not in Stats.__dataclass_fields__ or field in ("hist", "edges"):
            raise ValueError(f"fastinit.watch: field must be a scalar Stats field "
                             f"(mean, std, rms, ...), got {field!r}")
        self._materialize()
        steps = list(self._steps)
        sites = self._sites_of(kind)
        values = np.full((len(steps), len(sites)), np.nan)
        for i, s in enumerate(steps):
            for si, row in self._rows(kind, s).items():
                values[i, si] = float(getattr(_stats_of(row), field))
        return np.array(steps, dtype=np.int64), [s.name for s in sites], values

    def _default_profile(self) -> List[int]:
        """The sites a verdict looks at, in execution order: those of the most common module
        type without parameters (the nonlinearities: the activations of Glorot & Bengio) when
        there are at least two of them, else those of the most common type."""
        if not self._sites:
            return []
        counts: Dict[str, List[int]] = {}
        for s in self._sites:
            counts.setdefault(s.type_name, []).append(s.index)
        free = [v for v in counts.values() if not self._sites[v[0]].has_params and len(v) >= 2]
        if free:
            return max(free, key=len)
        return max(counts.values(), key=len)

    def verdicts(self, step: StepArg = None, layers: Optional[Sequence[str]] = None,
                 *, vanishing: float = VANISHING_RATIO,
                 exploding: float = EXPLODING_RATIO) -> Dict[str, Verdict]:
        """``{"activations": Verdict, "gradients": Verdict}`` from the per-layer std profile
        (see :func:`verdict`). ``layers``: the layer names to compare, in forward order
        (default: the outputs of the most common parameter-free module type, e.g. every
        ``Tanh``, when there are two or more; else of the most common type).

        >>> w.verdicts()["gradients"].label
        'vanishing'
        """
        if step is None:
            step = self._default_step()
        if layers is None:
            idx = self._default_profile()
        else:
            by_name = {s.name: s.index for s in self._sites}
            missing = [n for n in layers if n not in by_name]
            if missing:
                raise KeyError(f"fastinit.watch: no recorded layer named {missing[0]!r}")
            idx = [by_name[n] for n in layers]
        out = {}
        for kind in ("activations", "gradients"):
            if not getattr(self, kind):
                continue
            raw = self._raw(kind, step)
            stds = [_stats_of(raw[i]).std for i in idx if i in raw]
            if kind == "gradients":
                stds = stds[::-1]  # gradients propagate from the output to the input
            out[kind] = verdict(stds, vanishing=vanishing, exploding=exploding)
        return out

    def table(self, step: StepArg = None) -> List[Dict[str, Any]]:
        """One dict per layer (execution order) at one step (default: the last recorded):
        ``layer, type, act_mean, act_std, act_min, act_max, act_zeros`` (fraction of exact
        zeros), ``act_nonfinite``, ``grad_mean, grad_std, grad_rms, grad_nonfinite``,
        ``weight_std, weight_norm`` (of the layer's ``weight``, else its first parameter). Values
        not recorded are None.

        >>> import pandas; pandas.DataFrame(w.table())
        """
        if step is None:
            step = self._default_step()
        act = self._raw("activations", step) if self.activations else {}
        grad = self._raw("gradients", step) if self.gradients else {}
        wts = self._raw("weights", step) if (self.weights and self._params) else {}
        weight_of: Dict[str, Stats] = {}
        for si in sorted(wts):
            name = self._param_sites[si].name
            layer, _, pname = name.rpartition(".")
            if layer not in weight_of or pname == "weight":
                weight_of[layer] = _stats_of(wts[si])
        rows = []
        root = type(self.model).__name__
        # the outputs in execution order, then the layers seen only through their weights
        # (weights-only watches, modules that have not run)
        entries = [(s.name, s.type_name, s.index) for s in self._sites]
        seen = {s.name.split("#")[0] for s in self._sites}
        for ps in self._param_sites:
            layer = ps.name.rpartition(".")[0]
            if (layer or root) not in seen and layer in weight_of:
                seen.add(layer or root)
                entries.append((layer or root, ps.type_name, None))
        for name, type_name, index in entries:
            base = name.split("#")[0]
            a = _stats_of(act[index]) if index in act else None
            g = _stats_of(grad[index]) if index in grad else None
            wt = weight_of.get(base) or (weight_of.get("") if base == root else None)
            rows.append({
                "layer": name, "type": type_name,
                "act_mean": a.mean if a else None, "act_std": a.std if a else None,
                "act_min": a.min if a else None, "act_max": a.max if a else None,
                "act_zeros": (a.zeros / a.count if a.count else math.nan) if a else None,
                "act_nonfinite": (a.nans + a.infs) if a else None,
                "grad_mean": g.mean if g else None, "grad_std": g.std if g else None,
                "grad_rms": g.rms if g else None,
                "grad_nonfinite": (g.nans + g.infs) if g else None,
                "weight_std": wt.std if wt else None, "weight_norm": wt.norm if wt else None,
            })
        return rows

    def report(self, step: StepArg = None) -> str:
        """A printable per-layer table (:meth:`table`) with the verdicts.

        >>> print(w.report())
        """
        if step is None:
            step = self._default_step()
        steps = self._resolve_steps(step, "activations" if self.activations else "weights")
        rows = self.table(step)
        cols = [("layer", "layer"), ("type", "type"), ("act_mean", "act mean"),
                ("act_std", "act std"), ("act_zeros", "zeros"), ("grad_std", "grad std"),
                ("grad_rms", "grad rms"), ("weight_std", "weight std")]
        cols = [c for c in cols if any(r[c[0]] is not None for r in rows) or c[0] in ("layer", "type")]

        def fmt(v: Any) -> str:
            if v is None:
                return "-"
            if isinstance(v, str):
                return v
            if isinstance(v, (int, np.integer)):
                return str(v)
            return f"{v:.3g}"

        table = [[h for _, h in cols]] + [[fmt(r[k]) for k, _ in cols] for r in rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
        lines = [f"fastinit.watch: step {steps[0] if len(steps) == 1 else 'all'} "
                 f"({len(self._steps)} recorded, every {self.every})"]
        for i, line in enumerate(table):
            lines.append("  ".join(c.ljust(w) if j < 2 else c.rjust(w)
                                   for j, (c, w) in enumerate(zip(line, widths))))
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        if self.activations or self.gradients:
            v = self.verdicts(step)
            lines.append("verdict: " + "; ".join(f"{k} {v[k]}" for k in v))
        return "\n".join(lines)

    def _all_records(self) -> List[Dict[str, Any]]:
        self._materialize()
        out = []
        for s in self._steps:
            entry: Dict[str, Any] = {"step": s}
            for kind in KINDS:
                sites = self._sites_of(kind)
                rows = self._rows(kind, s)
                entry[kind] = {sites[si].name: _stats_of(rows[si]) for si in sorted(rows)}
            if self.bins and self.gradients:
                rows = self._rows(_GRAD_LOG, s)
                entry["gradients_log10_hist"] = {
                    self._sites[si].name: (r[ns.HEAD:].copy(),
                                           ns.hist_edges(r[ns.HIST_LO], r[ns.HIST_HI], self.bins))
                    for si, r in sorted(rows.items())}
            out.append(entry)
        return out

    def to_json(self, path: Optional[str] = None, *, indent: Optional[int] = None) -> str:
        """Every recorded step as JSON (and written to ``path`` when given). Layout::

            {"every": 1, "bins": 0, "layers": [{"name", "type"}], "parameters": [...],
             "steps": [{"step": 0, "activations": {layer: {count, mean, std, ..., hist, edges}},
                        "gradients": {...}, "weights": {param: {...}}}]}

        Gradient histograms are over log10 |g| (``hist_of``). NaN is written as null, ±Inf as
        "inf"/"-inf".

        >>> data = json.loads(w.to_json())
        """
        steps = []
        for entry in self._all_records():
            item: Dict[str, Any] = {"step": entry["step"]}
            for kind in KINDS:
                item[kind] = {}
                for name, st in entry[kind].items():
                    d = {k: _nan_to_none(v) for k, v in st.to_dict().items()}
                    if kind == "gradients":
                        d["hist"] = d["edges"] = None
                    item[kind][name] = d
            for name, (counts, edges) in entry.get("gradients_log10_hist", {}).items():
                if name in item["gradients"]:
                    item["gradients"][name]["hist"] = counts.tolist()
                    item["gradients"][name]["edges"] = edges.tolist()
            steps.append(item)
        doc = {"format": "fastinit.watch/1", "every": self.every, "bins": self.bins,
               "hist_of": {"activations": "value", "gradients": "log10|g|"},
               "layers": [{"name": s.name, "type": s.type_name} for s in self._sites],
               "parameters": [{"name": s.name, "type": s.type_name} for s in self._param_sites],
               "steps": steps}
        text = json.dumps(doc, indent=indent)
        if path is not None:
            with open(path, "w") as f:
                f.write(text)
        return text

    CSV_FIELDS = ("step", "kind", "layer", "type", "count", "mean", "std", "var", "min", "max",
                  "abs_mean", "rms", "norm", "zeros", "nans", "infs")

    def to_csv(self, path: Optional[str] = None) -> str:
        """Every recorded step as CSV, one row per (step, kind, layer); columns
        :attr:`CSV_FIELDS` (no histograms: use :meth:`to_json`). Written to ``path`` when given.

        >>> import pandas; df = pandas.read_csv(io.StringIO(w.to_csv()))
        """
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.CSV_FIELDS)
        types = {s.name: s.type_name for s in self._sites + self._param_sites}
        for entry in self._all_records():
            for kind in KINDS:
                for name, st in entry[kind].items():
                    writer.writerow([entry["step"], kind, name, types.get(name, "")]
                                    + [repr(getattr(st, f)) if isinstance(getattr(st, f), float)
                                       else getattr(st, f) for f in self.CSV_FIELDS[4:]])
        text = buf.getvalue()
        if path is not None:
            with open(path, "w", newline="") as f:
                f.write(text)
        return text

    def plot(self, path: str, step: StepArg = None, *, title: Optional[str] = None) -> str:
        """Draw per-layer mean and std of the activations and gradients (and, with ``bins > 0``,
        per-layer histograms as heatmaps, as in Glorot & Bengio 2010) into a PNG at ``path``.
        Needs matplotlib. Returns ``path``.

        >>> w.plot("watch.png")
        """
        from .plots import plot_watch
        return plot_watch(self, path, step=step, title=title)

    def clear(self) -> None:
        """Forget every record (the hooks stay)."""
        self._pending = {"activations": [], "gradients": []}
        self._pending_bytes = {"activations": 0, "gradients": 0}
        self._pending_storage.clear()
        self._steps.clear()


def watch(model: Any, *, activations: bool = True, gradients: bool = True, weights: bool = True,
          modules: ModuleFilter = None, every: int = 1, bins: int = 0, act_range: Range = None,
          grad_range: Range = None, per_call: bool = False, history: Optional[int] = 1000,
          buffer_bytes: int = 256 << 20) -> Watch:
    """Record per-layer statistics of ``model`` (a ``torch.nn.Module``) while it runs.

    - activations / gradients / weights: what to record (each module's output, the gradient
      dL/d output, each module's own parameters at the start of a step);
    - modules: which modules: None for every leaf module; a callable ``(name, module) -> bool``;
      or a list of module types and names (glob patterns such as ``"blocks.*.mlp"``);
    - every: record steps 0, every, 2 * every, ... (a step is one call of ``model(...)``);
    - bins: histogram bins (0: none); act_range: the activation histogram range (default: each
      layer's (min, max)); grad_range: the range of log10 |g| for gradient histograms (default:
      each layer's own);
    - per_call: a module called several times in a step (a shared ``nn.ReLU``) gives one row per
      call (``act``, ``act#1``, ...) instead of one merged row;
    - history: how many recorded steps to keep (None: all); buffer_bytes: the most tensor bytes
      held before an early reduction.

    Returns a :class:`Watch`: use it as a context manager (the hooks go away at the end of the
    ``with`` block), or call ``.remove()``.

    >>> with fastinit.watch(model, modules=[torch.nn.Tanh], bins=64) as w:
    ...     model(x).logsumexp(-1).mean().backward()
    >>> print(w.report()); w.plot("tanh.png")
    """
    return Watch(model, activations=activations, gradients=gradients, weights=weights,
                 modules=modules, every=every, bins=bins, act_range=act_range,
                 grad_range=grad_range, per_call=per_call, history=history,
                 buffer_bytes=buffer_bytes)
