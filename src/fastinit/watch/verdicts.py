"""Verdicts on per-layer statistics, with stated thresholds: each layer, and a network as a whole,
is ``healthy``, ``vanishing``, ``exploding``, ``saturated`` or ``dead``.

A profile is a list of layers **in the direction of propagation** (activations: input to output;
gradients: output to input). Each layer is judged from its own numbers, in this order:

===========  =====================================================================================
exploding    a NaN or ±Inf value, or std > ``EXPLODING_RATIO`` (1e2) × the reference std
vanishing    std < ``VANISHING_RATIO`` (1e-2) × the reference std (std exactly 0 included)
dead         a share of exact zeros >= ``DEAD_SHARE`` (0.9): no signal passes (a dead ReLU layer)
saturated    tanh / sigmoid outputs whose mean slope is below ``SATURATED_SLOPE`` (0.3) of the
             activation's largest slope: tanh' = 1 - h², so mean slope = 1 - rms²; sigmoid' =
             h (1 - h), so mean slope = mean - rms², over its maximum 1/4
healthy      none of these
===========  =====================================================================================

The reference std is that of the first layer of the profile. The network's label is the first of
exploding, vanishing, dead, saturated that any judged layer has, else healthy; :class:`Verdict`
keeps every layer's label, so a reader can see where the trouble starts and how far it spreads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

#: a layer's std below this times the reference std is "vanishing", above the other "exploding"
VANISHING_RATIO = 1e-2
EXPLODING_RATIO = 1e2
#: a share of exact zeros at or above this is "dead"
DEAD_SHARE = 0.9
#: tanh/sigmoid outputs whose mean slope is below this fraction of the largest slope: "saturated"
SATURATED_SLOPE = 0.3

LABELS = ("healthy", "vanishing", "exploding", "saturated", "dead")
#: the order in which a network's label is chosen from its layers' labels (the worst first)
SEVERITY = ("exploding", "vanishing", "dead", "saturated")

_BOUNDED = {"Tanh": "tanh", "Sigmoid": "sigmoid"}


def mean_slope(kind: str, mean: float, rms: float) -> float:
    """The mean derivative of a bounded activation, over its largest value, from the mean and rms
    of its outputs h: tanh: mean(1 - h²) = 1 - rms²; sigmoid: mean(h(1 - h)) / (1/4) =
    4 (mean - rms²). 1 means every unit in the linear middle, 0 every unit at a bound.

    >>> mean_slope("tanh", 0.0, 0.5)
    0.75
    """
    if kind == "tanh":
        return 1.0 - rms * rms
    if kind == "sigmoid":
        return 4.0 * (mean - rms * rms)
    raise ValueError(f"mean_slope: a tanh or sigmoid output, got {kind!r}")


@dataclass(frozen=True)
class LayerVerdict:
    """One layer: its label, its std relative to the profile's reference (``ratio``), its share
    of exact zeros, and (tanh/sigmoid) its mean slope over the largest slope (else NaN)."""

    name: str
    label: str
    std: float
    ratio: float
    zeros: float = math.nan
    slope: float = math.nan

    def __str__(self) -> str:
        return f"{self.name}: {self.label} (x{self.ratio:.2g})"


@dataclass(frozen=True)
class Verdict:
    """The verdict on a per-layer profile, in the direction of propagation.

    label: ``"healthy"``, ``"vanishing"``, ``"exploding"``, ``"saturated"``, ``"dead"`` or
    ``"n/a"`` (no layer, a reference std of 0, or a single healthy layer); ratio: end std / start std; start,
    end: those stds; layers: how many; low, high: the smallest and largest std / start std over
    the profile; per_layer: one :class:`LayerVerdict` per layer; counts: layers per label;
    first: the first layer (in propagation order) with the network's label.
    """

    label: str
    ratio: float
    start: float
    end: float
    layers: int
    low: float = math.nan
    high: float = math.nan
    per_layer: Tuple[LayerVerdict, ...] = ()
    counts: Dict[str, int] = field(default_factory=dict)
    first: Optional[str] = None

    def __str__(self) -> str:
        if self.label == "n/a":
            return "n/a"
        if self.label in ("vanishing", "exploding"):
            extreme = self.low if self.label == "vanishing" else self.high
            how = "to 0" if extreme == 0 else ("to inf/nan" if not math.isfinite(extreme)
                                               else f"x{extreme:.2g}")
            return (f"{self.label} ({how} by {self.first}; {self.counts.get(self.label, 0)} of "
                    f"{self.layers} layers)")
        if self.label in ("dead", "saturated"):
            return f"{self.label} ({self.counts.get(self.label, 0)} of {self.layers} layers)"
        return f"healthy (last/first x{self.ratio:.2g}; {self.layers} layers judged)"


def judge_layer(name: str, std: float, reference: float, *, zeros: float = math.nan,
                slope: float = math.nan, nonfinite: bool = False,
                vanishing: float = VANISHING_RATIO, exploding: float = EXPLODING_RATIO,
                dead: float = DEAD_SHARE, saturated: float = SATURATED_SLOPE) -> LayerVerdict:
    """One layer's label from its std against ``reference``, its share of exact zeros and its
    mean slope (see the module docstring for the rules and their order)."""
    ratio = std / reference if reference > 0 else math.nan
    if nonfinite or not math.isfinite(std):
        label, ratio = "exploding", math.inf
    elif ratio > exploding:
        label = "exploding"
    elif ratio < vanishing:
        label = "vanishing"
    elif zeros >= dead:
        label = "dead"
    elif slope < saturated:
        label = "saturated"
    else:
        label = "healthy"
    return LayerVerdict(name, label, std, ratio, zeros, slope)


def combine(layers: Sequence[LayerVerdict]) -> Verdict:
    """The network's verdict from its layers' (in propagation order)."""
    n = len(layers)
    if n == 0:
        return Verdict("n/a", math.nan, math.nan, math.nan, 0)
    start, end = layers[0].std, layers[-1].std
    counts = {lab: sum(1 for v in layers if v.label == lab) for lab in LABELS}
    counts = {k: c for k, c in counts.items() if c}
    ratios = [v.ratio for v in layers]
    finite = [r for r in ratios if not math.isnan(r)]
    low = min(finite) if finite else math.nan
    high = max(finite) if finite else math.nan
    label = next((lab for lab in SEVERITY if counts.get(lab)), "healthy")
    if label == "healthy" and (n < 2 or not finite):
        # one layer (nothing to compare it with), or no reference std above 0
        return Verdict("n/a", math.nan, start, end, n, low, high, tuple(layers), counts)
    first = next((v.name for v in layers if v.label == label), None)
    ratio = end / start if start > 0 and math.isfinite(end) else (
        math.inf if not math.isfinite(end) else math.nan)
    return Verdict(label, ratio, start, end, n, low, high, tuple(layers), counts, first)


def verdict(stds: Iterable[float], *, zeros: Optional[Sequence[float]] = None,
            slopes: Optional[Sequence[float]] = None, names: Optional[Sequence[str]] = None,
            vanishing: float = VANISHING_RATIO, exploding: float = EXPLODING_RATIO,
            dead: float = DEAD_SHARE, saturated: float = SATURATED_SLOPE) -> Verdict:
    """Classify a per-layer profile given **in the direction of propagation** (activations: input
    to output; gradients: output to input). Each layer's std is compared with the first's:
    below ``vanishing`` (1e-2) times it → ``"vanishing"``; above ``exploding`` (1e2) times it, or
    NaN/Inf → ``"exploding"``; optional per-layer ``zeros`` (share of exact zeros, >= 0.9 →
    ``"dead"``) and ``slopes`` (mean slope over the largest of a tanh/sigmoid output, < 0.3 →
    ``"saturated"``). The network's label is the worst any layer has (exploding, vanishing,
    dead, saturated, in that order), else ``"healthy"``; with no layer, a first std of 0 or a
    single healthy layer, ``"n/a"``.

    >>> fastinit.verdict([1.0, 0.3, 0.02, 1e-4]).label
    'vanishing'
    >>> fastinit.verdict([0.5, 0.6, 0.55]).label
    'healthy'
    >>> fastinit.verdict([0.6, 0.7, 0.7], slopes=[0.5, 0.2, 0.1]).label
    'saturated'
    """
    if not (0 < vanishing < exploding):
        raise ValueError(f"verdict: need 0 < vanishing < exploding, got {vanishing} and {exploding}")
    s = [float(v) for v in stds]
    n = len(s)
    for what, seq in (("zeros", zeros), ("slopes", slopes), ("names", names)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"verdict: {what} has {len(seq)} values for {n} layers")
    names = list(names) if names is not None else [f"layer {i + 1}" for i in range(n)]
    ref = s[0] if n else math.nan
    layers: List[LayerVerdict] = []
    for i, v in enumerate(s):
        layers.append(judge_layer(
            names[i], v, ref, zeros=float(zeros[i]) if zeros is not None else math.nan,
            slope=float(slopes[i]) if slopes is not None else math.nan,
            vanishing=vanishing, exploding=exploding, dead=dead, saturated=saturated))
    return combine(layers)


def bounded_kind(type_name: str) -> Optional[str]:
    """``"tanh"`` / ``"sigmoid"`` for the modules whose mean slope a verdict can read from the
    statistics (``nn.Tanh``, ``nn.Sigmoid``), else None."""
    return _BOUNDED.get(type_name)


#: module types whose outputs are activation functions: judged for dead / saturated by default
ACTIVATION_TYPES = frozenset({
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "CELU", "SELU", "GELU", "SiLU",
    "Mish", "Softplus", "Tanh", "Sigmoid", "Hardtanh", "Hardsigmoid", "Hardswish", "Softsign",
    "Tanhshrink", "LogSigmoid", "QuickGELU", "NewGELUActivation", "GELUActivation",
    "GELUTanh", "SiLUActivation", "PytorchGELUTanh"})


def judge(entries: Sequence[Tuple[str, str, Any, Any]], kind: str, *,
          groups: Optional[Sequence[Any]] = None, output_layer: Optional[str] = None,
          vanishing: float = VANISHING_RATIO,
          exploding: float = EXPLODING_RATIO, dead: float = DEAD_SHARE,
          saturated: float = SATURATED_SLOPE) -> Verdict:
    """The verdict on recorded layers, given in **forward order** as ``(name, type name, Stats,
    centered Stats or None)``; ``kind`` is ``"activations"`` or ``"gradients"`` (judged from the
    last layer back). Each layer's std (the centered one when given: the spread across the
    batch) is compared with the first layer, in propagation order, of its group (``groups``:
    one key per entry; default: one group), except that the gradient of ``output_layer`` (the
    loss's own derivative, e.g. dL/dlogits spread over a 50k vocabulary: not a propagated
    gradient) is never a reference: it is judged against the next layer of its group; nor is a
    layer whose std is 0 or not finite (the next one is taken). The mean
    slope is read for ``Tanh`` and ``Sigmoid`` outputs (activations only)."""
    order = list(range(len(entries)))
    if kind == "gradients":
        order.reverse()
    keys = list(groups) if groups is not None else [0] * len(entries)
    refs: Dict[Any, float] = {}
    for i in order:  # each group's reference: its first layer in propagation order with a std
        name, _, st, centered = entries[i]  # > 0 (a zero-initialized branch has none)
        std = centered.std if centered is not None else st.std
        if kind == "gradients" and name == output_layer and \
                sum(1 for k in keys if k == keys[i]) > 1:
            continue
        if std > 0 and math.isfinite(std) and (st.nans + st.infs) == 0:
            refs.setdefault(keys[i], std)
    layers: List[LayerVerdict] = []
    for i in order:
        name, type_name, st, centered = entries[i]
        std = centered.std if centered is not None else st.std
        ref = refs.get(keys[i], math.nan)
        zeros = st.zeros / st.count if st.count else math.nan
        slope = math.nan
        bounded = bounded_kind(type_name)
        if kind == "activations" and bounded and st.finite:
            slope = mean_slope(bounded, st.mean, st.rms)
        layers.append(judge_layer(name, std, ref, zeros=zeros, slope=slope,
                                  nonfinite=(st.nans + st.infs) > 0, vanishing=vanishing,
                                  exploding=exploding, dead=dead, saturated=saturated))
    return combine(layers)
