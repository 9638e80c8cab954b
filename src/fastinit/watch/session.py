"""The public face of fastinit.watch: :func:`watch` and the :class:`Watch` it returns (hooks in
:mod:`.recorder`, records in :mod:`.records`, tables and exports in :mod:`.tables`)."""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..stats.record import Stats
from . import tables
from .recorder import Recorder
from .records import (
    CENTERED,
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
from .select import ModuleFilter, select_modules, select_sites
from .verdicts import (
    ACTIVATION_TYPES,
    DEAD_SHARE,
    EXPLODING_RATIO,
    SATURATED_SLOPE,
    VANISHING_RATIO,
    Verdict,
    judge,
)

__all__ = ["watch", "Watch"]


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
                 buffer_bytes: int = 256 << 20, batch_stats: bool = False) -> None:
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
        self.batch_stats = bool(batch_stats)
        modules = select_modules(model, modules)
        if not modules:
            raise ValueError("fastinit.watch: the module filter selected no module of the model")
        self._history = History(history, every)
        self._recorder = Recorder(model, modules, self._history, activations=self.activations,
                                  gradients=self.gradients, weights=self.weights, every=every,
                                  bins=bins, act_range=self.act_range, grad_range=self.grad_range,
                                  per_call=self.per_call, buffer_bytes=buffer_bytes,
                                  batch_stats=self.batch_stats)

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

    def select(self, layers: ModuleFilter = None) -> List[str]:
        """The names of the recorded layers a selector picks, in the order they first ran.

        layers: None (default) for the **weight layers** (modules that hold a parameter of two
        or more dimensions: Linear, Conv*, Embedding, ...; every layer when fewer than two
        ran); ``"all"``; module types (``nn.Conv2d``, ``[nn.ReLU, nn.GELU]``); name patterns,
        where ``*`` stays within one dotted component and ``**`` crosses them
        (``"transformer.h.*"``: the blocks; ``"**.mlp"``); or a callable
        ``(name, module) -> bool``. Plots, reports and verdicts take the same selector.

        >>> w.select([torch.nn.Conv2d])[:3]
        ['conv1', 'layer1.0.conv1', 'layer1.0.conv2']
        """
        return [s.name for s in select_sites(self._recorder.sites, layers,
                                             lambda s: s.has_weight)]

    def _judged(self, layers: ModuleFilter) -> Tuple[List[Any], Optional[List[Any]]]:
        """The sites a verdict judges, in forward order, and their reference groups: by default
        the weight layers (one group) and the activation-function outputs (a group per type:
        judged against the first of their type, e.g. for saturation); else exactly the
        selected layers (one group: the first is the reference)."""
        sites = self._recorder.sites
        if layers is not None:
            return select_sites(sites, layers, lambda s: s.has_weight, "layers"), None
        weight = [s for s in sites if s.has_weight]
        acts = [s for s in sites if s.type_name in ACTIVATION_TYPES]
        if len(weight) < 2 and not acts:
            return list(sites), None
        chosen = sorted(weight + acts, key=lambda s: s.index)
        return chosen, ["weight" if s.has_weight else s.type_name for s in chosen]

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

    def verdicts(self, step: StepArg = None, layers: ModuleFilter = None,
                 *, vanishing: float = VANISHING_RATIO, exploding: float = EXPLODING_RATIO,
                 dead: float = DEAD_SHARE, saturated: float = SATURATED_SLOPE
                 ) -> Dict[str, Verdict]:
        """``{"activations": Verdict, "gradients": Verdict}``: each judged layer labelled
        healthy, vanishing, exploding, dead or saturated, and the network by its worst layer
        (see :mod:`fastinit.watch.verdicts` for the rules and thresholds).

        layers: None (default) judges the weight layers (Linear, Conv*, ...: std against the
        first of them; gradients against the second-to-last, since the last one's output
        gradient is the loss's own derivative, dL/dlogits) and the activation-function outputs
        (``nn.ReLU``, ``nn.Tanh``, ...: dead, saturated; std against the first of their type),
        never Dropout, normalization or container outputs; any other selector (see
        :meth:`select`) judges exactly those layers, the first in propagation order being the
        reference. With ``batch_stats=True`` the std judged is the spread across the batch.

        >>> w.verdicts()["gradients"].label
        'vanishing'
        >>> print(w.verdicts(layers=[torch.nn.Tanh])["activations"])
        """
        if step is None:
            step = self._default_step()
        sites, groups = self._judged(layers)
        out = {}
        for kind in ("activations", "gradients"):
            if not getattr(self, kind):
                continue
            raw = self._raw(kind, step)
            centered = self._raw(CENTERED, step) if kind == "activations" and \
                self.batch_stats else {}
            keep = [i for i, s in enumerate(sites) if s.index in raw]
            entries = [(sites[i].name, sites[i].type_name, stats_of(raw[sites[i].index]),
                        stats_of(centered[sites[i].index]) if sites[i].index in centered
                        else None) for i in keep]
            output_layer = None
            if groups and kind == "gradients":  # the default profile: the last weight layer
                weight = [sites[i].name for i in keep if groups[i] == "weight"]
                output_layer = weight[-1] if len(weight) >= 3 else None
            out[kind] = judge(entries, kind, groups=[groups[i] for i in keep] if groups else None,
                              output_layer=output_layer, vanishing=vanishing,
                              exploding=exploding, dead=dead, saturated=saturated)
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

    def plot(self, path: str, step: StepArg = None, *, layers: ModuleFilter = None,
             title: Optional[str] = None) -> str:
        """Draw one step, layer by layer, into a PNG at ``path``: std (log scale, zeros marked on
        the bottom edge, the healthy band of the verdict shaded, each layer's verdict as a
        coloured square), mean and share of exact zeros of the activations and the gradients,
        one colour per module type, layer names on the axis; with ``bins > 0`` the per-layer
        histograms as heatmaps (Glorot & Bengio 2010). ``layers``: which layers (default: the
        weight layers; see :meth:`select`). Needs matplotlib. Returns ``path``.

        >>> w.plot("watch.png")
        >>> w.plot("blocks.png", layers="transformer.h.*")
        """
        from .plots import plot_watch  # matplotlib is optional: imported when drawing
        return plot_watch(self, path, step=step, layers=layers, title=title)

    def plot_steps(self, path: str, *, kind: str = "activations", layers: ModuleFilter = None,
                   max_layers: int = 12, title: Optional[str] = None) -> str:
        """Draw the recorded steps into a PNG at ``path``: each selected layer's std over the
        steps and, with ``bins > 0``, fastai's "colorful dimension" per layer (the histogram of
        every recorded step side by side). Needs matplotlib. Returns ``path``.

        >>> with fastinit.watch(model, bins=40, every=10) as w:
        ...     train(model)
        >>> w.plot_steps("relu_over_training.png", layers=[torch.nn.ReLU])
        """
        from .plots import plot_steps
        return plot_steps(self, path, kind=kind, layers=layers, max_layers=max_layers,
                          title=title)


