"""The demo's PNG plots: per-layer std profiles, histogram heatmaps, loss curves."""
from __future__ import annotations

import math
import os
from typing import Dict, List, Sequence, Tuple

from ..watch.plots import plot_curves, plot_heatmaps, plot_profiles
from .experiment import CHANCE_LOSS, INIT_COLORS, INIT_STYLES, Result, Settings


def draw(results: Sequence[Result], s: Settings, out: str, trained: bool) -> List[str]:
    files = []
    for kind, name, label in (("activations", "activation_std.png",
                               "std of the activations h = f(Wx + b), per layer, at init"),
                              ("gradients", "gradient_std.png",
                               "std of the back-propagated gradients dL/dh, per layer, at init")):
        panels = {}
        for r in results:
            panels.setdefault((f"depth {r.depth}", r.activation), {})[r.init] = (
                r.act_std if kind == "activations" else r.grad_std)
        files.append(plot_profiles(panels, os.path.join(out, name), title=label,
                                   ylabel="std (log scale)", xlabel="layer (input → output)",
                                   colors=INIT_COLORS, styles=INIT_STYLES))
    pairs = _heatmap_pairs(results)
    if pairs:
        rows = [(f"{r.activation}, depth {r.depth}, {r.init}", r.act_hist, r.grad_hist)
                for r in pairs]
        files.append(plot_heatmaps(rows, os.path.join(out, "histograms.png"),
                                   title="per-layer histograms at init (as in Glorot & Bengio "
                                         "2010): activations, and log10 |gradient|"))
    if trained:
        panels = {}
        notes: Dict[Tuple[str, str], Dict[str, str]] = {}
        for r in results:
            key = (f"depth {r.depth}", r.activation)
            panels.setdefault(key, {})[r.init] = r.losses
            acc = f"{100 * r.test_accuracy:.0f}%" if math.isfinite(r.test_accuracy) else r.outcome
            notes.setdefault(key, {})[r.init] = acc
        files.append(plot_curves(panels, os.path.join(out, "loss_curves.png"),
                                 title=f"training loss on digits (SGD lr={s.lr}, momentum "
                                       f"{s.momentum}, batch {s.batch}; running mean of 10 "
                                       "steps); legend: test accuracy at the end",
                                 ylabel="cross-entropy (log scale)", colors=INIT_COLORS,
                                 styles=INIT_STYLES, smooth=10,
                                 reference=(CHANCE_LOSS, "chance: ln 10"), notes=notes))
    return files


def _heatmap_pairs(results: Sequence[Result]) -> List[Result]:
    """Glorot & Bengio's contrast (tanh, the shallower depth: small N(0, 0.01²) vs Xavier) and
    He et al.'s (ReLU, the deeper depth: Xavier vs Kaiming)."""
    if not results or not results[0].act_hist:
        return []
    lo, hi = min(r.depth for r in results), max(r.depth for r in results)
    want = [(lo, "tanh", "N(0, 0.01²)"), (lo, "tanh", "Xavier"), (hi, "relu", "Xavier"),
            (hi, "relu", "Kaiming")]
    found = {(r.depth, r.activation, r.init): r for r in results}
    return [found[k] for k in want if k in found]
