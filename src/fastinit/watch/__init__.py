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

Which layers: ``modules=`` chooses the hooked modules (default: every leaf); plots, reports
and verdicts choose among the recorded layers with ``layers=`` (default: the weight layers,
Linear/Conv/Embedding...). Both take module types, name patterns (``*`` within one dotted
component, ``**`` across: ``"transformer.h.*"`` is the blocks), ``"all"`` or a callable
(:mod:`.select`).

Verdicts (:func:`verdict`, :meth:`Watch.verdicts`): each layer, in the direction of propagation,
is ``exploding`` (NaN/Inf, or std > 1e2 x the first layer's), ``vanishing`` (std < 1e-2 x the
first's), ``dead`` (>= 90% exact zeros), ``saturated`` (tanh/sigmoid mean slope < 0.3 of its
maximum) or ``healthy``; the network takes its worst layer's label (:mod:`.verdicts`).

Forwards recomputed during backward (activation checkpointing) are not recorded twice.

Modules: :mod:`.session` (:func:`watch`, :class:`Watch`), :mod:`.recorder` (the hooks),
:mod:`.select` (module and layer selectors), :mod:`.records` (what is kept per step),
:mod:`.tables` (rows, report, JSON, CSV), :mod:`.verdicts`, :mod:`.plots` and :mod:`.charts`
(matplotlib, imported when drawing). Imports: fastinit.stats and torch (at run time); never
model, init or the demo.
"""
from .session import Watch, watch
from .verdicts import (
    DEAD_SHARE,
    EXPLODING_RATIO,
    SATURATED_SLOPE,
    VANISHING_RATIO,
    LayerVerdict,
    Verdict,
    verdict,
)

__all__ = ["watch", "Watch", "verdict", "Verdict", "LayerVerdict", "VANISHING_RATIO",
           "EXPLODING_RATIO", "DEAD_SHARE", "SATURATED_SLOPE"]
