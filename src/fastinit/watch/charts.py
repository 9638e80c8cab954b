"""Drawing blocks for per-layer statistics (matplotlib, off-screen with the Agg canvas): figures,
log axes that survive zeros and underflow, layer axes, histogram heatmaps, and grids of curves.

matplotlib is imported inside each function, so ``import fastinit`` never needs it; figures are
``matplotlib.figure.Figure`` on an Agg canvas: no pyplot, no change to the user's backend.

- :func:`log_curves`: curves on a log axis clipped to a readable range; a value below the range
  is drawn as a triangle on the bottom edge (filled: exactly 0), a NaN/Inf as one on the top.
- :func:`plot_profiles`: per-layer curves of several runs on a grid (the demo's profiles).
- :func:`plot_heatmaps`: rows of per-layer histogram heatmaps (Glorot & Bengio's figures).
- :func:`plot_curves`: curves over steps on a grid (training loss, test accuracy).
- :func:`heatmap_grid`: histograms with their own edges, redistributed onto one common grid.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

Hist = Tuple[np.ndarray, np.ndarray]  # (counts, edges)

#: colours for labels without one of their own
PALETTE = ["#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
#: the most decades a log axis shows below its largest value
DECADES = 12
BAND_COLOR = "#e3f2e1"


def figure(width: float, height: float, **adjust: float) -> Any:
    """A Figure on an Agg canvas with fixed margins (in inches where given as ``left_in`` ...)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("fastinit plots need matplotlib: pip install matplotlib") from None
    # a fixed layout: matplotlib's constrained layout measures every text twice (slow)
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    margins = dict(left=0.85 / width, right=1 - 0.25 / width, bottom=0.6 / height,
                   top=1 - 0.7 / height, wspace=0.38, hspace=0.5)
    for side in ("left", "right", "bottom", "top"):
        inches = adjust.pop(f"{side}_in", None)
        if inches is not None:
            size = width if side in ("left", "right") else height
            margins[side] = inches / size if side in ("left", "bottom") else 1 - inches / size
    margins.update(adjust)
    fig.subplots_adjust(**margins)
    return fig


def save(fig: Any, path: str) -> str:
    fig.savefig(path, dpi=100)
    return str(path)


def color_map(labels: Sequence[str], colors: Optional[Mapping[str, str]]) -> Dict[str, str]:
    out = dict(colors or {})
    for label in labels:
        if label not in out:
            out[label] = PALETTE[len(out) % len(PALETTE)]
    return out


def log_range(values: Sequence[Sequence[float]], band: Optional[Tuple[float, float]] = None,
              decades: int = DECADES, center: Optional[float] = None) -> Tuple[float, float]:
    """(lo, hi) of a log axis for these curves: their positive finite values, but at most
    ``decades`` decades in all, placed around ``center``, else the band when given (so a healthy
    curve is never pushed off the axis by an exploding or a vanishing one), else the median
    value; values outside are marked on the edges by :func:`log_curves`."""
    flat = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in values]
                          or [np.zeros(0)])
    pos = flat[np.isfinite(flat) & (flat > 0)]
    if pos.size == 0:
        lo, hi = (band if band is not None else (1e-3, 1e1))
        return lo / 3.0, hi * 3.0
    lo, hi = float(pos.min()) / 3.0, float(pos.max()) * 3.0
    if band is not None:
        lo, hi = min(lo, band[0] / 1.5), max(hi, band[1] * 1.5)
    if center is None or not (center > 0 and math.isfinite(center)):
        center = (math.sqrt(band[0] * band[1]) if band is not None
                  else float(np.exp(np.median(np.log(pos)))))
    if math.log10(hi / lo) > decades:
        up = decades * 0.4   # more room below (vanishing shows as a slope) than above
        lo = max(lo, center * 10.0 ** -(decades - up))
        hi = min(hi, center * 10.0 ** up)
    return lo, hi


