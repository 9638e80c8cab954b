"""The demo's PNG plots: per-layer statistics at init (std with the verdict's healthy band, mean,
zeros or slope), histogram heatmaps, training curves (loss and test accuracy), and the
activation histograms over training (fastai's colorful dimension, from fastinit.watch)."""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..watch.charts import (
    figure,
    heatmap,
    heatmap_grid,
    layer_ticks,
    log_curves,
    plot_curves,
    plot_heatmaps,
    save,
)
from ..watch.verdicts import DEAD_SHARE, EXPLODING_RATIO, SATURATED_SLOPE, VANISHING_RATIO
from .experiment import CHANCE_LOSS, INIT_COLORS, INIT_STYLES, SMALL, Result, Settings

BAND = (VANISHING_RATIO, EXPLODING_RATIO)


def draw(results: Sequence[Result], s: Settings, out: str, trained: bool,
         over_training: Optional[Dict[str, Any]] = None) -> List[str]:
    files = [profiles(results, os.path.join(out, "activations.png"), "activations"),
             profiles(results, os.path.join(out, "gradients.png"), "gradients")]
    pairs = heatmap_pairs(results)
    if pairs:
        rows = []
        for r in pairs:
            zeros = np.nanmean(r.act_zeros[1:])
            note = f" (exact zeros, {zeros:.0%}, left out)" if zeros > 0.01 else ""
            rows.append((f"{r.activation}, depth {r.depth}, {r.init}{note}", r.act_hist,
                         r.grad_hist))
        files.append(plot_heatmaps(rows, os.path.join(out, "histograms.png"),
                                   title="Per-layer histograms at init (as in Glorot & Bengio "
                                         "2010): activation values, and log10 |dL/dh|",
                                   grad_label="log10 |dL/dh|"))
    if trained:
        files.append(training(results, s, os.path.join(out, "training.png")))
    if over_training:
        files.append(colorful(over_training, os.path.join(out, "training_histograms.png")))
    return files


def _grid(results: Sequence[Result]) -> Tuple[List[Tuple[int, str]], List[str]]:
    keys: List[Tuple[int, str]] = []
    inits: List[str] = []
    for r in results:
        if (r.depth, r.activation) not in keys:
            keys.append((r.depth, r.activation))
        if r.init not in inits:
            inits.append(r.init)
    return keys, inits


def _legend(fig: Any, inits: Sequence[str], extra: bool = True) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    handles = [Line2D([0], [0], color=INIT_COLORS.get(i, "0.3"), lw=2,
                      ls=INIT_STYLES.get(i, "-")) for i in inits]
    labels = list(inits)
    if extra:
        handles += [Line2D([0], [0], ls="", marker="v", color="0.3"),
                    Line2D([0], [0], ls="", marker="v", mfc="white", mec="0.3"),
                    Line2D([0], [0], ls="", marker="^", mfc="white", mec="0.3"),
                    Line2D([0], [0], ls="", marker="^", color="0.3"),
                    Patch(color="#e3f2e1")]
        labels += ["exactly 0", "below the axis", "above the axis", "NaN / Inf",
                   "healthy band"]
    fig.legend(handles, labels, loc="upper right", fontsize=9, title="init",
               bbox_to_anchor=(0.995, 0.97))


