"""Plots of per-layer statistics (matplotlib, drawn off-screen with the Agg canvas).

matplotlib is imported inside each function, so ``import fastinit`` never needs it, and the
figures are drawn with ``matplotlib.figure.Figure`` + the Agg canvas: no pyplot, no change to the
user's global backend, no window.

- :func:`plot_watch`: what :meth:`fastinit.Watch.plot` draws: per-layer mean and std of the
  activations and of the gradients, and (with histograms) per-layer histograms as heatmaps, as
  in Glorot & Bengio (2010), figures 3-7.
- :func:`plot_profiles`: per-layer std curves of several runs on a grid of panels (the demo).
- :func:`plot_heatmaps`: rows of activation / gradient histogram heatmaps (the demo).
- :func:`plot_curves`: loss curves on a grid of panels (the demo).

>>> from fastinit.plots import plot_profiles
>>> plot_profiles({("tanh", "depth 10"): {"Xavier": [0.6, 0.5, 0.45]}}, "std.png",
...               title="activation std per layer", ylabel="std")
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["plot_watch", "plot_profiles", "plot_heatmaps", "plot_curves", "heatmap_grid"]

Hist = Tuple[np.ndarray, np.ndarray]  # (counts, edges)

#: a fixed colour per label, so that one init has one colour in every figure
PALETTE = ["#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def _figure(width: float, height: float, **adjust: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("fastinit plots need matplotlib: pip install matplotlib "
                          "(or pip install 'fastinit[plot]')") from None
    # a fixed layout: matplotlib's constrained layout measures every text twice (slow)
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    margins = dict(left=0.85 / width, right=1 - 0.25 / width, bottom=0.6 / height,
                   top=1 - 0.7 / height, wspace=0.38, hspace=0.5)
    margins.update(adjust)
    fig.subplots_adjust(**margins)
    return fig


def _save(fig: Any, path: str) -> str:
    fig.savefig(path, dpi=100)
    return str(path)


def _layer_axis(ax: Any, names: Sequence[str], label: str = "layer (forward order)") -> None:
    n = len(names)
    ax.set_xlabel(label)
    if 0 < n <= 16:
        ax.set_xticks(range(n))
        ax.set_xticklabels(names, rotation=45 if max(len(s) for s in names) > 3 else 0,
                           ha="right" if max(len(s) for s in names) > 3 else "center", fontsize=8)
    ax.set_xlim(-0.5, max(n, 1) - 0.5)


def _positive(values: Sequence[float]) -> bool:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return v.size > 0 and bool(np.all(v > 0))


def heatmap_grid(hists: Sequence[Optional[Hist]], rows: int = 100) -> Tuple[np.ndarray, float, float]:
    """Per-layer histograms (each its own edges) redistributed onto one common grid of ``rows``
    bins spanning all of them; each column is normalised to fractions of that layer's binned
    values. Returns ``(matrix rows x layers, lo, hi)``; columns without data are NaN.

    >>> m, lo, hi = heatmap_grid([(np.array([1, 3]), np.array([0.0, 1.0, 2.0]))], rows=4)
    """
    spans = [(float(e[0]), float(e[-1])) for h in hists if h is not None
             for c, e in [h] if np.sum(c) > 0]
    if not spans:
        return np.full((rows, len(hists)), np.nan), 0.0, 1.0
    lo = min(s[0] for s in spans)
    hi = max(s[1] for s in spans)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    grid = np.linspace(lo, hi, rows + 1)
    out = np.full((rows, len(hists)), np.nan)
    for j, h in enumerate(hists):
        if h is None:
            continue
        counts, edges = np.asarray(h[0], dtype=np.float64), np.asarray(h[1], dtype=np.float64)
        total = counts.sum()
        if total <= 0:
            continue
        cum = np.concatenate([[0.0], np.cumsum(counts)])
        at = np.interp(grid, edges, cum, left=0.0, right=total)
        col = np.diff(at)
        # a histogram narrower than one grid row lands in its row, whole
        out[:, j] = col / total
    return out, lo, hi


def _heatmap(fig: Any, ax: Any, hists: Sequence[Optional[Hist]], names: Sequence[str], *,
             title: str, ylabel: str, rows: int = 100) -> None:
    from matplotlib.colors import LogNorm
    m, lo, hi = heatmap_grid(hists, rows)
    shown = np.where(m > 0, m, np.nan)
    finite = shown[np.isfinite(shown)]
    vmax = float(finite.max()) if finite.size else 1.0
    img = ax.imshow(shown, origin="lower", aspect="auto", interpolation="nearest",
                    extent=(-0.5, len(names) - 0.5, lo, hi), cmap="viridis",
                    norm=LogNorm(vmin=max(vmax * 1e-4, 1e-12), vmax=vmax))
    ax.set_facecolor("#f2f2f2")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    _layer_axis(ax, names)
    fig.colorbar(img, ax=ax, label="fraction of the layer's values", pad=0.01)


def plot_watch(w: Any, path: str, *, step: Any = None, title: Optional[str] = None) -> str:
    """Draw a :class:`fastinit.Watch`: per-layer mean and std of activations and gradients, and
    the histogram heatmaps when it recorded histograms. Returns ``path``.

    >>> plot_watch(w, "watch.png")      # the same as w.plot("watch.png")
    """
    if step is None:
        step = w._default_step()
    kinds = [k for k in ("activations", "gradients") if getattr(w, k)]
    if not kinds:
        raise ValueError("fastinit.watch.plot: the watch records neither activations nor "
                         "gradients")
    recs = {k: w.records(k, step) for k in kinds}
    names = w.layers
    with_hist = w.bins > 0
    fig = _figure(6.0 * len(kinds), 3.4 * (3 if with_hist else 2), hspace=0.55)
    axes = fig.subplots(3 if with_hist else 2, len(kinds), squeeze=False)
    x = np.arange(len(names))
    for j, kind in enumerate(kinds):
        r = recs[kind]
        mean = np.array([r[n].mean if n in r else np.nan for n in names])
        std = np.array([r[n].std if n in r else np.nan for n in names])
        what = "activation" if kind == "activations" else "gradient dL/d(output)"
        ax = axes[0][j]
        ax.plot(x, mean, "o-", color=PALETTE[3], ms=3)
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set_title(f"{what}: mean per layer", fontsize=10)
        ax.set_ylabel("mean")
        _layer_axis(ax, names)
        ax = axes[1][j]
        ax.plot(x, std, "o-", color=PALETTE[0], ms=3)
        if _positive(std):
            ax.set_yscale("log")
        ax.set_title(f"{what}: std per layer", fontsize=10)
        ax.set_ylabel("std" + (" (log scale)" if _positive(std) else ""))
        _layer_axis(ax, names)
        ax.grid(True, which="major", alpha=0.3)
        if with_hist:
            h = w.histograms(kind, step)
            hists = [h.get(n) for n in names]
            if kind == "activations":
                _heatmap(fig, axes[2][j], hists, names, title="activation histograms per layer",
                         ylabel="activation value")
            else:
                _heatmap(fig, axes[2][j], hists, names,
                         title="gradient histograms per layer (exact zeros left out)",
                         ylabel="log10 |gradient|")
    steps = w.steps
    fig.suptitle(title or f"fastinit.watch, step {step if step is not None else steps[-1]}",
                 fontsize=12)
    return _save(fig, path)


def _color_map(labels: Sequence[str], colors: Optional[Mapping[str, str]]) -> Dict[str, str]:
    out = dict(colors or {})
    for label in labels:
        if label not in out:
            out[label] = PALETTE[len(out) % len(PALETTE)]
    return out


def _grid_shape(keys: Sequence[Tuple[str, str]]) -> Tuple[List[str], List[str]]:
    rows: List[str] = []
    cols: List[str] = []
    for r, c in keys:
        if r not in rows:
            rows.append(r)
        if c not in cols:
            cols.append(c)
    return rows, cols


def plot_profiles(panels: Mapping[Tuple[str, str], Mapping[str, Sequence[float]]], path: str, *,
                  title: str, ylabel: str, xlabel: str = "layer",
                  colors: Optional[Mapping[str, str]] = None, log: bool = True,
                  band: Optional[Tuple[float, float]] = None,
                  styles: Optional[Mapping[str, str]] = None) -> str:
    """A grid of panels, ``panels[(row, column)] = {label: per-layer values}``: one line per
    label (one colour per label in every panel), layers numbered from 1, log y by default
    (non-positive values are left out). ``band=(lo, hi)`` shades a reference band; ``styles``
    maps a label to a line style (e.g. ``"--"`` for a curve that may lie on another).

    >>> plot_profiles({("depth 10", "tanh"): {"Xavier": stds}}, "act_std.png",
    ...               title="activation std", ylabel="std of the layer's outputs")
    """
    rows, cols = _grid_shape(list(panels))
    labels = []
    for curves in panels.values():
        labels += [k for k in curves if k not in labels]
    cmap = _color_map(labels, colors)
    fig = _figure(4.2 * len(cols) + 1.6, 3.2 * len(rows) + 0.6, right=1 - 1.75 / (4.2 * len(cols) + 1.6))
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for (r, c), curves in panels.items():
        ax = axes[rows.index(r)][cols.index(c)]
        for label, values in curves.items():
            v = np.asarray(values, dtype=np.float64)
            if log:
                v = np.where(v > 0, v, np.nan)
            x = np.arange(1, len(v) + 1)
            ls = (styles or {}).get(label, "-")
            ax.plot(x, v, ls, marker="o" if len(v) <= 12 else None, ms=3, lw=1.6,
                    color=cmap[label], label=label, zorder=3 if ls != "-" else 2)
            bad = ~np.isfinite(np.asarray(values, dtype=np.float64))
            if bad.any():  # NaN/Inf (overflow): mark where the curve stops
                first = int(np.argmax(bad))
                ax.annotate("inf/nan", (first + 1, np.nanmax(v) if np.isfinite(v).any() else 1.0),
                            color=cmap[label], fontsize=7)
        if log:
            ax.set_yscale("log")
        ax.xaxis.get_major_locator().set_params(integer=True)
        if band is not None:
            ax.axhspan(band[0], band[1], color="0.85", zorder=0)
        ax.set_title(f"{r}, {c}", fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
    handles = [__line(cmap[label], (styles or {}).get(label, "-")) for label in labels]
    fig.legend(handles, labels, loc="center right", title="init")
    fig.suptitle(title, fontsize=12)
    return _save(fig, path)


def __line(color: str, style: str = "-") -> Any:
    from matplotlib.lines import Line2D
    return Line2D([0], [0], color=color, lw=2, ls=style)


def plot_heatmaps(rows: Sequence[Tuple[str, Sequence[Optional[Hist]], Sequence[Optional[Hist]]]],
                  path: str, *, title: str) -> str:
    """One row per configuration: ``(label, activation hists, gradient hists)`` with one
    ``(counts, edges)`` per layer (activations over values, gradients over log10 |g|). Each
    column of a heatmap is that layer's histogram, normalised.

    >>> plot_heatmaps([("tanh, N(0, 0.01²)", act_h, grad_h)], "hist.png", title="...")
    """
    fig = _figure(12.0, 3.0 * len(rows) + 0.9, wspace=0.3, hspace=0.55,
                  top=1 - 0.85 / (3.0 * len(rows) + 0.9))
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for i, (label, act, grad) in enumerate(rows):
        names = [str(k + 1) for k in range(len(act))]
        _heatmap(fig, axes[i][0], act, names, title=f"{label}: activations",
                 ylabel="activation value")
        names = [str(k + 1) for k in range(len(grad))]
        _heatmap(fig, axes[i][1], grad, names, title=f"{label}: gradients (zeros left out)",
                 ylabel="log10 |dL/dh|")
        for ax in axes[i]:
            ax.set_xlabel("layer")
            n = len(names)
            step = max(1, n // 10)
            ax.set_xticks(range(0, n, step))
            ax.set_xticklabels([str(k + 1) for k in range(0, n, step)], rotation=0, fontsize=8)
    fig.suptitle(title, fontsize=12)
    return _save(fig, path)


def plot_curves(panels: Mapping[Tuple[str, str], Mapping[str, Sequence[float]]], path: str, *,
                title: str, ylabel: str, xlabel: str = "step", log: bool = True,
                colors: Optional[Mapping[str, str]] = None,
                reference: Optional[Tuple[float, str]] = None,
                notes: Optional[Mapping[Tuple[str, str], Mapping[str, str]]] = None,
                smooth: int = 1, styles: Optional[Mapping[str, str]] = None) -> str:
    """Curves (e.g. training loss) on a grid: ``panels[(row, column)] = {label: values}``.
    ``reference=(y, text)`` draws a dashed line (e.g. the loss of chance); ``notes[(row,
    column)][label]`` is appended to the label in that panel's legend (e.g. the accuracy).
    Non-finite values (a diverged run) end the curve, marked with an x. ``smooth=k`` draws the
    running mean over k values (the raw values faintly behind). Every panel has the same y
    range, so panels compare at a glance.

    >>> plot_curves({("depth 10", "relu"): {"Kaiming": losses}}, "loss.png",
    ...             title="training loss", ylabel="cross-entropy", reference=(2.303, "chance"))
    """
    rows, cols = _grid_shape(list(panels))
    labels = []
    for curves in panels.values():
        labels += [k for k in curves if k not in labels]
    cmap = _color_map(labels, colors)
    fig = _figure(4.4 * len(cols), 3.3 * len(rows) + 0.6)
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    finite = np.concatenate([np.asarray(v, dtype=np.float64) for cs in panels.values()
                             for v in cs.values()] or [np.zeros(0)])
    finite = finite[np.isfinite(finite) & ((finite > 0) if log else True)]
    ylim = None
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        if reference is not None:
            hi = max(hi, reference[0])
        ylim = (lo / 1.5, hi * 1.3) if log else (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    for (r, c), curves in panels.items():
        ax = axes[rows.index(r)][cols.index(c)]
        for label, values in curves.items():
            v = np.asarray(values, dtype=np.float64)
            x = np.arange(len(v))
            bad = ~np.isfinite(v)
            text = label
            if notes and (r, c) in notes and label in notes[(r, c)]:
                text = f"{label}: {notes[(r, c)][label]}"
            end = int(np.argmax(bad)) if bad.any() else len(v)
            ls = (styles or {}).get(label, "-")
            if smooth > 1 and end > smooth:
                ax.plot(x[:end], v[:end], lw=0.6, color=cmap[label], alpha=0.25)
                kernel = np.ones(smooth) / smooth
                run = np.convolve(v[:end], kernel, mode="valid")
                ax.plot(x[smooth - 1:end], run, ls, lw=1.6, color=cmap[label], label=text,
                        zorder=3 if ls != "-" else 2)
            else:
                ax.plot(x[:end], v[:end], ls, lw=1.4, color=cmap[label], label=text)
            if bad.any() and end > 0:
                ax.plot([end - 1], [v[end - 1]], "x", color=cmap[label], ms=8, mew=2)
        if reference is not None:
            ax.axhline(reference[0], color="0.4", ls="--", lw=1)
            ax.annotate(reference[1], (0, reference[0]), xytext=(2, 3), textcoords="offset points",
                        fontsize=8, color="0.3")
        if log:
            ax.set_yscale("log")
            from matplotlib.ticker import NullFormatter
            ax.yaxis.set_minor_formatter(NullFormatter())
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_title(f"{r}, {c}", fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(title, fontsize=12)
    return _save(fig, path)