def log_curves(ax: Any, x: np.ndarray, curves: Mapping[str, Sequence[float]],
               colors: Mapping[str, str], *, styles: Optional[Mapping[str, str]] = None,
               band: Optional[Tuple[float, float]] = None, ylim: Optional[Tuple[float, float]] = None,
               markers: bool = True, center: Optional[float] = None) -> Tuple[float, float]:
    """Draw curves on a log y axis clipped to ``ylim`` (default :func:`log_range`): values below
    it sit on the bottom edge as ▼ (filled: exactly 0; open: positive but below the axis),
    values above it on the top edge as an open ▲, NaN/Inf as a filled ▲. ``band`` shades a
    healthy range. Returns the (lo, hi) used."""
    lo, hi = ylim or log_range(list(curves.values()), band, center=center)
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    if band is not None:
        ax.axhspan(band[0], band[1], color=BAND_COLOR, zorder=0, lw=0)
    floor, ceil = lo * 1.35, hi / 1.35   # just inside the edges, so the markers are whole
    for label, values in curves.items():
        v = np.asarray(values, dtype=np.float64)
        xs = x[:len(v)]
        ls = (styles or {}).get(label, "-")
        shown = np.where(np.isfinite(v) & (v >= lo) & (v <= hi), v, np.nan)
        ax.plot(xs, shown, ls, lw=1.6, color=colors[label], zorder=3 if ls != "-" else 2,
                marker="o" if markers and len(v) <= 12 else None, ms=3)
        zero = v == 0
        under = np.isfinite(v) & (v > 0) & (v < lo)
        over = np.isfinite(v) & (v > hi)
        bad = ~np.isfinite(v)
        for mask, y, marker, hollow in ((zero, floor, "v", False), (under, floor, "v", True),
                                        (over, ceil, "^", True), (bad, ceil, "^", False)):
            if mask.any():
                ax.plot(xs[mask], np.full(mask.sum(), y), marker, ls="", ms=4.5, zorder=4,
                        clip_on=False, color=colors[label],
                        **({"mfc": "white", "mec": colors[label]} if hollow else {}))
    return lo, hi


def layer_ticks(ax: Any, first: int, last: int, *, axis: str = "x") -> None:
    """Integer layer ticks at a readable step (1, 2, 5, 10, ... apart) that include the ends."""
    n = last - first + 1
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000, 10 ** 9)
                if n / s <= 11)
    ticks = [t for t in range(0, last + 1, step) if t >= first]
    if first not in ticks:
        ticks = [first] + [t for t in ticks if t - first >= step / 2]
    if last not in ticks:
        ticks = [t for t in ticks if last - t >= step / 2] + [last]
    (ax.set_xticks if axis == "x" else ax.set_yticks)(ticks)


def name_axis(ax: Any, names: Sequence[str], *, max_labels: int = 60, fontsize: float = 6.5,
              shorten: int = 28, labels: bool = True) -> None:
    """Layer names as x tick labels, rotated; past ``max_labels`` names, every k-th one (the
    others get small unlabelled ticks); long names keep their tail (``...h.11.mlp.c_fc``).
    ``labels=False``: the same ticks, unlabelled (a panel above one that names them)."""
    n = len(names)
    if n == 0:
        return
    step = max(1, math.ceil(n / max_labels))
    ax.set_xticks(range(n), minor=True)
    ax.set_xticks(range(0, n, step))
    short = [s if len(s) <= shorten else "…" + s[-(shorten - 1):] for s in names]
    ax.set_xticklabels(short[::step] if labels else [], rotation=90, fontsize=fontsize)
    ax.tick_params(axis="x", which="minor", length=2)
    ax.set_xlim(-0.5, n - 0.5)


def heatmap_grid(hists: Sequence[Optional[Hist]], rows: int = 100,
                 span: Optional[Tuple[float, float]] = None) -> Tuple[np.ndarray, float, float]:
    """Per-layer histograms (each its own edges) redistributed onto one common grid of ``rows``
    bins spanning all of them (or ``span``); each column is normalised to fractions of that
    layer's binned values. Returns ``(matrix rows x layers, lo, hi)``; columns without data are
    NaN.

    >>> m, lo, hi = heatmap_grid([(np.array([1, 3]), np.array([0.0, 1.0, 2.0]))], rows=4)
    """
    spans = [(float(e[0]), float(e[-1])) for h in hists if h is not None
             for c, e in [h] if np.sum(c) > 0]
    if span is not None:
        lo, hi = span
    elif not spans:
        return np.full((rows, len(hists)), np.nan), 0.0, 1.0
    else:
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
        if edges[-1] <= edges[0]:  # every value equal: one spike
            col = np.zeros(rows)
            col[min(rows - 1, max(0, int(np.searchsorted(grid, edges[0], "right")) - 1))] = total
        else:
            cum = np.concatenate([[0.0], np.cumsum(counts)])
            col = np.diff(np.interp(grid, edges, cum, left=0.0, right=total))
        out[:, j] = col / total
    return out, lo, hi