def watch(model: Any, *, activations: bool = True, gradients: bool = True, weights: bool = True,
          modules: ModuleFilter = None, every: int = 1, bins: int = 0, act_range: Range = None,
          grad_range: Range = None, per_call: bool = False, history: Optional[int] = 1000,
          buffer_bytes: int = 256 << 20, batch_stats: bool = False) -> Watch:
    """Record per-layer statistics of ``model`` (a ``torch.nn.Module``) while it runs.

    - activations / gradients / weights: what to record (each module's output, the gradient
      dL/d output, each module's own parameters at the start of a step);
    - modules: which modules: None for every leaf module; ``"all"``; a callable
      ``(name, module) -> bool``; or a list of module types and name patterns, where ``*`` stays
      within one dotted component and ``**`` crosses them (``"transformer.h.*"`` hooks the
      blocks themselves, ``"blocks.*.mlp"`` their MLPs; see :meth:`Watch.select`);
    - every: record steps 0, every, 2 * every, ... (a step is one call of ``model(...)``);
    - bins: histogram bins (0: none); act_range: the activation histogram range (default: each
      layer's (min, max)); grad_range: the range of log10 |g| for gradient histograms (default:
      each layer's own);
    - per_call: a module called several times in a step (a shared ``nn.ReLU``) gives one row per
      call (``act``, ``act#1``, ...) instead of one merged row;
    - history: how many recorded steps to keep (None: all); buffer_bytes: the most tensor bytes
      held before an early reduction;
    - batch_stats: also record each output minus its mean over the batch (dim 0): the spread
      across examples, without per-unit offsets (``w.records("centered")``); verdicts then
      judge that spread (a sigmoid layer stuck at 0.5 + a per-unit offset has a total std of
      0.01 but carries nothing about the input). One more pass over each output.

    Forwards that run during backward (activation checkpointing recomputes them) are not
    recorded again; their gradients are recorded once.

    Returns a :class:`Watch`: use it as a context manager (the hooks go away at the end of the
    ``with`` block), or call ``.remove()``.

    >>> with fastinit.watch(model, modules=[torch.nn.Tanh], bins=64) as w:
    ...     model(x).logsumexp(-1).mean().backward()
    >>> print(w.report()); w.plot("tanh.png")
    """
    return Watch(model, activations=activations, gradients=gradients, weights=weights,
                 modules=modules, every=every, bins=bins, act_range=act_range,
                 grad_range=grad_range, per_call=per_call, history=history,
                 buffer_bytes=buffer_bytes, batch_stats=batch_stats)
