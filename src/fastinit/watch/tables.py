"""A watch's records as rows, a printable report, JSON and CSV (functions of a
:class:`~.session.Watch`, which exposes them as methods)."""
from __future__ import annotations

import csv
import io
import json
import math
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np

from ..stats.record import Stats
from .records import GRAD_LOG, KINDS, StepArg, histogram_of, stats_of

if TYPE_CHECKING:  # pragma: no cover
    from .session import Watch

CSV_FIELDS = ("step", "kind", "layer", "type", "count", "mean", "std", "var", "min", "max",
              "abs_mean", "rms", "norm", "zeros", "nans", "infs")


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def table(w: "Watch", step: StepArg = None) -> List[Dict[str, Any]]:
    """See :meth:`Watch.table`."""
    if step is None:
        step = w._default_step()
    rec = w._recorder
    act = w._raw("activations", step) if w.activations else {}
    grad = w._raw("gradients", step) if w.gradients else {}
    wts = w._raw("weights", step) if (w.weights and rec.params) else {}
    weight_of: Dict[str, Stats] = {}
    for si in sorted(wts):
        name = rec.param_sites[si].name
        layer, _, pname = name.rpartition(".")
        if layer not in weight_of or pname == "weight":
            weight_of[layer] = stats_of(wts[si])
    rows = []
    root = type(w.model).__name__
    # the outputs in execution order, then the layers seen only through their weights
    # (weights-only watches, modules that have not run)
    entries = [(s.name, s.type_name, s.index) for s in rec.sites]
    seen = {s.name.split("#")[0] for s in rec.sites}
    for ps in rec.param_sites:
        layer = ps.name.rpartition(".")[0]
        if (layer or root) not in seen and layer in weight_of:
            seen.add(layer or root)
            entries.append((layer or root, ps.type_name, None))
    for name, type_name, index in entries:
        base = name.split("#")[0]
        a = stats_of(act[index]) if index in act else None
        g = stats_of(grad[index]) if index in grad else None
        wt = weight_of.get(base) or (weight_of.get("") if base == root else None)
        rows.append({
            "layer": name, "type": type_name,
            "act_mean": a.mean if a else None, "act_std": a.std if a else None,
            "act_min": a.min if a else None, "act_max": a.max if a else None,
            "act_zeros": (a.zeros / a.count if a.count else math.nan) if a else None,
            "act_nonfinite": (a.nans + a.infs) if a else None,
            "grad_mean": g.mean if g else None, "grad_std": g.std if g else None,
            "grad_rms": g.rms if g else None,
            "grad_nonfinite": (g.nans + g.infs) if g else None,
            "weight_std": wt.std if wt else None, "weight_norm": wt.norm if wt else None,
        })
    return rows


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)):
        return str(v)
    return f"{v:.3g}"


def report(w: "Watch", step: StepArg = None) -> str:
    """See :meth:`Watch.report`."""
    if step is None:
        step = w._default_step()
    steps = w._history.resolve(step, "activations" if w.activations else "weights")
    rows = table(w, step)
    cols = [("layer", "layer"), ("type", "type"), ("act_mean", "act mean"),
            ("act_std", "act std"), ("act_zeros", "zeros"), ("grad_std", "grad std"),
            ("grad_rms", "grad rms"), ("weight_std", "weight std")]
    cols = [c for c in cols if any(r[c[0]] is not None for r in rows) or c[0] in ("layer", "type")]
    grid = [[h for _, h in cols]] + [[_cell(r[k]) for k, _ in cols] for r in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(cols))]
    lines = [f"fastinit.watch: step {steps[0] if len(steps) == 1 else 'all'} "
             f"({len(w._history.steps)} recorded, every {w.every})"]
    for i, line in enumerate(grid):
        lines.append("  ".join(c.ljust(wd) if j < 2 else c.rjust(wd)
                               for j, (c, wd) in enumerate(zip(line, widths))))
        if i == 0:
            lines.append("  ".join("-" * wd for wd in widths))
    if w.activations or w.gradients:
        v = w.verdicts(step)
        lines.append("verdict: " + "; ".join(f"{k} {v[k]}" for k in v))
    return "\n".join(lines)


def all_records(w: "Watch") -> List[Dict[str, Any]]:
    """Every recorded step: {"step", kind: {name: Stats}, "gradients_log10_hist": ...}."""
    w._materialize()
    history, rec = w._history, w._recorder
    out = []
    for s in history.steps:
        entry: Dict[str, Any] = {"step": s}
        for kind in KINDS:
            sites = rec.sites_of(kind)
            rows = history.rows(kind, s)
            entry[kind] = {sites[si].name: stats_of(rows[si]) for si in sorted(rows)}
        if w.bins and w.gradients:
            rows = history.rows(GRAD_LOG, s)
            entry["gradients_log10_hist"] = {rec.sites[si].name: histogram_of(r, w.bins)
                                             for si, r in sorted(rows.items())}
        out.append(entry)
    return out


def to_json(w: "Watch", path: Optional[str] = None, *, indent: Optional[int] = None) -> str:
    """See :meth:`Watch.to_json`."""
    steps = []
    for entry in all_records(w):
        item: Dict[str, Any] = {"step": entry["step"]}
        for kind in KINDS:
            item[kind] = {}
            for name, st in entry[kind].items():
                d = {k: _nan_to_none(v) for k, v in st.to_dict().items()}
                if kind == "gradients":
                    d["hist"] = d["edges"] = None
                item[kind][name] = d
        for name, (counts, edges) in entry.get("gradients_log10_hist", {}).items():
            if name in item["gradients"]:
                item["gradients"][name]["hist"] = counts.tolist()
                item["gradients"][name]["edges"] = edges.tolist()
        steps.append(item)
    rec = w._recorder
    doc = {"format": "fastinit.watch/1", "every": w.every, "bins": w.bins,
           "hist_of": {"activations": "value", "gradients": "log10|g|"},
           "layers": [{"name": s.name, "type": s.type_name} for s in rec.sites],
           "parameters": [{"name": s.name, "type": s.type_name} for s in rec.param_sites],
           "steps": steps}
    text = json.dumps(doc, indent=indent)
    if path is not None:
        with open(path, "w") as f:
            f.write(text)
    return text


def to_csv(w: "Watch", path: Optional[str] = None) -> str:
    """See :meth:`Watch.to_csv`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    rec = w._recorder
    types = {s.name: s.type_name for s in rec.sites + rec.param_sites}
    for entry in all_records(w):
        for kind in KINDS:
            for name, st in entry[kind].items():
                writer.writerow([entry["step"], kind, name, types.get(name, "")]
                                + [repr(getattr(st, f)) if isinstance(getattr(st, f), float)
                                   else getattr(st, f) for f in CSV_FIELDS[4:]])
    text = buf.getvalue()
    if path is not None:
        with open(path, "w", newline="") as f:
            f.write(text)
    return text
