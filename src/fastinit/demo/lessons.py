"""The demo's summary and lessons, written from the run's own numbers: every sentence states what
this run measured (a lesson whose premise the run does not show is left out, and a sentence that
lists nets lists exactly those for which it holds). Each :class:`Lesson` keeps the numbers it
rests on, so tests can check the text against them."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence

import numpy as np

from .experiment import (
    LARGE,
    LSUV,
    SMALL,
    TRAINED_ACCURACY,
    Result,
    Settings,
    _init_fn,
    critical_gain,
)


@dataclass
class Lesson:
    text: str
    evidence: Dict[str, Any] = field(default_factory=dict)


def layer_factor(stds: Sequence[float]) -> float:
    """The geometric mean of std[l] / std[l - 1] over the hidden layers (index 1 onwards) where
    both are positive and finite: the measured factor per layer (NaN when fewer than 2)."""
    v = np.asarray(stds, dtype=np.float64)[1:]
    a, b = v[:-1], v[1:]
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    if ok.sum() < 2:
        return math.nan
    return float(np.exp(np.mean(np.log(b[ok] / a[ok]))))


def init_std_ratio(a: str, b: str, activation: str, width: int) -> float:
    """The measured std of init ``a``'s weights over init ``b``'s, on one square hidden layer of
    ``width`` (both drawn from the same standard normals)."""
    import torch

    import fastinit
    stds = []
    for label in (a, b):
        w = torch.empty(width, width)
        _init_fn(label, activation)(w, fastinit.Generator(0))
        stds.append(float(w.double().std()))
    return stds[0] / stds[1]


def _where(rs: Sequence[Result]) -> str:
    """'depth 10 tanh, depth 50 relu' (or 'every net here' handled by callers)."""
    return ", ".join(f"depth {r.depth} {r.activation}" for r in rs)


def _acc(r: Result) -> str:
    return f"{100 * r.test_accuracy:.0f}%" if math.isfinite(r.test_accuracy) else r.outcome


def _inits(rs: Sequence[Result]) -> str:
    seen: List[str] = []
    for r in rs:
        if r.init not in seen:
            seen.append(r.init)
    return ", ".join(seen)


def format_summary(results: Sequence[Result], trained: bool) -> str:
    """One line per (depth, activation): the inits by training outcome, or by verdict at init."""
    keys: List[Any] = []
    for r in results:
        if (r.depth, r.activation) not in keys:
            keys.append((r.depth, r.activation))
    width = max(len(f"depth {d}, {a}:") for d, a in keys)
    lines = []
    for d, a in keys:
        group = [r for r in results if (r.depth, r.activation) == (d, a)]
        parts = []
        if trained:
            for outcome in ("trained", "learning", "stuck", "diverged"):
                rs = [r for r in group if r.outcome == outcome]
                if rs:
                    parts.append(f"{outcome}: " + ", ".join(
                        f"{r.init} {_acc(r)}" if outcome != "diverged" else r.init for r in rs))
        else:
            healthy = [r.init for r in group if r.healthy_at_init]
            parts.append(f"healthy at init: {', '.join(healthy) or 'none'}")
            other = [f"{r.init} ({r.act_verdict.label} / {r.grad_verdict.label})"
                     for r in group if not r.healthy_at_init]
            if other:
                parts.append("not: " + ", ".join(other))
        lines.append(f"  {f'depth {d}, {a}:'.ljust(width)}  " + "   ".join(parts))
    return "\n".join(lines)


def lessons(results: Sequence[Result], s: Settings, trained: bool) -> List[Lesson]:
    """The lessons this run supports (see the module docstring)."""
    out: List[Lesson] = []
    by = {(r.depth, r.activation, r.init): r for r in results}
    deep = max(r.depth for r in results)
    acts = [a for a in s.activations if any(r.activation == a for r in results)]

    # --- too small
    small = [r for r in results if r.init == SMALL]
    if small:
        vanish = [r for r in small if r.act_verdict.label == "vanishing"
                  and r.grad_verdict.label == "vanishing"]
        odd = [r for r in small if r.activation in ("tanh", "relu")]
        factors = [layer_factor(r.act_std) for r in odd]
        factors = [f for f in factors if math.isfinite(f)]
        predicted = {a: 0.01 * math.sqrt(s.width) * f for a, f in (("tanh", 1.0),
                                                                   ("relu", math.sqrt(0.5)))}
        text = f"{SMALL}: "
        ev: Dict[str, Any] = {"vanishing": [(r.depth, r.activation) for r in vanish]}
        if factors:
            lo, hi = min(factors), max(factors)
            ev["factor"] = (lo, hi)
            rng = f"x{lo:.2g}" if f"{lo:.2g}" == f"{hi:.2g}" else f"x{lo:.2g} to x{hi:.2g}"
            text += (f"each tanh/ReLU layer multiplies the spread of its input by {rng} "
                     f"(0.01·√{s.width} = {predicted['tanh']:.2g} for tanh, "
                     f"{predicted['relu']:.2g} for ReLU, which halves the variance). ")
        if len(vanish) == len(small):
            text += "Activations and gradients vanish in every net here"
        elif vanish:
            text += f"Activations and gradients vanish in {_where(vanish)}"
        else:
            text += "No net here has both activations and gradients vanishing"
        if trained:
            best = max(small, key=lambda r: r.test_accuracy)
            ev["best_accuracy"] = best.test_accuracy
            stuck = all(r.outcome == "stuck" for r in small)
            text += ("; none of them learns (best test accuracy "
                     f"{_acc(best)}, chance 10%)." if stuck else
                     f"; trained or learning anyway: "
                     f"{_where([r for r in small if r.outcome in ('trained', 'learning')])}.")
        else:
            text += "."
        out.append(Lesson(text, ev))

    # --- too large
    large = [r for r in results if r.init == LARGE]
    if large:
        parts = []
        ev = {}
        for a in acts:
            rs = [r for r in large if r.activation == a]
            if not rs:
                continue
            labels = sorted({r.act_verdict.label for r in rs})
            glabels = sorted({r.grad_verdict.label for r in rs})
            slopes = [v for r in rs for v in r.act_slope[1:] if math.isfinite(v)]
            slope = (f" (mean slope {np.median(slopes):.2f} of its maximum)"
                     if slopes and "saturated" in labels else "")
            piece = f"{a}: activations {'/'.join(labels)}{slope}, gradients {'/'.join(glabels)}"
            if trained:
                piece += " — " + ", ".join(f"depth {r.depth} {r.outcome}"
                                           + (f" {_acc(r)}" if r.outcome != "diverged" else "")
                                           for r in rs)
            parts.append(piece)
            ev[a] = [(r.depth, r.act_verdict.label, r.grad_verdict.label, r.outcome) for r in rs]
        out.append(Lesson(f"{LARGE}: " + "; ".join(parts) + ".", ev))

    # --- ReLU and the fan-scaled inits
    relu_lecun = [by[k] for k in by if k[1] == "relu" and k[2] in ("LeCun", "Xavier")]
    relu_he = [by[k] for k in by if k[1] == "relu" and k[2] == "Kaiming"]
    if relu_lecun and relu_he:
        f_lecun = [layer_factor(r.act_std) for r in relu_lecun]
        f_he = [layer_factor(r.act_std) for r in relu_he]
        f_lecun = [f for f in f_lecun if math.isfinite(f)]
        f_he = [f for f in f_he if math.isfinite(f)]
        if f_lecun and f_he:
            fl, fh = float(np.median(f_lecun)), float(np.median(f_he))
            deep_l = [r for r in relu_lecun if r.depth == deep]
            zeros = float(np.nanmean([z for r in relu_lecun + relu_he for z in r.act_zeros[1:]]))
            text = (f"ReLU sets {zeros:.0%} of its outputs to 0 here, so with LeCun/Xavier's 1/fan_in the "
                    f"spread shrinks x{fl:.2f} per layer (1/√2 = 0.71 predicted: "
                    f"x{fl ** (deep - 1):.1g} from layer 1 to layer {deep}), with Kaiming's 2/fan_in "
                    f"x{fh:.2f}.")
            ev = {"lecun_factor": fl, "kaiming_factor": fh, "zeros": zeros}
            if trained:
                he_deep = by.get((deep, "relu", "Kaiming"))
                ok_l = [r for r in deep_l if r.outcome in ("trained",)]
                ev["deep"] = [(r.init, r.outcome) for r in deep_l] + (
                    [("Kaiming", he_deep.outcome)] if he_deep else [])
                if he_deep is not None and he_deep.outcome == "trained" and not ok_l:
                    text += (f" At depth {deep} that is the difference: Kaiming trains "
                             f"({_acc(he_deep)}), LeCun/Xavier stay below "
                             f"{TRAINED_ACCURACY:.0%} ("
                             + ", ".join(f"{r.init} {_acc(r)}" for r in deep_l) + ").")
                else:
                    text += (f" Test accuracy at depth {deep}: " + (", ".join(
                        f"{r.init} {_acc(r)} ({r.outcome})"
                        for r in deep_l + ([he_deep] if he_deep else []))) + ".")
                    shallow = by.get((min(r.depth for r in results), "relu", "Kaiming"))
                    best_l = max((r.test_accuracy for r in deep_l), default=math.nan)
                    if (he_deep is not None and shallow is not None and shallow is not he_deep
                            and he_deep.test_accuracy >= best_l + 0.2
                            and shallow.test_accuracy > he_deep.test_accuracy):
                        ev["kaiming_helps_not_enough"] = True
                        text += (f" Kaiming's scale is what lets the {deep}-layer ReLU net learn "
                                 f"at all here, but {s.steps} steps of SGD do not take it as far "
                                 f"as the {shallow.depth}-layer one ({_acc(shallow)}).")
            out.append(Lesson(text, ev))

    # --- critical gain
    crit = [r for r in results if r.init == "critical"]
    if crit:
        gains = {a: critical_gain(a) for a in acts}
        ratio = {a: init_std_ratio("critical", "Xavier", a, s.width) for a in acts}
        same = {a: w for a, w in (("tanh", "LeCun"), ("relu", "Kaiming"))
                if a in gains and abs(init_std_ratio("critical", w, a, s.width) - 1) < 1e-3}
        text = ("critical_gain(activation) gives the scale at the edge of chaos: "
                + ", ".join(f"{gains[a]:.3g} for {a}" for a in acts) + ".")
        if same:
            text += (" That is the scale of " + " and of ".join(f"{w} for {a}"
                                                               for a, w in same.items()))
        if "sigmoid" in gains:
            text += (f"{';' if same else ''} for sigmoid, whose outputs have mean 1/2, the "
                     f"weights' std is {ratio['sigmoid']:.1f}x Xavier's on these square "
                     "layers.")
        elif same:
            text += "."
        ev = {"gains": gains, "std_vs_xavier": ratio}
        if trained and "sigmoid" in gains:
            sig = [r for r in results if r.activation == "sigmoid"]
            for d in sorted({r.depth for r in sig}):
                rs = sorted([r for r in sig if r.depth == d], key=lambda r: -r.test_accuracy)
                top = [r for r in rs if r.outcome in ("trained", "learning")]
                ev[f"sigmoid_{d}"] = [(r.init, r.test_accuracy) for r in rs]
                others = [r for r in rs if r not in top[:3]]
                if top:
                    text += f" Sigmoid at depth {d}: best " + ", ".join(
                        f"{r.init} {_acc(r)}" for r in top[:3])
                    if others and all(r.outcome == "stuck" for r in others):
                        text += "; every other init is stuck."
                    elif others:
                        text += "; the others: " + ", ".join(
                            f"{r.init} {r.outcome}" for r in others) + "."
                    else:
                        text += "."
                else:
                    text += f" Sigmoid at depth {d}: no init trains it in {s.steps} steps."
        out.append(Lesson(text.replace(". ;", ";"), ev))

    # --- LSUV
    lsuv = [r for r in results if r.init == LSUV]
    if lsuv:
        healthy = [r for r in lsuv if r.healthy_at_init]
        text = (f"{LSUV} (data-driven: each layer's output rescaled to variance 1 on a batch): "
                f"healthy at init in {len(healthy)} of {len(lsuv)} nets")
        if trained:
            text += "; " + ", ".join(f"depth {r.depth} {r.activation} {r.outcome}"
                                     + (f" {_acc(r)}" if r.outcome != "diverged" else "")
                                     for r in lsuv)
        out.append(Lesson(text + ".", {"healthy": len(healthy), "of": len(lsuv)}))

    # --- do the verdicts at init predict training?
    if trained:
        agree = [r for r in results if r.healthy_at_init == (r.outcome == "trained")]
        healthy_stuck = [r for r in results if r.healthy_at_init and r.outcome != "trained"]
        sick_trained = [r for r in results if not r.healthy_at_init and r.outcome == "trained"]
        text = (f"Verdict at init vs training: healthy at init and trained, or not healthy and "
                f"not trained, in {len(agree)} of {len(results)} nets.")
        if healthy_stuck:
            text += (" Healthy at init but not trained in "
                     f"{s.steps} steps: " + ", ".join(f"depth {r.depth} {r.activation} {r.init} "
                                                       f"{_acc(r)}" for r in healthy_stuck) + ".")
        if sick_trained:
            text += (" Trained although not healthy at init: " + ", ".join(
                f"depth {r.depth} {r.activation} {r.init} ({r.act_verdict.label} / "
                f"{r.grad_verdict.label})" for r in sick_trained) + ".")
        out.append(Lesson(text, {"agree": len(agree), "of": len(results),
                                 "healthy_stuck": [(r.depth, r.activation, r.init)
                                                   for r in healthy_stuck],
                                 "sick_trained": [(r.depth, r.activation, r.init)
                                                  for r in sick_trained]}))
    return out
