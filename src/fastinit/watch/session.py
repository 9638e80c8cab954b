"""The public face of fastinit.watch: :func:`watch` and the :class:`Watch` it returns (hooks in
:mod:`.recorder`, records in :mod:`.records`, tables and exports in :mod:`.tables`)."""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..stats.record import Stats
from . import tables
from .recorder import ModuleFilter, Recorder, select_modules
from .records import (
    GRAD_LOG,
    History,
    Range,
    StepArg,
    StepRecord,
    check_range,
    histogram_of,
    kind_name,
    stats_of,
)
from .verdicts import EXPLODING_RATIO, VANISHING_RATIO, Verdict, verdict

__all__ = ["watch", "Watch", "verdict", "Verdict", "VANISHING_RATIO", "EXPLODING_RATIO"]


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

    CSV_FIELDS = tables.CSV_FIELDS
    _select = staticmethod(select_modules)  # (model, modules filter) -> [(name, module)]

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
        self.act_range = check_range("act_range", act_range)
        self.grad_range = check_range("grad_range", grad_range)
        if (self.act_range or self.grad_range) and not bins:
            raise ValueError("fastinit.watch: act_range / grad_range are histogram ranges and "
                             "need bins > 0")
        self.per_call = bool(per_call)
        self.history = history
        self.buffer_bytes = buffer_bytes
        modules = select_modules(model, modules)
        if not modules:
            raise ValueError("fastinit.watch: the module filter selected no module of the model")
        self._history = History(history, every)
        self._recorder = Recorder(model, modules, self._history, activations=self.activations,
                                  gradients=self.gradients, weights=self.weights, every=every,
                                  bins=bins, act_range=self.act_range, grad_range=self.grad_range,
                                  per_call=self.per_call, buffer_bytes=buffer_bytes)

    # ------------------------------------------------------------------------------ lifetime

    def remove(self) -> None:
        """Remove the hooks (the records stay readable). Called on leaving the ``with`` block."""
        self._recorder.remove()

    close = remove

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "removed" if self._recorder.closed else "active"
        return (f"<fastinit.Watch {state}: {len(self._recorder.modules)} modules, "
                f"{len(self._recorder.params)} parameters, every={self.every}, "
                f"{len(self._history.steps)} recorded steps>")

    def clear(self) -> None:
        """Forget every record (the hooks stay)."""
        self._recorder.clear()
        self._history.clear()

    # ------------------------------------------------------------------------------ internals

    @property
    def _steps(self) -> "Dict[int, StepRecord]":
        return self._history.steps

    def _materialize(self) -> None:
        """Reduce the held tensors and bring every record to the host (one sync per device)."""
        self._recorder.flush_all()
        self._history.to_host()

    def _default_step(self) -> StepArg:
        """The last complete recorded step: the latest with activations and (when watched)
        gradients; else None (the latest recorded step of each kind)."""
        self._materialize()
        return self._history.last_complete(
            [k for k in ("activations", "gradients") if getattr(self, k)])

    def _raw(self, kind: str, step: StepArg) -> Dict[int, np.ndarray]:
        """site index -> raw record of one kind at ``step`` (merged over steps for "all")."""
        self._materialize()
        return self._history.merged(kind, self._history.resolve(step, kind))

    def _default_profile(self) -> List[int]:
        """The sites a verdict looks at, in execution order: those of the most common module
        type without parameters (the nonlinearities: the activations of Glorot & Bengio) when
        there are at least two of them, else those of the most common type."""
        sites = self._recorder.sites
        if not sites:
            return []
        counts: Dict[str, List[int]] = {}
        for s in sites:
            counts.setdefault(s.type_name, []).append(s.index)
        free = [v for v in counts.values() if not sites[v[0]].has_params and len(v) >= 2]
        if free:
            return max(free, key=len)
        return max(counts.values(), key=len)

    # ------------------------------------------------------------------------------ reading

    @property
    def steps(self) -> List[int]:
        """The recorded steps still in the history (0, every, 2 * every, ...)."""
        return list(self._history.steps)

    @property
    def step(self) -> int:
        """The current step: the number of forward calls of the model so far, minus one."""
        return self._recorder.step

    @property
    def layers(self) -> List[str]:
        """The names of the watched outputs that have run, in the order they first ran."""
        return [s.name for s in self._recorder.sites]

    @property
    def parameters(self) -> List[str]:
        """The names of the watched parameters (``layer.weight``, ``layer.bias``, ...)."""
        return [s.name for s in self._recorder.param_sites]

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
        kind = kind_name(kind)
        raw = self._raw(kind, step)
        sites = self._recorder.sites_of(kind)
        return {sites[si].name: stats_of(raw[si]) for si in sorted(raw)}

    def histograms(self, kind: str = "activations",
                   step: StepArg = None) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
        """``{layer: (counts, edges)}``: activation histograms over values, gradient histograms
        over **log10 |g|** (exact zeros left out). Needs ``bins > 0``.

        >>> counts, edges = w.histograms("gradients")["fc1"]   # edges in decades
        """
        kind = kind_name(kind)
        if kind == "weights":
            raise ValueError("fastinit.watch: weights have no histograms (activations and "
                             "gradients do, with bins > 0)")
        if not self.bins:
            raise ValueError("fastinit.watch: no histograms were recorded: pass bins=64 (say) "
                             "to fastinit.watch")
        raw = self._raw(GRAD_LOG if kind == "gradients" else kind, step)
        sites = self._recorder.sites
        return {sites[si].name: histogram_of(raw[si], self.bins) for si in sorted(raw)}

    def series(self, kind: str = "activations",
               field: str = "std") -> Tuple[np.ndarray, List[str], np.ndarray]:
        """One statistic over training: ``(steps, names, values)`` with ``values[i, j]`` the
        ``field`` of layer ``names[j]`` at ``steps[i]`` (NaN where not recorded).

        >>> steps, names, std = w.series("gradients", "std")
        """
        kind = kind_name(kind)
        if field not in Stats.__dataclass_fields__ or field in ("hist", "edges"):
            raise ValueError(f"fastinit.watch: field must be a scalar Stats field "
                             f"(mean, std, rms, ...), got {field!r}")
        self._materialize()
        steps = list(self._history.steps)
        sites = self._recorder.sites_of(kind)
        values = np.full((len(steps), len(sites)), np.nan)
        for i, s in enumerate(steps):
            for si, row in self._history.rows(kind, s).items():
                values[i, si] = float(getattr(stats_of(row), field))
        return np.array(steps, dtype=np.int64), [s.name for s in sites], values

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
            by_name = {s.name: s.index for s in self._recorder.sites}
            missing = [n for n in layers if n not in by_name]
            if missing:
                raise KeyError(f"fastinit.watch: no recorded layer named {missing[0]!r}")
            idx = [by_name[n] for n in layers]
        out = {}
        for kind in ("activations", "gradients"):
            if not getattr(self, kind):
                continue
            raw = self._raw(kind, step)
            stds = [stats_of(raw[i]).std for i in idx if i in raw]
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
        return tables.table(self, step)

    def report(self, step: StepArg = None) -> str:
        """A printable per-layer table (:meth:`table`) with the verdicts.

        >>> print(w.report())
        """
        return tables.report(self, step)

    def to_json(self, path: Optional[str] = None, *, indent: Optional[int] = None) -> str:
        """Every recorded step as JSON (and written to ``path`` when given). Layout::

            {"every": 1, "bins": 0, "layers": [{"name", "type"}], "parameters": [...],
             "steps": [{"step": 0, "activations": {layer: {count, mean, std, ..., hist, edges}},
                        "gradients": {...}, "weights": {param: {...}}}]}

        Gradient histograms are over log10 |g| (``hist_of``). NaN is written as null, ±Inf as
        "inf"/"-inf".

        >>> data = json.loads(w.to_json())
        """
        return tables.to_json(self, path, indent=indent)

    def to_csv(self, path: Optional[str] = None) -> str:
        """Every recorded step as CSV, one row per (step, kind, layer); columns
        :attr:`CSV_FIELDS` (no histograms: use :meth:`to_json`). Written to ``path`` when given.

        >>> import pandas; df = pandas.read_csv(io.StringIO(w.to_csv()))
        """
        return tables.to_csv(self, path)

    def plot(self, path: str, step: StepArg = None, *, title: Optional[str] = None) -> str:
        """Draw per-layer mean and std of the activations and gradients (and, with ``bins > 0``,
        per-layer histograms as heatmaps, as in Glorot & Bengio 2010) into a PNG at ``path``.
        Needs matplotlib. Returns ``path``.

        >>> w.plot("watch.png")
        """
        from .plots import plot_watch  # matplotlib is optional: imported when drawing
        return plot_watch(self, path, step=step, title=title)


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