def heatmap(fig: Any, ax: Any, hists: Sequence[Optional[Hist]], *, title: str, ylabel: str,
            x0: int = 1, rows: int = 100, span: Optional[Tuple[float, float]] = None,
            colorbar: bool = True, xlabel: str = "layer", cax: Any = None, dx: float = 1.0,
            vmin: Optional[float] = None, vmax: Optional[float] = None) -> Any:
    """One heatmap: column j is histogram j (at x = ``x0 + j * dx``: a layer, or a step),
    normalised, log colour scale (``vmin``/``vmax``: fixed, for panels that share a colour
    bar; default: from the data); empty cells grey."""
    from matplotlib.colors import LogNorm
    m, lo, hi = heatmap_grid(hists, rows, span)
    shown = np.where(m > 0, m, np.nan)
    finite = shown[np.isfinite(shown)]
    top = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    bottom = vmin if vmin is not None else max(top * 1e-4, 1e-12)
    n = len(hists)
    img = ax.imshow(shown, origin="lower", aspect="auto", interpolation="nearest",
                    extent=(x0 - 0.5 * dx, x0 + (n - 0.5) * dx, lo, hi), cmap="viridis",
                    norm=LogNorm(vmin=bottom, vmax=top))
    ax.set_facecolor("#f2f2f2")
    ax.set_title(title, fontsize=9.5)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    if colorbar:
        if cax is not None:
            fig.colorbar(img, cax=cax, label="share of values")
        else:
            fig.colorbar(img, ax=ax, label="share of the layer's values", pad=0.01)
    return img


