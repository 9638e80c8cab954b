"""What :meth:`fastinit.Watch.plot` and :meth:`fastinit.Watch.plot_steps` draw (matplotlib,
imported when drawing; the drawing blocks are in :mod:`.charts`).

- :func:`plot_watch`: one recorded step, layer by layer: std (log scale; exact zeros and values
  below the axis marked on its bottom edge, NaN/Inf on its top), mean and share of exact zeros of
  the activations and of the gradients, one colour and marker per module type, the layer names on
  the axis, each layer's verdict, and (with ``bins``) the per-layer histograms as heatmaps.
- :func:`plot_steps`: the same statistics over the recorded steps, as fastai's "colorful
  dimension": per layer, the histogram of each recorded step side by side (x: step, y: value,
  colour: share of the values), and the std of every layer over the steps.

By default the weight layers are drawn (Linear, Conv*, Embedding...: see
:meth:`fastinit.Watch.select`); ``layers=`` picks others by type or name pattern.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .charts import PALETTE, figure, heatmap, log_curves, log_range, name_axis, save
from .charts import heatmap_grid, plot_curves, plot_heatmaps, plot_profiles  # noqa: F401
from .verdicts import DEAD_SHARE, EXPLODING_RATIO, VANISHING_RATIO

__all__ = ["plot_watch", "plot_steps", "plot_profiles", "plot_heatmaps", "plot_curves",
           "heatmap_grid"]

_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
_VERDICT_COLORS = {"healthy": "#2ca02c", "vanishing": "#1f77b4", "exploding": "#d62728",
                   "saturated": "#ff7f0e", "dead": "#000000"}


def _by_type(sites: Sequence[Any]) -> Dict[str, List[int]]:
    groups: Dict[str, List[int]] = {}
    for j, s in enumerate(sites):
        groups.setdefault(s.type_name, []).append(j)
    return groups


def plot_watch(w: Any, path: str, *, step: Any = None, layers: Any = None,
               title: Optional[str] = None) -> str:
    """Draw one recorded step of a :class:`fastinit.Watch` (see the module docstring). Returns
    ``path``.

    >>> plot_watch(w, "watch.png")      # the same as w.plot("watch.png")
    """
    if step is None:
        step = w._default_step()
    kinds = [k for k in ("activations", "gradients") if getattr(w, k)]
    if not kinds:
        raise ValueError("fastinit.watch.plot: the watch records neither activations nor "
                         "gradients")
    names = w.select(layers)
    sites = [s for s in w._recorder.sites if s.name in set(names)]
    recs = {k: w.records(k, step) for k in kinds}
    verdicts = w.verdicts(step, layers=layers) if len(sites) >= 2 else {}
    n = len(sites)
    groups = _by_type(sites)
    colors = {t: PALETTE[(3 + i) % len(PALETTE)] for i, t in enumerate(groups)}
    with_hist = w.bins > 0
    panels = [("activations", "std"), ("activations", "mean"), ("activations", "zeros")]
    if with_hist:
        panels.append(("activations", "hist"))
    panels += [("gradients", "std"), ("gradients", "zeros")]
    if with_hist:
        panels.append(("gradients", "hist"))
    panels = [p for p in panels if p[0] in kinds]
    # a zeros panel only where some layer has exact zeros (its title says so otherwise)
    has_zeros = {k: any(st is not None and st.zeros > 0 for st in (recs[k].get(s.name)
                                                                   for s in sites))
                 for k in kinds}
    panels = [p for p in panels if p[1] != "zeros" or has_zeros[p[0]]]
    last_of_kind = {p[0]: i for i, p in enumerate(panels)}
    width = float(np.clip(3.5 + 0.12 * n, 9.0, 28.0))
    label_room = 0.065 * min(28, max((len(s) for s in names), default=4)) + 0.3
    heights = [2.3 if p[1] != "hist" else 2.9 for p in panels]
    gaps = [label_room + 0.55 if i == last_of_kind[p[0]] else 0.55
            for i, p in enumerate(panels)]
    top = 1.75
    total = top + sum(heights) + sum(gaps)
    fig = figure(width, total)
    left, right = 0.9 / width, 1 - (1.3 if with_hist else 0.35) / width
    axes = []
    y = total - top
    for h, gap in zip(heights, gaps):
        axes.append(fig.add_axes((left, (y - h) / total, right - left, h / total)))
        y -= h + gap
    x = np.arange(n)
    for i, (ax, (kind, what)) in enumerate(zip(axes, panels)):
        r = recs[kind]
        st = [r.get(s.name) for s in sites]
        noun = "activations (outputs)" if kind == "activations" else "gradients dL/d(output)"
        if what == "std":
            # per type, the layers recorded for this kind (a layer without a record is left
            # out; a NaN/Inf std is a real one, marked on the top edge)
            have = {t: [j for j in idx if st[j] is not None] for t, idx in groups.items()}
            have = {t: idx for t, idx in have.items() if idx}
            curves = {t: np.array([st[j].std if st[j].nans + st[j].infs == 0 else np.nan
                                   for j in idx]) for t, idx in have.items()}
            ref = _reference(verdicts.get(kind), {s.name for s in sites})
            band = healthy_band(ref) if ref > 0 and np.isfinite(ref) else None
            ylim = log_range(list(curves.values()), band)
            for k, (t, idx) in enumerate(have.items()):
                log_curves(ax, x[idx], {t: curves[t]}, colors, ylim=ylim, markers=False,
                           band=band if k == 0 else None)
                ax.lines[-1 - _marker_lines(ax, x[idx], curves[t], ylim)].set(lw=0.7, alpha=0.6)
            for t, idx in have.items():  # markers per type, on top of the lines
                v = curves[t]
                ok = np.isfinite(v) & (v >= ylim[0]) & (v <= ylim[1])
                ax.plot(x[idx][ok], v[ok], ls="", marker=_MARKERS[list(groups).index(t) % 8],
                        ms=3.5, color=colors[t], label=t, zorder=5)
            v = verdicts.get(kind)
            head = f"{noun}: std per layer"
            if not has_zeros[kind]:
                head += " (no exact zeros in any layer)"
            if v is not None:
                head += f"\nverdict: {v}"
                _verdict_strip(ax, v, names=[s.name for s in sites])
            ax.set_title(head, fontsize=9.5)
            ax.set_ylabel("std (log)")
            if i == 0:  # one key for the figure: the same colour per type in every panel
                fig.legend(*ax.get_legend_handles_labels(), loc="upper right", fontsize=7.5,
                           ncol=2 if len(groups) > 2 else 1, title="module type",
                           title_fontsize=7.5, bbox_to_anchor=(right, 1 - 0.4 / total))
        elif what == "mean":
            for t, idx in groups.items():
                ax.plot(x[idx], [st[j].mean if st[j] is not None else np.nan for j in idx],
                        "-", marker=_MARKERS[list(groups).index(t) % 8], ms=3, lw=0.6,
                        alpha=0.8, color=colors[t])
            ax.axhline(0.0, color="0.6", lw=0.8)
            ax.set_title(f"{noun}: mean per layer", fontsize=9.5)
            ax.set_ylabel("mean")
        elif what == "zeros":
            share = np.array([st[j].zeros / st[j].count if st[j] is not None and st[j].count
                              else np.nan for j in range(n)])
            ax.bar(x, share, width=0.8, color=[colors[s.type_name] for s in sites])
            ax.axhline(DEAD_SHARE, color="0.3", ls="--", lw=0.8)
            ax.annotate(f"dead: >= {DEAD_SHARE:.0%}", (0, DEAD_SHARE), xytext=(2, 2),
                        textcoords="offset points", fontsize=7, color="0.3")
            ax.set_ylim(0, 1.02)
            ax.set_title(f"{noun}: share of exact zeros per layer", fontsize=9.5)
            ax.set_ylabel("share of zeros")
        else:
            h = w.histograms(kind, step)
            hists = [h.get(s.name) for s in sites]
            cax = fig.add_axes((right + 0.1 / width, ax.get_position().y0, 0.15 / width,
                                ax.get_position().height))
            heatmap(fig, ax, hists, x0=0, xlabel="", cax=cax,
                    title=f"{noun}: histogram per layer" + (
                        "" if kind == "activations" else " of log10 |g| (exact zeros left out)"),
                    ylabel="value" if kind == "activations" else "log10 |gradient|")
        name_axis(ax, [s.name for s in sites], labels=i == last_of_kind[kind])
        ax.grid(True, which="major", axis="y", alpha=0.3)
    fig.suptitle(title or f"fastinit.watch: step {step}, {n} "
                 f"{'weight layers' if layers is None else 'selected layers'} in forward order",
                 fontsize=12, y=1 - 0.2 / total, va="top")
    fig.text(left, 1 - 0.5 / total, _KEY, ha="left", va="top", fontsize=7.5, color="0.25",
             linespacing=1.3)
    return save(fig, path)


_KEY = ("std panels, log scale: ▼ on the bottom edge = exactly 0 (filled) or below the axis "
        "(open);\n▲ on the top edge = NaN/Inf (filled) or above the axis (open);\nshaded = the "
        "verdict's healthy band (within 100x of its reference layer's std);\nsquares along the "
        "top = each layer's verdict: green healthy, blue vanishing,\nred exploding, orange "
        "saturated, black dead")


def _marker_lines(ax: Any, x: np.ndarray, v: np.ndarray, ylim: tuple) -> int:
    """How many marker-only lines :func:`log_curves` drew after a curve's own line."""
    v = np.asarray(v, dtype=np.float64)
    fin = np.isfinite(v)
    return (int((v == 0).any()) + int((fin & (v > 0) & (v < ylim[0])).any())
            + int((fin & (v > ylim[1])).any()) + int((~fin).any()))


