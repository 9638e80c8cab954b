"""What the demo prints and writes: per-layer tables, the training table, the summary and the
lessons, and the CSV/JSON files."""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, List, Sequence

from .experiment import Result, Settings


def _columns(depth: int) -> List[int]:
    """The layers (1-based) shown in the printed tables: all up to 10, else 8 spread out."""
    if depth <= 10:
        return list(range(1, depth + 1))
    picks = sorted({1, 2} | {int(round(depth * f)) for f in (0.1, 0.2, 0.4, 0.6, 0.8)} | {depth})
    return [p for p in picks if 1 <= p <= depth]


def _num(v: float) -> str:
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else "inf"
    if v == 0:
        return "0"
    return f"{v:.1e}"


def _verdict_text(v: Any) -> str:
    if v.label == "n/a" or not math.isfinite(v.ratio):
        return v.label
    return f"{v.label} (x{v.ratio:.0e})" if v.ratio > 0 else f"{v.label} (to 0)"


def format_profile_table(results: Sequence[Result], depth: int, kind: str) -> str:
    """One depth: a row per (activation, init), the std at chosen layers, and the verdict."""
    cols = _columns(depth)
    rows = [r for r in results if r.depth == depth]
    head = ["activation", "init"] + [f"L{c}" for c in cols] + ["verdict"]
    body = []
    for r in rows:
        stds = r.act_std if kind == "activations" else r.grad_std
        v = r.act_verdict if kind == "activations" else r.grad_verdict
        verdict_text = "-" if v is None else _verdict_text(v)
        body.append([r.activation, r.init] + [_num(stds[c - 1]) if c - 1 < len(stds) else "-"
                                               for c in cols] + [verdict_text])
    table = [head] + body
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    out = []
    for i, line in enumerate(table):
        cells = [c.ljust(widths[j]) if j < 2 or j == len(head) - 1 else c.rjust(widths[j])
                 for j, c in enumerate(line)]
        out.append("  " + "  ".join(cells).rstrip())
        if i == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
        elif i < len(table) - 1 and body[i - 1][0] != body[i][0]:
            out.append("")
    return "\n".join(out)


def format_training_table(results: Sequence[Result]) -> str:
    head = ["depth", "activation", "init", "loss@0", "loss@end", "test acc", "result",
            "at init (act / grad)"]
    table = [head]
    for r in results:
        table.append([str(r.depth), r.activation, r.init,
                      f"{r.losses[0]:.3f}" if r.losses else "-",
                      f"{r.final_loss:.3f}" if math.isfinite(r.final_loss) else "nan",
                      f"{100 * r.test_accuracy:.1f}%" if math.isfinite(r.test_accuracy) else "-",
                      r.outcome,
                      f"{r.act_verdict.label if r.act_verdict else '-'} / "
                      f"{r.grad_verdict.label if r.grad_verdict else '-'}"])
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    out = []
    for i, line in enumerate(table):
        cells = [c.rjust(widths[j]) if j in (0, 3, 4, 5) else c.ljust(widths[j])
                 for j, c in enumerate(line)]
        out.append("  " + "  ".join(cells).rstrip())
        if i == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
        elif i < len(table) - 1 and (table[i][0], table[i][1]) != (table[i + 1][0], table[i + 1][1]):
            out.append("")
    return "\n".join(out)


def format_summary(results: Sequence[Result], trained: bool) -> str:
    lines = []
    keys = []
    for r in results:
        if (r.depth, r.activation) not in keys:
            keys.append((r.depth, r.activation))
    width = max(len(f"depth {d}, {a}:") for d, a in keys)
    for d, a in keys:
        group = [r for r in results if (r.depth, r.activation) == (d, a)]
        if trained:
            parts = []
            for outcome in ("trained", "learning", "stuck", "diverged"):
                names = [r.init for r in group if r.outcome == outcome]
                if names:
                    parts.append(f"{outcome}: {', '.join(names)}")
        else:
            healthy = [r.init for r in group if r.act_verdict and r.grad_verdict
                       and r.act_verdict.label == r.grad_verdict.label == "healthy"]
            parts = [f"healthy at init: {', '.join(healthy) or 'none'}"]
        lines.append(f"  {f'depth {d}, {a}:'.ljust(width)}  " + "   ".join(parts))
    return "\n".join(lines)


def lessons(s: Settings) -> str:
    """What the experiment shows, with this run's numbers."""
    shrink = 0.01 * math.sqrt(s.width)
    deep = max(s.depths)
    return "\n".join([
        "\nWhat it shows:",
        f"  - N(0, 0.01²) multiplies the std by about 0.01·sqrt({s.width}) = {shrink:.2g} per "
        "layer, forward and backward: activations and gradients vanish, the loss stays at chance "
        "(ln 10 = 2.30).",
        "  - Fan-scaled inits keep tanh nets healthy. ReLU zeroes half of its inputs, so LeCun and "
        f"Xavier lose a factor sqrt(2) per layer (2^-{deep / 2:g} over {deep} layers): deep ReLU "
        "nets need Kaiming's 2/fan_in.",
        "  - sigmoid: its slope is at most 1/4 and its outputs have mean 0.5, so gradients shrink "
        "about 4x per layer whatever the scale (Glorot & Bengio 2010): no init here trains it "
        "deep.",
    ])


def write_csvs(results: Sequence[Result], out: str) -> None:
    with open(os.path.join(out, "stats.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["depth", "activation", "init", "layer", "activation_std", "gradient_std"])
        for r in results:
            for i, (a, g) in enumerate(zip(r.act_std, r.grad_std)):
                wr.writerow([r.depth, r.activation, r.init, i + 1, repr(a), repr(g)])
    with open(os.path.join(out, "training.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["depth", "activation", "init", "step", "loss"])
        for r in results:
            for i, v in enumerate(r.losses):
                wr.writerow([r.depth, r.activation, r.init, i, repr(v)])


def write_summary(results: Sequence[Result], s: Settings, out: str, seconds: float) -> None:
    def clean(v: Any) -> Any:
        return v if not isinstance(v, float) or math.isfinite(v) else None
    doc = {"settings": {k: getattr(s, k) for k in s.__dataclass_fields__},
           "seconds": seconds,
           "results": [{"depth": r.depth, "activation": r.activation, "init": r.init,
                        "activation_verdict": r.act_verdict.label if r.act_verdict else None,
                        "gradient_verdict": r.grad_verdict.label if r.grad_verdict else None,
                        "activation_ratio": clean(r.act_verdict.ratio) if r.act_verdict else None,
                        "gradient_ratio": clean(r.grad_verdict.ratio) if r.grad_verdict else None,
                        "final_loss": clean(r.final_loss), "test_accuracy": clean(r.test_accuracy),
                        "outcome": r.outcome} for r in results]}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(doc, f, indent=1)