def plot_profiles(panels: Mapping[Tuple[str, str], Mapping[str, Sequence[float]]], path: str, *,
                  title: str, ylabel: str, xlabel: str = "layer",
                  colors: Optional[Mapping[str, str]] = None, log: bool = True,
                  band: Optional[Tuple[float, float]] = None,
                  styles: Optional[Mapping[str, str]] = None, x0: int = 1) -> str:
    """A grid of panels, ``panels[(row, column)] = {label: per-layer values}``: one line per
    label (one colour per label everywhere), layers numbered from ``x0``; log y clipped as in
    :func:`log_curves` (zeros and underflow marked on the bottom edge), ``band`` shaded.

    >>> plot_profiles({("depth 10", "tanh"): {"Xavier": stds}}, "act_std.png",
    ...               title="activation std", ylabel="std of the layer's outputs")
    """
    rows, cols = _grid_shape(list(panels))
    labels: List[str] = []
    for curves in panels.values():
        labels += [k for k in curves if k not in labels]
    cmap = color_map(labels, colors)
    width = 4.2 * len(cols) + 1.9
    fig = figure(width, 3.2 * len(rows) + 0.9, right=1 - 1.95 / width)
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for (r, c), curves in panels.items():
        ax = axes[rows.index(r)][cols.index(c)]
        n = max(len(v) for v in curves.values())
        x = np.arange(x0, x0 + n)
        if log:
            log_curves(ax, x, curves, cmap, styles=styles, band=band)
        else:
            for label, values in curves.items():
                ax.plot(x[:len(values)], values, (styles or {}).get(label, "-"),
                        color=cmap[label], lw=1.6)
        layer_ticks(ax, x0, x0 + n - 1)
        ax.set_title(f"{r}, {c}", fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
    handles = [_line(cmap[label], (styles or {}).get(label, "-")) for label in labels]
    legend_labels = list(labels)
    if log:
        from matplotlib.lines import Line2D
        handles += [Line2D([0], [0], ls="", marker="v", color="0.3"),
                    Line2D([0], [0], ls="", marker="v", mfc="white", mec="0.3"),
                    Line2D([0], [0], ls="", marker="^", mfc="white", mec="0.3"),
                    Line2D([0], [0], ls="", marker="^", color="0.3")]
        legend_labels += ["exactly 0", "below the axis", "above the axis", "NaN / Inf"]
        if band is not None:
            from matplotlib.patches import Patch
            handles.append(Patch(color=BAND_COLOR))
            legend_labels.append("healthy band")
    fig.legend(handles, legend_labels, loc="center right", fontsize=9)
    fig.suptitle(title, fontsize=12)
    return save(fig, path)


def _line(color: str, style: str = "-") -> Any:
    from matplotlib.lines import Line2D
    return Line2D([0], [0], color=color, lw=2, ls=style)


def _grid_shape(keys: Sequence[Tuple[str, str]]) -> Tuple[List[str], List[str]]:
    rows: List[str] = []
    cols: List[str] = []
    for r, c in keys:
        if r not in rows:
            rows.append(r)
        if c not in cols:
            cols.append(c)
    return rows, cols


def plot_heatmaps(rows: Sequence[Tuple[str, Sequence[Optional[Hist]], Sequence[Optional[Hist]]]],
                  path: str, *, title: str, act_label: str = "activation value",
                  grad_label: str = "log10 |dL/dh|") -> str:
    """One row per configuration: ``(label, activation hists, gradient hists)`` with one
    ``(counts, edges)`` per layer (activations over values, gradients over log10 |g|), layers
    numbered from 1 with readable ticks.

    >>> plot_heatmaps([("tanh, N(0, 0.01²)", act_h, grad_h)], "hist.png", title="...")
    """
    height = 2.9 * len(rows) + 1.0
    fig = figure(12.5, height, wspace=0.28, hspace=0.62, top=1 - 0.95 / height)
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for i, (label, act, grad) in enumerate(rows):
        heatmap(fig, axes[i][0], act, title=f"{label}: activations", ylabel=act_label)
        heatmap(fig, axes[i][1], grad, title=f"{label}: gradients", ylabel=grad_label)
        for ax, n in ((axes[i][0], len(act)), (axes[i][1], len(grad))):
            layer_ticks(ax, 1, n)
    fig.suptitle(title, fontsize=12)
    return save(fig, path)


def plot_curves(panels: Mapping[Tuple[str, str], Mapping[str, Sequence[float]]], path: str, *,
                title: str, ylabel: Mapping[str, str], x: Mapping[str, np.ndarray],
                log: Mapping[str, bool], colors: Optional[Mapping[str, str]] = None,
                reference: Optional[Mapping[str, Tuple[float, str]]] = None,
                notes: Optional[Mapping[Tuple[str, str], Mapping[str, str]]] = None,
                ylim: Optional[Mapping[str, Tuple[float, float]]] = None,
                styles: Optional[Mapping[str, str]] = None, xlabel: str = "step") -> str:
    """Curves on a grid: ``panels[(row, column)] = {label: values}``; per row: its ``x``
    values, ``ylabel``, ``log`` scale, optional ``reference=(y, text)`` (a dashed line, e.g.
    the loss of chance) and ``ylim`` (the same for every panel of the row, so panels compare at
    a glance). Non-finite values end a curve, marked with an x. ``notes[(row, column)][label]``
    is appended to the label in that panel's legend.
    """
    rows, cols = _grid_shape(list(panels))
    labels: List[str] = []
    for curves in panels.values():
        labels += [k for k in curves if k not in labels]
    cmap = color_map(labels, colors)
    fig = figure(4.6 * len(cols), 3.1 * len(rows) + 1.0, hspace=0.45, top_in=1.0)
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for (r, c), curves in panels.items():
        ax = axes[rows.index(r)][cols.index(c)]
        xs = np.asarray(x[r])
        for label, values in curves.items():
            v = np.asarray(values, dtype=np.float64)
            bad = ~np.isfinite(v)
            end = int(np.argmax(bad)) if bad.any() else len(v)
            text = label
            if notes and (r, c) in notes and label in notes[(r, c)]:
                text = f"{label}: {notes[(r, c)][label]}"
            ls = (styles or {}).get(label, "-")
            ax.plot(xs[:end], v[:end], ls, lw=1.5, color=cmap[label], label=text,
                    zorder=3 if ls != "-" else 2)
            if bad.any():
                top = ylim[r][1] if ylim and r in ylim else None
                y = v[end - 1] if end > 0 else (top if top is not None else 1.0)
                if top is not None and not y < top:
                    y = top / (1.25 if log.get(r) else 1.0)   # off the chart: on its top edge
                ax.plot([xs[max(end - 1, 0)]], [y], "x", color=cmap[label], ms=8, mew=2,
                        clip_on=False, zorder=5)
        if reference and r in reference:
            y, text = reference[r]
            ax.axhline(y, color="0.4", ls="--", lw=1)
            ax.annotate(text, (xs[0], y), xytext=(2, 3), textcoords="offset points", fontsize=8,
                        color="0.3")
        if log.get(r):
            ax.set_yscale("log")
            from matplotlib.ticker import NullFormatter
            ax.yaxis.set_minor_formatter(NullFormatter())
        if ylim and r in ylim:
            ax.set_ylim(*ylim[r])
        ax.set_title(f"{r}, {c}", fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel[r])
        ax.grid(True, which="major", alpha=0.3)
        if notes is None or (r, c) in notes:
            ax.legend(fontsize=6.5, loc="best", framealpha=0.85)
    fig.suptitle(title, fontsize=11)
    return save(fig, path)