def _reference(v: Any, names: set) -> float:
    """The std a verdict compared the plotted layers with (0.0 when none)."""
    for lv in (v.per_layer if v is not None else ()):
        if lv.name in names and lv.ratio > 0 and np.isfinite(lv.ratio):
            return lv.std / lv.ratio
    return 0.0


def _verdict_strip(ax: Any, v: Any, names: Sequence[str]) -> None:
    """A row of small squares on the top edge: each judged layer's label, by colour."""
    pos = {name: j for j, name in enumerate(names)}
    lo, hi = ax.get_ylim()
    y = hi / 1.25
    for lv in v.per_layer:
        if lv.name in pos:
            ax.plot([pos[lv.name]], [y], "s", ms=3, color=_VERDICT_COLORS.get(lv.label, "0.5"),
                    zorder=6, clip_on=False)


def plot_steps(w: Any, path: str, *, kind: str = "activations", layers: Any = None,
               max_layers: int = 12, title: Optional[str] = None) -> str:
    """The statistics of a :class:`fastinit.Watch` over its recorded steps: the std of each
    selected layer against the step (log scale), and, with ``bins > 0``, fastai's colorful
    dimension for each layer: the histogram of every recorded step side by side (x: step,
    y: value, colour: share of the layer's values at that step, log scale). At most
    ``max_layers`` layers, spread over the depth. Returns ``path``.

    >>> with fastinit.watch(model, bins=40, every=10) as w:
    ...     train(model)
    >>> w.plot_steps("steps.png", layers=[torch.nn.ReLU])
    """
    from .records import kind_name
    kind = kind_name(kind)
    if kind == "weights":
        raise ValueError("fastinit.watch.plot_steps: kind is 'activations' or 'gradients'")
    names = w.select(layers)
    if len(names) > max_layers:
        pick = np.unique(np.linspace(0, len(names) - 1, max_layers).round().astype(int))
        names = [names[i] for i in pick]
    steps, all_names, std = w.series(kind, "std")
    cols = [all_names.index(nm) for nm in names]
    with_hist = w.bins > 0
    ncol = min(4, len(names))
    nrow = (len(names) + ncol - 1) // ncol if with_hist else 0
    height = 3.0 + 2.6 * nrow + 0.8
    fig = figure(4.2 * ncol + 1.2, height, hspace=0.55, wspace=0.35, top_in=0.8,
                 right_in=0.3, bottom_in=0.6)
    grid = fig.add_gridspec(1 + nrow, ncol)
    ax = fig.add_subplot(grid[0, :])
    cmap = {nm: PALETTE[i % len(PALETTE)] if len(names) <= len(PALETTE)
            else _viridis(i / max(1, len(names) - 1)) for i, nm in enumerate(names)}
    log_curves(ax, steps.astype(float), {nm: std[:, c] for nm, c in zip(names, cols)}, cmap,
               markers=False)
    ax.set_xlabel("step")
    ax.set_ylabel("std (log)")
    ax.set_title(f"{kind}: std of each layer over the recorded steps", fontsize=10)
    ax.legend([nm for nm in names], fontsize=7, ncol=min(6, len(names)), loc="best")
    ax.grid(True, alpha=0.3)
    if with_hist:
        per_step = [w.histograms(kind, step=int(s)) for s in steps]
        for i, nm in enumerate(names):
            sub = fig.add_subplot(grid[1 + i // ncol, i % ncol])
            hists = [h.get(nm) for h in per_step]
            heatmap(fig, sub, hists, x0=0, title=nm, colorbar=False, xlabel="step",
                    ylabel="value" if kind == "activations" else "log10 |g|")
            ticks = sub.get_xticks()
            sub.set_xticks([t for t in ticks if 0 <= t < len(steps)])
            sub.set_xticklabels([str(int(steps[int(t)])) for t in sub.get_xticks()], fontsize=7)
    fig.suptitle(title or f"fastinit.watch over {len(steps)} recorded steps "
                 f"(every {w.every}): {kind}", fontsize=12)
    return save(fig, path)


def _viridis(t: float) -> Any:
    from matplotlib import colormaps
    return colormaps["viridis"](t)


def healthy_band(reference: float = 1.0) -> tuple:
    """The band of std a verdict calls neither vanishing nor exploding, around ``reference``."""
    return (VANISHING_RATIO * reference, EXPLODING_RATIO * reference)

