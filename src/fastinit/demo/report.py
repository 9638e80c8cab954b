"""What the demo prints and writes: per-layer tables, the training table, and the CSV/JSON files
(the summary and the lessons are in :mod:`.lessons`)."""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, List, Sequence

from .experiment import Result, Settings


def columns(depth: int) -> List[int]:
    """The layers shown in the printed tables (0 = the input): at most 8, spread out."""
    if depth <= 7:
        return list(range(0, depth + 1))
    picks = {0, 1, depth} | {int(round(depth * f)) for f in (0.2, 0.4, 0.6, 0.8)}
    if depth <= 12:
        picks |= {2}
    return sorted(p for p in picks if 0 <= p <= depth)


def _num(v: float) -> str:
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else "inf"
    if v == 0:
        return "0"
    return f"{v:.0e}" if v < 1e-3 or v >= 1e3 else f"{v:.2g}"


def verdict_text(v: Any) -> str:
    """A verdict in a few words: its label, how far, where it starts."""
    if v is None:
        return "-"
    if v.label in ("vanishing", "exploding"):
        extreme = v.low if v.label == "vanishing" else v.high
        how = ("to 0" if extreme == 0 else "to inf/nan" if not math.isfinite(extreme)
               else f"x{extreme:.0e}")
        first = v.first.replace("act", "L").replace("input", "L0") if v.first else "?"
        return f"{v.label} ({how}, from {first})"
    if v.label in ("dead", "saturated"):
        hidden = sum(1 for lv in v.per_layer if lv.name != "input")
        return f"{v.label} ({v.counts.get(v.label, 0)} of {hidden} layers)"
    if v.label == "healthy":
        return f"healthy (x{v.low:.1g}..x{v.high:.1g})"
    return v.label


def _table(head: List[str], body: List[List[str]], left: int, group_of: Any) -> str:
    table = [head] + body
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    out = []
    for i, line in enumerate(table):
        cells = [c.ljust(widths[j]) if j < left or j == len(head) - 1 else c.rjust(widths[j])
                 for j, c in enumerate(line)]
        out.append("  " + "  ".join(cells).rstrip())
        if i == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
        elif i < len(table) - 1 and group_of(table[i]) != group_of(table[i + 1]):
            out.append("")
    return "\n".join(out)


def format_profile_table(results: Sequence[Result], depth: int, kind: str) -> str:
    """One depth: a row per (activation, init), the std at chosen layers, and the verdict
    (activations: the spread across the batch, L0 = the input; gradients: dL/dh)."""
    cols = columns(depth)
    if kind == "gradients":
        cols = [c for c in cols if c > 0]
    rows = [r for r in results if r.depth == depth]
    head = ["activation", "init"] + [f"L{c}" for c in cols] + ["verdict"]
    body = []
    for r in rows:
        if kind == "activations":
            values, v = [r.act_std[c] for c in cols], r.act_verdict
        else:
            values, v = [r.grad_std[c - 1] for c in cols], r.grad_verdict
        body.append([r.activation, r.init] + [_num(x) for x in values] + [verdict_text(v)])
    return _table(head, body, 2, lambda line: line[0])


def format_training_table(results: Sequence[Result]) -> str:
    head = ["depth", "activation", "init", "lr", "loss@0", "loss@end", "train acc", "test acc",
            "result", "at init (act / grad)"]
    body = []
    for r in results:
        body.append([str(r.depth), r.activation, r.init, f"{r.lr:g}",
                     f"{r.losses[0]:.3g}" if r.losses else "-",
                     f"{r.final_loss:.3f}" if math.isfinite(r.final_loss) else "nan",
                     f"{100 * r.train_accuracy:.1f}%" if math.isfinite(r.train_accuracy) else "-",
                     f"{100 * r.test_accuracy:.1f}%" if math.isfinite(r.test_accuracy) else "-",
                     r.outcome,
                     f"{r.act_verdict.label if r.act_verdict else '-'} / "
                     f"{r.grad_verdict.label if r.grad_verdict else '-'}"])
    return _table(head, body, 3, lambda line: (line[0], line[1]))


def write_csvs(results: Sequence[Result], out: str) -> None:
    with open(os.path.join(out, "stats.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["depth", "activation", "init", "layer", "activation_std",
                     "activation_total_std", "activation_mean", "activation_zeros",
                     "activation_slope", "activation_verdict", "gradient_std", "gradient_zeros",
                     "gradient_verdict"])
        for r in results:
            for i in range(len(r.act_std)):
                g = i - 1
                wr.writerow([r.depth, r.activation, r.init, i, repr(r.act_std[i]),
                             repr(r.act_total_std[i]), repr(r.act_mean[i]), repr(r.act_zeros[i]),
                             repr(r.act_slope[i]), r.act_labels[i],
                             repr(r.grad_std[g]) if g >= 0 else "",
                             repr(r.grad_zeros[g]) if g >= 0 else "",
                             r.grad_labels[g] if g >= 0 else ""])
    with open(os.path.join(out, "training.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["depth", "activation", "init", "step", "loss", "test_accuracy"])
        for r in results:
            acc = dict(zip(r.eval_steps, r.test_curve))
            for i, v in enumerate(r.losses):
                a = acc.get(i + 1)
                wr.writerow([r.depth, r.activation, r.init, i + 1, repr(v),
                             repr(a) if a is not None else ""])


def write_summary(results: Sequence[Result], s: Settings, out: str, seconds: float,
                  lessons: Sequence[Any] = ()) -> None:
    def clean(v: Any) -> Any:
        return v if not isinstance(v, float) or math.isfinite(v) else None

    def verdict(v: Any) -> Any:
        if v is None:
            return None
        return {"label": v.label, "ratio_end_start": clean(v.ratio), "low": clean(v.low),
                "high": clean(v.high), "first": v.first, "counts": v.counts}
    doc = {"settings": {k: getattr(s, k) for k in s.__dataclass_fields__},
           "seconds": seconds,
           "lessons": [{"text": le.text} for le in lessons],
           "results": [{"depth": r.depth, "activation": r.activation, "init": r.init,
                        "activation_verdict": r.act_verdict.label if r.act_verdict else None,
                        "gradient_verdict": r.grad_verdict.label if r.grad_verdict else None,
                        "activations": verdict(r.act_verdict),
                        "gradients": verdict(r.grad_verdict),
                        "lr": clean(r.lr), "final_loss": clean(r.final_loss),
                        "train_accuracy": clean(r.train_accuracy),
                        "test_accuracy": clean(r.test_accuracy),
                        "outcome": r.outcome} for r in results]}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(doc, f, indent=1)
