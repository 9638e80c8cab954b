"""Verdicts on a per-layer std profile: vanishing, exploding or healthy, in the direction of
propagation (activations: input to output; gradients: output to input)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

#: verdict thresholds: end-to-start std ratio below this is "vanishing", above the other "exploding".
VANISHING_RATIO = 1e-2
EXPLODING_RATIO = 1e2


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