def profiles(results: Sequence[Result], path: str, kind: str) -> str:
    """Rows: (depth, activation); columns: std (log, the verdict's band shaded), then
    activations: mean and (ReLU) share of exact zeros or (tanh, sigmoid) mean slope;
    gradients: the std itself (log)."""
    keys, inits = _grid(results)
    cols = 3 if kind == "activations" else 2
    width, height = 4.3 * cols + 2.2, 2.55 * len(keys) + 1.3
    fig = figure(width, height, left_in=0.8, right_in=2.3, top_in=1.0, bottom_in=0.55,
                 wspace=0.32, hspace=0.62)
    axes = fig.subplots(len(keys), cols, squeeze=False)
    for row, (depth, act) in enumerate(keys):
        group = [r for r in results if (r.depth, r.activation) == (depth, act)]
        colors = {r.init: INIT_COLORS.get(r.init, "0.3") for r in group}
        if kind == "activations":
            x = np.arange(0, depth + 1)
            ref = {r.init: r.act_std[0] for r in group}
            curves = {r.init: np.asarray(r.act_std) / ref[r.init] if ref[r.init] > 0
                      else np.asarray(r.act_std) for r in group}
            what = "std across the batch / input's"
        else:
            x = np.arange(1, depth + 1)
            curves = {}
            for r in group:
                g = np.asarray(r.grad_std, dtype=np.float64)
                last = g[-1] if g.size and np.isfinite(g[-1]) and g[-1] > 0 else math.nan
                curves[r.init] = g / last
            what = "std / std at the last layer"
        ax = axes[row][0]
        log_curves(ax, x, curves, colors, styles=INIT_STYLES, band=BAND, markers=depth <= 12)
        ax.set_title(f"depth {depth}, {act}: {kind} — {what}", fontsize=9)
        ax.set_ylabel("ratio (log)")
        layer_ticks(ax, int(x[0]), int(x[-1]))
        ax.grid(True, which="major", alpha=0.3)
        if kind == "activations":
            ax = axes[row][1]
            for r in group:
                ax.plot(x, r.act_mean, INIT_STYLES.get(r.init, "-"), color=colors[r.init],
                        lw=1.4)
            big = max((abs(v) for r in group for v in r.act_mean if math.isfinite(v)),
                      default=0.0)
            if big > 10:  # an exploding net: symmetric log, so the others stay visible
                ax.set_yscale("symlog", linthresh=0.1)
                top = int(math.ceil(math.log10(big)))
                step = max(1, int(math.ceil(top / 5)))
                ax.set_yticks([0.0] + [10.0 ** k for k in range(0, top + 1, step)])
            ax.set_title(f"depth {depth}, {act}: mean of the activations", fontsize=9)
            ax.set_ylabel("mean" + (" (symlog)" if big > 10 else ""))
            layer_ticks(ax, 0, depth)
            ax.grid(True, alpha=0.3)
            ax = axes[row][2]
            if act == "relu":
                for r in group:
                    ax.plot(x[1:], r.act_zeros[1:], INIT_STYLES.get(r.init, "-"),
                            color=colors[r.init], lw=1.4)
                ax.axhline(DEAD_SHARE, color="0.3", ls="--", lw=0.8)
                ax.annotate(f"dead: >= {DEAD_SHARE:.0%}", (1, DEAD_SHARE), xytext=(2, -10),
                            textcoords="offset points", fontsize=7, color="0.3")
                ax.set_title(f"depth {depth}, relu: share of exact zeros", fontsize=9)
                ax.set_ylabel("share of zeros")
            else:
                for r in group:
                    ax.plot(x[1:], r.act_slope[1:], INIT_STYLES.get(r.init, "-"),
                            color=colors[r.init], lw=1.4)
                ax.axhline(SATURATED_SLOPE, color="0.3", ls="--", lw=0.8)
                ax.annotate(f"saturated: < {SATURATED_SLOPE:g}", (1, SATURATED_SLOPE),
                            xytext=(2, -10), textcoords="offset points", fontsize=7,
                            color="0.3")
                ax.set_title(f"depth {depth}, {act}: mean slope f'(z) / max f'", fontsize=9)
                ax.set_ylabel("mean slope / max")
            ax.set_ylim(-0.02, 1.05)
            layer_ticks(ax, 1, depth)
            ax.grid(True, alpha=0.3)
        else:
            ax = axes[row][1]
            raw = {r.init: r.grad_std for r in group}
            starts = [g[-1] for g in raw.values() if g and math.isfinite(g[-1]) and g[-1] > 0]
            log_curves(ax, x, raw, colors, styles=INIT_STYLES, markers=depth <= 12,
                       center=float(np.median(starts)) if starts else None)
            ax.set_title(f"depth {depth}, {act}: gradient std dL/dh", fontsize=9)
            ax.set_ylabel("std (log)")
            layer_ticks(ax, 1, depth)
            ax.grid(True, which="major", alpha=0.3)
        for ax in axes[row]:
            ax.set_xlabel("layer (0 = the input)" if kind == "activations" else
                          "layer (the gradient flows from the last to 1)", fontsize=8)
    _legend(fig, inits)
    if kind == "activations":
        title = ("Activations at init, per layer: the spread across the batch relative to the "
                 "input's (shaded: the verdict's healthy band, 1e-2..1e2), the mean, and dead "
                 "(ReLU) / saturated (tanh, sigmoid) units")
    else:
        title = ("Back-propagated gradients dL/dh at init, per layer: relative to the last "
                 "layer's (shaded: the healthy band, 1e-2..1e2), and as they are")
    fig.suptitle(title, fontsize=11, wrap=True, x=0.02, ha="left")
    return save(fig, path)


def heatmap_pairs(results: Sequence[Result]) -> List[Result]:
    """Glorot & Bengio's contrasts at the shallower depth (tanh: N(0, 0.01²) vs Xavier;
    sigmoid: Xavier vs the critical scale) and He et al.'s at the deeper one (ReLU: Xavier vs
    Kaiming)."""
    if not results or not results[0].act_hist:
        return []
    lo, hi = min(r.depth for r in results), max(r.depth for r in results)
    want = [(lo, "tanh", SMALL), (lo, "tanh", "Xavier"), (lo, "sigmoid", "Xavier"),
            (lo, "sigmoid", "critical"), (hi, "relu", "Xavier"), (hi, "relu", "Kaiming")]
    found = {(r.depth, r.activation, r.init): r for r in results}
    return [found[k] for k in want if k in found]


def _running_mean(v: Sequence[float], k: int) -> Tuple[np.ndarray, np.ndarray]:
    a = np.asarray(v, dtype=np.float64)
    x = np.arange(1, len(a) + 1)
    if len(a) <= k or not np.isfinite(a).all():
        return x, a
    c = np.convolve(a, np.ones(k) / k, mode="valid")
    return x[k - 1:], c


def training(results: Sequence[Result], s: Settings, path: str) -> str:
    keys, inits = _grid(results)
    depths = sorted({d for d, _ in keys})
    panels: Dict[Tuple[str, str], Dict[str, Any]] = {}
    x: Dict[str, Any] = {}
    notes: Dict[Tuple[str, str], Dict[str, str]] = {}
    smooth = max(1, s.steps // 50)
    for d in depths:
        lr = s.lr_for(d)
        loss_row, acc_row = f"depth {d} (lr {lr:g}): loss", f"depth {d}: test accuracy"
        for r in results:
            if r.depth != d:
                continue
            xs, ys = _running_mean(r.losses, smooth)
            panels.setdefault((loss_row, r.activation), {})[r.init] = ys
            x[loss_row] = xs if len(xs) >= len(x.get(loss_row, [])) else x[loss_row]
            panels.setdefault((acc_row, r.activation), {})[r.init] = r.test_curve
            x[acc_row] = np.asarray(r.eval_steps)
            notes.setdefault((acc_row, r.activation), {})[r.init] = (
                f"{100 * r.test_accuracy:.0f}%" if math.isfinite(r.test_accuracy)
                and r.outcome != "diverged" else r.outcome)
    rows = [k for d in depths for k in (f"depth {d} (lr {s.lr_for(d):g}): loss",
                                         f"depth {d}: test accuracy")]
    ordered = {(rw, a): panels[(rw, a)] for rw in rows for a in s.activations
               if (rw, a) in panels}
    finite = np.concatenate([np.asarray(v, dtype=np.float64) for (rw, _), cs in ordered.items()
                             if "loss" in rw for v in cs.values()] or [np.ones(1)])
    finite = finite[np.isfinite(finite) & (finite > 0)]
    loss_lim = (max(float(finite.min()) / 1.5, 1e-4), min(float(finite.max()) * 1.5, 1e3)) \
        if finite.size else (1e-3, 10.0)
    loss_lim = (loss_lim[0], max(loss_lim[1], CHANCE_LOSS * 1.5))
    return plot_curves(
        ordered, path, x={rw: x[rw] for rw in rows},
        title=(f"Training on digits: SGD, momentum {s.momentum}, batch {s.batch}, {s.steps} steps, "
               f"warm-up {s.warmup:.0%} then cosine decay\nloss: running mean of {smooth} "
               "steps (x: where a run's loss stops being finite); legend: final test accuracy"),
        ylabel={rw: ("cross-entropy (log)" if "loss" in rw else "test accuracy") for rw in rows},
        log={rw: "loss" in rw for rw in rows}, colors=INIT_COLORS, styles=INIT_STYLES,
        reference={rw: ((CHANCE_LOSS, "chance: ln 10") if "loss" in rw else (0.1, "chance: 10%"))
                   for rw in rows},
        ylim={rw: (loss_lim if "loss" in rw else (0.0, 1.02)) for rw in rows},
        notes=notes)


def colorful(data: Dict[str, Any], path: str) -> str:
    """fastai's colorful dimension: per (activation, init) row and chosen layer, the histogram of
    the layer's outputs at each recorded training step (x: step, y: value, colour: share)."""
    rows = data["rows"]            # [(label, {layer: [hist per step]}, act range)]
    steps = np.asarray(data["steps"])
    layers = data["layers"]
    height = 2.3 * len(rows) + 1.2
    width = 4.0 * len(layers) + 1.6
    fig = figure(width, height, left_in=0.9, right_in=1.0, top_in=1.0,
                 bottom_in=0.6, hspace=0.75, wspace=0.3)
    axes = fig.subplots(len(rows), len(layers), squeeze=False)
    img = None
    dx = float(steps[1] - steps[0]) if len(steps) > 1 else 1.0
    top = max((float(np.nanmax(m)) for _, hists, span in rows for layer in layers
               for m in [heatmap_grid(hists[layer], 60, span)[0]] if np.isfinite(m).any()),
              default=1.0)
    for i, (label, hists, span) in enumerate(rows):
        for j, layer in enumerate(layers):
            ax = axes[i][j]
            img = heatmap(fig, ax, hists[layer], x0=float(steps[0]), dx=dx, rows=60, span=span,
                          colorbar=False, title=f"{label}: layer {layer}", vmin=top * 1e-3, vmax=top,
                          ylabel="activation" if j == 0 else "",
                          xlabel="step" if i == len(rows) - 1 else "")
    fig.suptitle("Activations over training (fastai's colorful dimension, from fastinit.watch): "
                 "each column the histogram of one recorded step;\ncolour: share of the "
                 "layer's values at that step (log, one scale for every panel)", fontsize=10.5, x=0.02, ha="left")
    if img is not None:
        cax = fig.add_axes((1 - 0.75 / width, 0.6 / height, 0.15 / width,
                            1 - 1.6 / height))
        fig.colorbar(img, cax=cax, label="share of values")
    return save(fig, path)

